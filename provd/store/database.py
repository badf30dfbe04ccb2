"""Synchronous SQLite operations; they run only on the store actor's worker thread.

WAL journal with ``synchronous=NORMAL``: a commit survives a killed process (``kill -9``)
because it is in the WAL before ``commit`` returns; only a power loss may drop the last
commits. Every write is one transaction, so no record is ever half-written.
"""

from __future__ import annotations

import collections
import json
import os
import secrets
import sqlite3
import time
from pathlib import Path
from typing import Any

import attrs
import sqlite_utils

from ..phones.fetch import FetchRecord
from . import schema
from .records import Lifecycle, PhoneRecord

_PHONE_COLUMNS = [
    "mac",
    "code",
    "hwid",
    "usename",
    "cn",
    "password",
    "domain",
    "dns",
    "sysclient_password",
    "admin_password",
    "web_password",
    "state",
    "error",
    "online",
    "revision",
    "created",
    "updated",
    "password_code",
]

#: One configuration item, written only when it differs from the stored one (rowcount 0
#: for an unchanged item).
_PUT_ITEM = (
    "INSERT INTO config_items (mac, type, item, updated) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (mac, type) DO UPDATE SET item = excluded.item, updated = excluded.updated"
    " WHERE config_items.item IS NOT excluded.item"
)

#: One phone and its phone_keys row (NULLs without one), by key. (Built from the constant
#: column names above: no input reaches it.)
_PHONE_BY_MAC = (
    "SELECT "  # noqa: S608
    + ", ".join(f"p.{c}" for c in _PHONE_COLUMNS)
    + ", k.mac, k.category, k.keys FROM phones p LEFT JOIN phone_keys k ON k.mac = p.mac"
    " WHERE p.mac = ?"
)


class StoreLost(Exception):
    """The database file on disk is no longer the one provd has open (deleted, replaced)."""


class Database:
    def __init__(
        self,
        path: str,
        *,
        clock=time.time,
        fetch_history: int = 50,
        max_user_agent: int = 512,
    ) -> None:
        self.path = path
        self._clock = clock
        self.fetch_history = fetch_history
        self.max_user_agent = max_user_agent
        #: Fetch rows per MAC as far as this process knows (counted on first sight).
        self._fetch_counts: dict[str, int] = {}
        self._fd: int | None = None
        self._identity: tuple[int, int] | None = None
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            # Secrets live here (SIP and device passwords): owner-only from the first byte.
            # The descriptor stays open: its inode is the file provd writes to, which
            # check_file compares with what the path names now.
            self._fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
            st = os.fstat(self._fd)
            self._identity = (st.st_dev, st.st_ino)
        try:
            self._open()
        except BaseException:
            if getattr(self, "db", None) is not None:
                self.db.conn.close()
            if self._fd is not None:
                os.close(self._fd)
            raise

    def _open(self) -> None:
        # The store actor runs every operation under CapacityLimiter(1): one at a time, but
        # trio's thread cache may pick a different worker thread each time. Serialized use
        # from several threads is safe; sqlite3's same-thread check would refuse it.
        self.db = sqlite_utils.Database(sqlite3.connect(self.path, check_same_thread=False))
        conn = self.db.conn
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=5000")
        schema.migrate(self.db)

    @classmethod
    def open_readonly(cls, path: str, *, clock=time.time) -> Database:
        """An existing database for reading only (operator commands): never creates,
        migrates or writes anything. Raises ``sqlite3.Error`` when it cannot be read."""
        self = cls.__new__(cls)
        self.path, self._clock = path, clock
        self._fd, self._identity = None, None
        uri = Path(path).resolve().as_uri() + "?mode=ro"
        if not os.path.exists(path + "-wal"):
            # No daemon has it open (a stopped daemon checkpoints and removes the WAL): read
            # the file as it is, so SQLite creates no -wal/-shm files next to it.
            # https://www.sqlite.org/uri.html#uriimmutable
            uri += "&immutable=1"
        conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout=5000")
        conn.execute("SELECT count(*) FROM phones").fetchone()  # fails early if unusable
        self.db = sqlite_utils.Database(conn)
        return self

    def close(self) -> None:
        self.db.conn.close()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def check_file(self) -> None:
        """Raise :class:`StoreLost` if ``path`` no longer names the file provd has open.

        A deleted or replaced database would otherwise take every later write into an
        unlinked inode: acknowledged now, gone at the next start.
        """
        if self._identity is None:
            return
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            raise StoreLost("deleted") from None
        except OSError as exc:
            raise StoreLost(f"cannot stat ({exc.strerror or exc})") from None
        if (st.st_dev, st.st_ino) != self._identity:
            raise StoreLost("replaced by another file")

    # --- reads ----------------------------------------------------------------------------

    # The per-phone reads and writes below run once or more per provisioned phone (some on
    # the event loop, see provd.store.actor), so they are plain SQL on the connection,
    # each statement compiled once and kept in sqlite3's statement cache: sqlite-utils'
    # table objects look the schema up on every call (table and view names, PRAGMA
    # table_info), which cost ~0.45 ms per write, ~10x the write itself (issue 14).

    def _rows(self, sql: str, params: list[Any] | tuple[Any, ...]) -> list[dict[str, Any]]:
        cursor = self.db.conn.execute(sql, params)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def phone(self, mac: str) -> PhoneRecord | None:
        # The phone and its keys in one statement, the record built once (issue 14: this
        # re-read runs after each step of a provisioning).
        row = self.db.conn.execute(_PHONE_BY_MAC, (mac,)).fetchone()
        if row is None:
            return None
        record = self._record(dict(zip(_PHONE_COLUMNS, row, strict=False)), self._config(mac))
        if row[-3] is None:  # no phone_keys row
            return record
        return self._with_keys(record, {"category": row[-2], "keys": row[-1]})

    def phones(self, after: str = "", limit: int | None = None) -> list[PhoneRecord]:
        """The stored phones by MAC; with ``limit``, one page: at most ``limit`` phones whose
        MAC sorts after ``after`` (a restart loads in pages, issue 14)."""
        if limit is None:
            rows = list(self.db.query("SELECT * FROM phones ORDER BY mac"))
        else:
            rows = list(
                self.db.query(
                    "SELECT * FROM phones WHERE mac > ? ORDER BY mac LIMIT ?", [after, limit]
                )
            )
        if not rows:
            return []
        span = [after, rows[-1]["mac"]]
        configs: dict[str, dict[str, dict[str, Any]]] = {}
        for row in self.db.query(
            "SELECT mac, type, item FROM config_items WHERE mac > ? AND mac <= ?", span
        ):
            configs.setdefault(row["mac"], {})[row["type"]] = json.loads(row["item"])
        keys = {
            row["mac"]: row
            for row in self.db.query("SELECT * FROM phone_keys WHERE mac > ? AND mac <= ?", span)
        }
        return [
            self._with_keys(self._record(row, configs.get(row["mac"], {})), keys.get(row["mac"]))
            for row in rows
        ]

    def last_fetches(self, first: str, last: str) -> dict[str, FetchRecord]:
        """Each phone's newest fetch, for the MACs from ``first`` to ``last`` (inclusive),
        in one query: what a restart's identifies describe (issue 14: not one read each)."""
        rows = self.db.query(
            "SELECT mac, time, address, user_agent, vendor, model, firmware, file FROM fetches f"
            " WHERE mac >= ? AND mac <= ? AND id = (SELECT id FROM fetches g WHERE g.mac = f.mac"
            " ORDER BY time DESC, id DESC LIMIT 1)",
            [first, last],
        )
        return {row["mac"]: FetchRecord(**row) for row in rows}

    def _with_keys(self, record: PhoneRecord, row: dict[str, Any] | None = None) -> PhoneRecord:
        if row is None:
            rows = self._rows("SELECT * FROM phone_keys WHERE mac = ?", (record.mac,))
            if not rows:
                return record
            row = rows[0]
        return attrs.evolve(
            record, key_category=row["category"] or "", keys=tuple(json.loads(row["keys"] or "[]"))
        )

    def fetches(self, mac: str, limit: int = 20) -> list[FetchRecord]:
        # Plain SQL (read at every first connection, issue 14): sqlite-utils' query wraps
        # each read in a SAVEPOINT and its RELEASE.
        rows = self._rows(
            "SELECT mac, time, address, user_agent, vendor, model, firmware, file FROM fetches"
            " WHERE mac = ? ORDER BY time DESC, id DESC LIMIT ?",
            (mac, limit),
        )
        return [FetchRecord(**row) for row in rows]

    def setting(self, key: str) -> str | None:
        rows = list(self.db.query("SELECT value FROM settings WHERE key = ?", [key]))
        return rows[0]["value"] if rows else None

    def _config(self, mac: str) -> dict[str, dict[str, Any]]:
        cursor = self.db.conn.execute("SELECT type, item FROM config_items WHERE mac = ?", (mac,))
        return {ctype: json.loads(item) for ctype, item in cursor.fetchall()}

    @staticmethod
    def _record(row: dict[str, Any], config: dict[str, dict[str, Any]]) -> PhoneRecord:
        values = {k: row[k] if row[k] is not None else "" for k in _PHONE_COLUMNS}
        values["online"] = bool(row["online"])
        values["revision"] = int(row["revision"] or 0)
        values["created"] = float(row["created"] or 0)
        values["updated"] = float(row["updated"] or 0)
        return PhoneRecord(**values, config=config)

    # --- writes: each one transaction -------------------------------------------------------

    def upsert_phone(
        self,
        *,
        mac: str,
        code: str,
        hwid: str,
        usename: str,
        cn: str,
        password: str,
        domain: str,
        dns: str,
    ) -> tuple[PhoneRecord, bool]:
        """Store a ``ProvisioningPhone``. A new code is pending until Devices answers it;
        the stored device credential stays until its replacement is committed.

        Returns:
            The record and whether the code changed (the actor must identify anew).
        """
        now = self._clock()
        conn = self.db.conn
        with conn:
            old = conn.execute("SELECT code FROM phones WHERE mac = ?", (mac,)).fetchone()
            new_code = old is None or old[0] != code
            values = [code, hwid, usename, cn, password, domain, dns, now]
            if old is None:
                conn.execute(
                    "INSERT INTO phones (code, hwid, usename, cn, password, domain, dns,"
                    " updated, mac, revision, created, state, error, online,"
                    " sysclient_password, admin_password, web_password)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, 'pending', '', 0, '', '', ?)",
                    [*values, mac, now, secrets.token_hex(9)],
                )
            elif new_code:
                conn.execute(
                    "UPDATE phones SET code = ?, hwid = ?, usename = ?, cn = ?, password = ?,"
                    " domain = ?, dns = ?, updated = ?, revision = revision + 1,"
                    " state = 'pending', error = '' WHERE mac = ?",
                    [*values, mac],
                )
            else:
                conn.execute(
                    "UPDATE phones SET code = ?, hwid = ?, usename = ?, cn = ?, password = ?,"
                    " domain = ?, dns = ?, updated = ?, revision = revision + 1 WHERE mac = ?",
                    [*values, mac],
                )
        record = self.phone(mac)
        assert record is not None
        return record, new_code

    def set_sysclient_password(self, mac: str, password: str, code: str | None = None) -> bool:
        """Store the device password Devices assigned for ``code``.

        With ``code`` given, the write only lands while the phone still has that code: a
        password from a registration that a newer ``ProvisioningPhone`` superseded must
        not end up on the new code's record. It also marks the code answered and drops the
        configuration items of the previous registration (the new one's follow), in the
        same transaction. Without ``code`` (a password assigned during a session) only the
        password changes. Returns whether it was stored.
        """
        now = self._clock()
        with self.db.conn:
            if code is None:
                query = "UPDATE phones SET sysclient_password = ?, updated = ? WHERE mac = ?"
                return self.db.execute(query, [password, now, mac]).rowcount > 0
            stored = self.db.execute(
                "UPDATE phones SET sysclient_password = ?, password_code = ?, updated = ?"
                " WHERE mac = ? AND code = ?",
                [password, code, now, mac, code],
            ).rowcount
            if stored and self.db.execute("DELETE FROM config_items WHERE mac = ?", [mac]).rowcount:
                self.db.execute("UPDATE phones SET revision = revision + 1 WHERE mac = ?", [mac])
            return stored > 0

    def code_answered(self, mac: str, code: str) -> bool:
        """Devices admitted the phone on its stored password although it presented ``code``
        (it was already in a domain): the code is answered, the password stays."""
        with self.db.conn:
            return (
                self.db.execute(
                    "UPDATE phones SET password_code = ?, updated = ? WHERE mac = ? AND code = ?",
                    [code, self._clock(), mac, code],
                ).rowcount
                > 0
            )

    def set_admin_password(self, mac: str, password: str) -> None:
        """Store the administrative password Devices deployed; a change bumps the revision
        (it goes into the phone's file as the web/admin password)."""
        with self.db.conn:
            self.db.execute(
                "UPDATE phones SET revision = revision + (admin_password IS NOT ?),"
                " admin_password = ?, updated = ? WHERE mac = ?",
                [password, password, self._clock(), mac],
            )

    def put_config_item(self, mac: str, ctype: str, item: dict[str, Any]) -> int:
        """Store one item verbatim; bump the revision if it changed. Returns the revision."""
        return self.put_config_items(mac, [(ctype, item)])[0]

    def put_config_items(self, mac: str, items: list[tuple[str, dict[str, Any]]]) -> list[int]:
        """Store ``(type, item)`` pairs verbatim, in order, in one transaction (the items
        Devices sent in one burst: one commit, not one each, issue 14); each item that
        changed bumps the revision by one. Returns the revision after each item.

        One upsert per item that leaves an unchanged row alone (so its count says which
        changed), then one revision bump by the number of changes (before: a read, an
        upsert and a bump per item)."""
        rows = [
            (mac, ctype, json.dumps(item, sort_keys=True, ensure_ascii=False))
            for ctype, item in items
        ]
        conn = self.db.conn
        now = self._clock()
        changed: list[int] = []
        with conn:
            for row in rows:
                cursor = conn.execute(_PUT_ITEM, (*row, now))
                changed.append(cursor.rowcount)
            if not any(changed):
                revision = self._revision(mac)
                return [revision] * len(rows)
            bumped = conn.execute(
                "UPDATE phones SET revision = revision + ?, updated = ? WHERE mac = ?"
                " RETURNING revision",
                (sum(changed), now, mac),
            ).fetchall()  # all: the statement ends before the commit
        if not bumped:  # the phone is gone
            return [0] * len(rows)
        revision = int(bumped[0][0]) - sum(changed)
        revisions: list[int] = []
        for count in changed:
            revision += count
            revisions.append(revision)
        return revisions

    def set_state(self, mac: str, state: str, error: str = "") -> None:
        with self.db.conn:
            self.db.conn.execute(
                "UPDATE phones SET state = ?, error = ?, updated = ? WHERE mac = ?",
                (state, error, self._clock(), mac),
            )

    def set_online(self, mac: str, online: bool) -> None:
        with self.db.conn:
            self.db.conn.execute("UPDATE phones SET online = ? WHERE mac = ?", (int(online), mac))

    def set_online_many(self, flags: dict[str, bool]) -> None:
        """Several phones' online flags in one transaction (the store batches them)."""
        with self.db.conn:
            self.db.conn.executemany(
                "UPDATE phones SET online = ? WHERE mac = ?",
                [(int(online), mac) for mac, online in flags.items()],
            )

    def set_all_offline(self) -> None:
        with self.db.conn:
            self.db.execute("UPDATE phones SET online = 0")

    def set_phone_keys(
        self, mac: str, *, category: str | None = None, keys: list[dict[str, str]] | None = None
    ) -> bool:
        """Set the phone's key category and/or own keys; bumps its revision.

        Returns False when there is no such phone.
        """
        now = self._clock()
        with self.db.conn:
            if not list(self.db.query("SELECT mac FROM phones WHERE mac = ?", [mac])):
                return False
            current = list(self.db.query("SELECT * FROM phone_keys WHERE mac = ?", [mac]))
            row = current[0] if current else {"category": "", "keys": "[]"}
            values = {
                "mac": mac,
                "category": row["category"] if category is None else category,
                "keys": row["keys"] if keys is None else json.dumps(keys, ensure_ascii=False),
                "updated": now,
            }
            self.db["phone_keys"].upsert(values, pk="mac")
            self.db.execute(
                "UPDATE phones SET revision = revision + 1, updated = ? WHERE mac = ?", [now, mac]
            )
        return True

    def remove_phone(self, mac: str) -> bool:
        with self.db.conn:
            self.db.execute("DELETE FROM phone_keys WHERE mac = ?", [mac])
            self.db.execute("DELETE FROM lifecycle WHERE mac = ?", [mac])
            self.db.execute("DELETE FROM config_items WHERE mac = ?", [mac])
            self.db.execute("DELETE FROM fetches WHERE mac = ?", [mac])
            cursor = self.db.execute("DELETE FROM phones WHERE mac = ?", [mac])
        self._fetch_counts.pop(mac, None)
        return cursor.rowcount > 0

    def record_fetches(self, rows: list[FetchRecord]) -> None:
        """Store fetch records: User-Agent cut to ``max_user_agent``; per phone the newest
        ``fetch_history`` are kept, older ones pruned once a batch of extra rows built up
        (so the hot path is one insert most of the time)."""
        limit = self.max_user_agent
        # One prepared statement for the batch (a boot storm writes thousands a second).
        values = [
            (r.mac, r.time, r.address, (r.user_agent or "")[:limit], r.vendor, r.model,
             r.firmware, r.file)
            for r in rows
        ]  # fmt: skip
        added = collections.Counter(r.mac for r in rows)
        slack = max(8, self.fetch_history // 4)
        with self.db.conn:
            self.db.conn.executemany(
                "INSERT INTO fetches (mac, time, address, user_agent, vendor, model, firmware,"
                " file) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                values,
            )
            for mac, n in added.items():
                count = self._fetch_counts.get(mac)
                if count is None:
                    count = self.db.execute(
                        "SELECT COUNT(*) FROM fetches WHERE mac = ?", [mac]
                    ).fetchone()[0]
                else:
                    count += n
                if count > self.fetch_history + slack:
                    self.db.execute(
                        "DELETE FROM fetches WHERE mac = ? AND id NOT IN (SELECT id FROM fetches"
                        " WHERE mac = ? ORDER BY time DESC, id DESC LIMIT ?)",
                        [mac, mac, self.fetch_history],
                    )
                    count = self.fetch_history
                self._fetch_counts[mac] = count

    def prune_fetches(self) -> int:
        """Keep the newest ``fetch_history`` fetch records per phone (the daemon, at start;
        not the operator commands, whose default ``fetch_history`` may be smaller than the
        configured one). Returns how many were deleted."""
        with self.db.conn:
            cursor = self.db.execute(
                "DELETE FROM fetches WHERE id IN (SELECT id FROM (SELECT id, ROW_NUMBER()"
                " OVER (PARTITION BY mac ORDER BY time DESC, id DESC) AS n FROM fetches)"
                " WHERE n > ?)",
                [self.fetch_history],
            )
        self._fetch_counts.clear()
        return cursor.rowcount

    def lifecycles(self) -> dict[str, Lifecycle]:
        """Every phone's stored lifecycle, by MAC ({} for a database older than v5, which
        the operator commands may read before the daemon migrated it)."""
        try:
            rows = list(self.db.query("SELECT * FROM lifecycle"))
        except sqlite3.OperationalError:
            return {}
        return {row["mac"]: _lifecycle(row) for row in rows}

    def lifecycle(self, mac: str) -> Lifecycle | None:
        try:
            rows = list(self.db.query("SELECT * FROM lifecycle WHERE mac = ?", [mac]))
        except sqlite3.OperationalError:
            return None
        return _lifecycle(rows[0]) if rows else None

    def put_lifecycles(self, records: list[Lifecycle]) -> None:
        """Store lifecycles (one transaction); those of phones no longer stored are skipped.

        Each row is one keyed upsert guarded by a keyed lookup of its phone: the cost
        follows the batch, not the store (before, every batch read all phones' MACs, a
        tenth of the daemon's CPU per provisioned phone at 10,000 phones, issue 14)."""
        with self.db.conn:
            self.db.conn.executemany(
                _PUT_LIFECYCLE,
                [
                    (*(getattr(r, name) for name in _LIFECYCLE_COLUMNS[:-1]), int(r.warned))
                    for r in records
                ],
            )

    def set_setting(self, key: str, value: str) -> None:
        with self.db.conn:
            self.db["settings"].upsert({"key": key, "value": value}, pk="key")

    def _revision(self, mac: str) -> int:
        row = self.db.conn.execute("SELECT revision FROM phones WHERE mac = ?", (mac,)).fetchone()
        return int(row[0]) if row else 0

    def set_setting_and_bump(self, key: str, value: str, macs: list[str] | None) -> dict[str, int]:
        """Store a setting that phone files are rendered from (the PBX data) and bump the
        revision of the phones it affects, all in one transaction: ``macs``, or every phone
        when None. Returns the new revision of each bumped phone."""
        now = self._clock()
        with self.db.conn:
            self.db["settings"].upsert({"key": key, "value": value}, pk="key")
            if macs is None:
                self.db.execute("UPDATE phones SET revision = revision + 1, updated = ?", [now])
                rows = self.db.execute("SELECT mac, revision FROM phones").fetchall()
            else:
                rows = []
                for start in range(0, len(macs), 500):  # SQLite's bound-parameter limit
                    chunk = macs[start : start + 500]
                    marks = ",".join("?" * len(chunk))
                    self.db.execute(
                        f"UPDATE phones SET revision = revision + 1, updated = ?"  # noqa: S608
                        f" WHERE mac IN ({marks})",
                        [now, *chunk],
                    )
                    rows += self.db.execute(
                        f"SELECT mac, revision FROM phones WHERE mac IN ({marks})",  # noqa: S608
                        chunk,
                    ).fetchall()
        return {mac: int(revision) for mac, revision in rows}

    # --- Devices API events ----------------------------------------------------------------

    def record_device_provisioned(
        self, code: str, hw_id: str, device: dict[str, Any], when: float | None = None
    ) -> None:
        """Keep a ``DeviceProvisioned`` event (one row per code; a repeat replaces it)."""
        row = {
            "code": code,
            "hw_id": hw_id,
            "device": json.dumps(device, sort_keys=True),
            "time": self._clock() if when is None else when,
        }
        with self.db.conn:
            self.db["devices_provisioned"].upsert(row, pk="code")

    def device_provisioned(self, code: str) -> dict[str, Any] | None:
        """The stored ``DeviceProvisioned`` event for ``code``: hw_id, device, time."""
        rows = list(
            self.db.query(
                "SELECT hw_id, device, time FROM devices_provisioned WHERE code = ?", [code]
            )
        )
        if not rows:
            return None
        row = rows[0]
        return {"hw_id": row["hw_id"], "device": json.loads(row["device"]), "time": row["time"]}


_LIFECYCLE_COLUMNS = tuple(f.name for f in attrs.fields(Lifecycle))
#: One lifecycle, stored only while its phone is (warned, the last column, as an int).
_PUT_LIFECYCLE = (
    "INSERT INTO lifecycle (mac, state, since, provisioned_at, fetched_at, registered_at,"
    " checked_at, addr, error, warned) SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?"
    " WHERE EXISTS (SELECT 1 FROM phones WHERE mac = ?1)"
    " ON CONFLICT (mac) DO UPDATE SET state = excluded.state, since = excluded.since,"
    " provisioned_at = excluded.provisioned_at, fetched_at = excluded.fetched_at,"
    " registered_at = excluded.registered_at, checked_at = excluded.checked_at,"
    " addr = excluded.addr, error = excluded.error, warned = excluded.warned"
)


def _lifecycle(row: dict[str, Any]) -> Lifecycle:
    values = {f.name: row.get(f.name) for f in attrs.fields(Lifecycle)}
    values = {k: v for k, v in values.items() if v is not None}
    values["warned"] = bool(values.get("warned"))
    return Lifecycle(**values)

"""The SQLite schema as numbered migrations, tracked in ``PRAGMA user_version``.

Each migration runs in one transaction with the version bump, so a crash mid-migration
leaves the previous version intact.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

import sqlite_utils


def _v1(db: sqlite_utils.Database) -> None:
    db["phones"].create(
        {
            "mac": str,
            "code": str,
            "hwid": str,
            "usename": str,
            "cn": str,
            "password": str,  # the user's SIP password, decrypted: phones need it in clear
            "domain": str,
            "dns": str,
            "sysclient_password": str,  # the device's only credential towards Devices
            "admin_password": str,
            "state": str,  # pending | provisioned | failed
            "error": str,
            "online": int,
            "revision": int,
            "created": float,
            "updated": float,
        },
        pk="mac",
        not_null={"code", "state", "revision"},
        defaults={"state": "pending", "revision": 0, "online": 0, "error": ""},
    )
    db["config_items"].create(
        {"mac": str, "type": str, "item": str, "updated": float},
        pk=("mac", "type"),
        foreign_keys=[("mac", "phones", "mac")],
    )
    db["fetches"].create(
        {
            "id": int,
            "mac": str,
            "time": float,
            "address": str,
            "user_agent": str,
            "vendor": str,
            "model": str,
            "firmware": str,
            "file": str,
        },
        pk="id",
    )
    db["fetches"].create_index(["mac", "time"])
    db["settings"].create({"key": str, "value": str}, pk="key")


def _v2(db: sqlite_utils.Database) -> None:
    """The per-phone web/admin password provd generates (used until Devices deploys one)."""
    db.execute("ALTER TABLE phones ADD COLUMN web_password TEXT NOT NULL DEFAULT ''")
    # randomblob() is SQLite's CSPRNG: every existing phone gets its own password.
    db.execute("UPDATE phones SET web_password = lower(hex(randomblob(9)))")


def _v3(db: sqlite_utils.Database) -> None:
    """Function keys per phone (``provd phones keys``): its category and its own keys."""
    db["phone_keys"].create(
        {"mac": str, "category": str, "keys": str, "updated": float},
        pk="mac",
        foreign_keys=[("mac", "phones", "mac")],
        defaults={"category": "", "keys": "[]"},
    )


def _v4(db: sqlite_utils.Database) -> None:
    """``password_code``: the provisioning code the stored sysclient password answered.

    A new code no longer wipes the password (a refused re-provisioning keeps the working
    credential); a code differing from ``password_code`` is one still to be presented.
    """
    db["phones"].add_column("password_code", str, not_null_default="")
    db.execute("UPDATE phones SET password_code = code WHERE sysclient_password != ''")


def _v5(db: sqlite_utils.Database) -> None:
    """Per-phone lifecycle (pending → provisioned → fetched → registered) with times."""
    db["lifecycle"].create(
        {
            "mac": str,
            "state": str,
            "since": float,
            "provisioned_at": float,
            "fetched_at": float,
            "registered_at": float,
            "checked_at": float,
            "addr": str,
            "error": str,
            "warned": int,
        },
        pk="mac",
    )


def _v6(db: sqlite_utils.Database) -> None:
    """``DeviceProvisioned`` events of provd's Devices API session (spec section 5): which
    device used a provisioning code provd asked for, and when."""
    db["devices_provisioned"].create(
        {"code": str, "hw_id": str, "device": str, "time": float},
        pk="code",
    )


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [_v1, _v2, _v3, _v4, _v5, _v6]
VERSION = len(MIGRATIONS)


def migrate(db: sqlite_utils.Database) -> int:
    """Bring ``db`` to :data:`VERSION`. Returns the version found before.

    Raises:
        RuntimeError: the database is newer than this provd.
    """
    conn: sqlite3.Connection = db.conn
    found = conn.execute("PRAGMA user_version").fetchone()[0]
    if found > VERSION:
        raise RuntimeError(f"database schema v{found} is newer than this provd (v{VERSION})")
    for version in range(found + 1, VERSION + 1):
        with conn:
            MIGRATIONS[version - 1](db)
            conn.execute(f"PRAGMA user_version = {version:d}")
    return found

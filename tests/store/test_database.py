"""The synchronous store operations and their transactions."""

import os
import sqlite3
import stat

import pytest

from provd.phones.fetch import FetchRecord
from provd.store import schema
from provd.store.database import Database


def add(db, mac="112233445566", code="111", **kw):
    values = (
        dict(
            mac=mac,
            code=code,
            hwid="hw",
            usename="u",
            cn="User",
            password="pw",
            domain="example.com",
            dns="pbx.example.com",
        )
        | kw
    )
    return db.upsert_phone(**values)


@pytest.fixture
def db(tmp_path):
    database = Database(str(tmp_path / "p.db"))
    yield database
    database.close()


def test_schema_version_recorded(db):
    """A new database is migrated to the current version."""
    version = db.db.conn.execute("PRAGMA user_version").fetchone()[0]
    assert version == schema.VERSION


def test_newer_schema_refused(tmp_path):
    """A database from a newer provd is refused instead of being damaged."""
    path = tmp_path / "new.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {schema.VERSION + 1}")
    conn.close()
    with pytest.raises(RuntimeError, match="newer"):
        Database(str(path))


def test_file_is_owner_only(tmp_path):
    """The database file (it holds passwords) is created mode 0600."""
    Database(str(tmp_path / "s.db")).close()
    assert stat.S_IMODE(os.stat(tmp_path / "s.db").st_mode) == 0o600


def test_wal_mode(db):
    """The journal is WAL."""
    assert db.db.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_upsert_new_then_same_code(db):
    """A new phone is pending; repeating the same code keeps the device password."""
    record, new = add(db)
    assert new and record.state == "pending" and record.revision == 1
    db.set_sysclient_password(record.mac, "devpw")
    record, new = add(db, cn="Renamed")
    assert not new and record.sysclient_password == "devpw" and record.cn == "Renamed"
    assert record.revision == 2


def test_new_code_keeps_credential_until_replaced(db):
    """Found 9.2/8.14: a new code is pending; the working password stays until Devices
    assigns a new one, which then replaces the old registration's items."""
    record, _ = add(db)
    assert db.set_sysclient_password(record.mac, "devpw", record.code)
    db.put_config_item(record.mac, "MEDIA", {"type": "MEDIA", "stunServer": "old"})
    db.put_config_item(record.mac, "PHONE", {"type": "PHONE", "coder": "G722"})
    db.set_state(record.mac, "provisioned")
    assert not db.phone(record.mac).code_pending
    record, new = add(db, code="222")
    assert new and record.sysclient_password == "devpw" and record.state == "pending"
    assert record.code_pending and set(record.config) == {"MEDIA", "PHONE"}
    assert not db.set_sysclient_password(record.mac, "stale", "111")  # superseded code
    assert db.set_sysclient_password(record.mac, "newpw", "222")
    record = db.phone(record.mac)
    assert record.sysclient_password == "newpw" and not record.code_pending
    assert record.config == {}  # the old STUN etc. are gone; the new items follow


def test_code_answered_by_challenge_keeps_password(db):
    record, _ = add(db)
    db.set_sysclient_password(record.mac, "devpw", record.code)
    record, _ = add(db, code="333")
    assert db.code_answered(record.mac, "333")
    record = db.phone(record.mac)
    assert record.sysclient_password == "devpw" and not record.code_pending


def test_migration_v2_marks_existing_passwords_answered(tmp_path):
    import sqlite3

    from provd.store.database import Database

    path = str(tmp_path / "old.db")
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE phones (mac TEXT PRIMARY KEY, code TEXT NOT NULL, hwid TEXT,"
        " usename TEXT, cn TEXT, password TEXT, domain TEXT, dns TEXT,"
        " sysclient_password TEXT, admin_password TEXT, state TEXT NOT NULL DEFAULT 'pending',"
        " error TEXT DEFAULT '', online INTEGER DEFAULT 0, revision INTEGER NOT NULL DEFAULT 0,"
        " created FLOAT, updated FLOAT)"
    )
    conn.execute(
        "CREATE TABLE config_items (mac TEXT, type TEXT, item TEXT, updated FLOAT,"
        " PRIMARY KEY (mac, type))"
    )
    conn.execute(
        "CREATE TABLE fetches (id INTEGER PRIMARY KEY, mac TEXT, time FLOAT, address TEXT,"
        " user_agent TEXT, vendor TEXT, model TEXT, firmware TEXT, file TEXT)"
    )
    conn.execute("CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT)")
    conn.execute(
        "INSERT INTO phones (mac, code, sysclient_password, state) VALUES"
        " ('001565000001', '111', 'pw', 'provisioned'), ('001565000002', '222', '', 'pending')"
    )
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    db = Database(path)
    assert not db.phone("001565000001").code_pending
    assert db.phone("001565000002").code_pending
    db.close()


def test_config_items_verbatim_and_revision_bumps_on_change_only(db):
    """Items are stored verbatim; identical items don't bump the revision."""
    add(db)
    r1 = db.put_config_item("112233445566", "NTP", {"type": "NTP", "tz": "Europe/Berlin"})
    r2 = db.put_config_item("112233445566", "NTP", {"type": "NTP", "tz": "Europe/Berlin"})
    r3 = db.put_config_item("112233445566", "NTP", {"type": "NTP", "tz": "Europe/Paris"})
    assert r1 == r2 < r3
    assert db.phone("112233445566").config["NTP"]["tz"] == "Europe/Paris"


def test_a_burst_of_items_bumps_once_per_changed_item(db):
    """Items stored together: each one that changed counts once, an unchanged one not at
    all, and each item's revision is the one after it (as if stored one by one)."""
    mac = "112233445566"
    add(db)
    base = db.put_config_item(mac, "NTP", {"type": "NTP", "tz": "Europe/Berlin"})
    revisions = db.put_config_items(
        mac,
        [
            ("PHONE", {"type": "PHONE", "coder": "G722"}),
            ("NTP", {"type": "NTP", "tz": "Europe/Berlin"}),  # unchanged
            ("MEDIA", {"type": "MEDIA", "stunServer": "stun.example.com"}),
        ],
    )
    assert revisions == [base + 1, base + 1, base + 2]
    assert db.phone(mac).revision == base + 2
    assert db.put_config_items(mac, [("PHONE", {"type": "PHONE", "coder": "G722"})]) == [base + 2]
    assert set(db.phone(mac).config) == {"PHONE", "NTP", "MEDIA"}


def test_remove_phone_removes_everything(db):
    """Removing a phone removes its items and fetches too."""
    add(db)
    db.put_config_item("112233445566", "PHONE", {"type": "PHONE"})
    db.record_fetches(
        [
            FetchRecord(
                mac="112233445566",
                time=1.0,
                address="127.0.0.1",
                user_agent="ua",
                vendor="yealink",
                model="T46S",
                firmware="1",
                file="112233445566.cfg",
            )
        ]
    )
    assert db.remove_phone("112233445566")
    assert db.phone("112233445566") is None and db.fetches("112233445566") == []
    assert not db.remove_phone("112233445566")


def test_fetches_newest_first(db):
    """Fetches come back newest first."""
    add(db)
    rows = [
        FetchRecord(
            mac="112233445566",
            time=float(t),
            address="a",
            user_agent="u",
            vendor="v",
            model="m",
            firmware="f",
            file=str(t),
        )
        for t in (1, 3, 2)
    ]
    db.record_fetches(rows)
    assert [f.file for f in db.fetches("112233445566")] == ["3", "2", "1"]


def test_settings(db):
    """Settings round-trip and are overwritten."""
    assert db.setting("devices_url") is None
    db.set_setting("devices_url", "ws://a/")
    db.set_setting("devices_url", "ws://b/")
    assert db.setting("devices_url") == "ws://b/"


def test_all_offline(db):
    """set_all_offline clears every online flag (daemon start)."""
    add(db)
    db.set_online("112233445566", True)
    assert db.phone("112233445566").online
    db.set_all_offline()
    assert not db.phone("112233445566").online


def test_password_for_superseded_code_not_stored(db):
    """A device password assigned for an old code does not land on the new code's record."""
    add(db, code="111")
    add(db, code="222")  # a newer ProvisioningPhone
    assert not db.set_sysclient_password("112233445566", "stale", code="111")
    assert db.phone("112233445566").sysclient_password == ""
    assert db.set_sysclient_password("112233445566", "fresh", code="222")
    assert db.phone("112233445566").sysclient_password == "fresh"

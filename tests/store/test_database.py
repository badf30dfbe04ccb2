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


def test_new_code_resets_credential(db):
    """A different code clears the device password: identify anew."""
    record, _ = add(db)
    db.set_sysclient_password(record.mac, "devpw")
    db.set_state(record.mac, "provisioned")
    record, new = add(db, code="222")
    assert new and record.sysclient_password == "" and record.state == "pending"


def test_config_items_verbatim_and_revision_bumps_on_change_only(db):
    """Items are stored verbatim; identical items don't bump the revision."""
    add(db)
    r1 = db.put_config_item("112233445566", "NTP", {"type": "NTP", "tz": "Europe/Berlin"})
    r2 = db.put_config_item("112233445566", "NTP", {"type": "NTP", "tz": "Europe/Berlin"})
    r3 = db.put_config_item("112233445566", "NTP", {"type": "NTP", "tz": "Europe/Paris"})
    assert r1 == r2 < r3
    assert db.phone("112233445566").config["NTP"]["tz"] == "Europe/Paris"


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

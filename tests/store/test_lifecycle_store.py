"""Stored lifecycles (schema v5): written in batches, read back, gone with their phone."""

import sqlite3

from provd.store.database import Database
from provd.store.records import Lifecycle

from .test_database import add


def test_lifecycles_round_trip_and_go_with_their_phone(tmp_path):
    db = Database(str(tmp_path / "p.db"))
    add(db, mac="112233445566")
    add(db, mac="112233445577")
    rows = [
        Lifecycle(mac="112233445566", state="registered", since=5.0, registered_at=5.0, addr="a"),
        Lifecycle(mac="112233445577", state="fetched", since=3.0, warned=True, error="late"),
        Lifecycle(mac="0000000000ff", state="fetched"),  # no such phone: not stored
    ]
    db.put_lifecycles(rows)
    assert db.lifecycles() == {r.mac: r for r in rows[:2]}
    db.put_lifecycles([Lifecycle(mac="112233445577", state="registered", addr="b")])
    assert db.lifecycle("112233445577").addr == "b" and not db.lifecycle("112233445577").warned
    assert db.remove_phone("112233445566")
    assert db.lifecycle("112233445566") is None and set(db.lifecycles()) == {"112233445577"}
    db.close()
    readonly = Database.open_readonly(str(tmp_path / "p.db"))
    assert readonly.lifecycle("112233445577").state == "registered"
    readonly.close()  # no file descriptor of its own to close


def test_a_database_before_v5_reads_as_no_lifecycles(tmp_path):
    """The operator commands may read a database the daemon has not migrated yet."""
    path = str(tmp_path / "old.db")
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE phones (mac TEXT PRIMARY KEY)")
    conn.commit()
    conn.close()
    old = Database.open_readonly(path)
    assert old.lifecycles() == {} and old.lifecycle("112233445566") is None
    old.close()


def test_phones_list_and_show_print_the_lifecycle(tmp_path, capsys, monkeypatch):
    """`provd phones list` shows state, since and address, `!` for a flagged phone;
    `phones show` each step's time and the last error."""
    from provd.cli.main import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PROVD_CONFIG", raising=False)
    db = Database(str(tmp_path / "provd.db"))  # the default store.path
    add(db, mac="112233445566")
    add(db, mac="112233445577")
    db.put_lifecycles(
        [
            Lifecycle(mac="112233445566", state="registered", since=5.0, addr="192.0.2.7:5060"),
            Lifecycle(mac="112233445577", state="fetched", since=3.0, warned=True, error="late"),
        ]
    )
    db.close()
    assert main(["phones", "list"]) == 0
    listing = capsys.readouterr().out
    assert "LIFECYCLE" in listing and "192.0.2.7:5060" in listing and "fetched !" in listing
    assert main(["phones", "show", "112233445577"]) == 0
    shown = capsys.readouterr().out
    assert "fetched (NOT REGISTERED in time)" in shown and "last error" in shown
    assert "late" in shown

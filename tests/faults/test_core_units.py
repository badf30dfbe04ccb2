"""Core hardening, the pieces one by one: config decoding, control parsing, the store's
typed errors and lost-file detection, the lock, fetch retention."""

from __future__ import annotations

import os
import sqlite3

import pytest
import trio

from provd.actors import control
from provd.config import Config, ConfigError
from provd.exits import CoreFailure, ExitStatus, find_core_failure
from provd.phones.fetch import FetchRecord
from provd.store.actor import Store, StoreError
from provd.store.database import Database, StoreLost
from provd.store.lock import DatabaseLock

MAC = "805ec0dd0001"


def fetch(i: int, mac: str = MAC, agent: str = "Yealink SIP-T46S") -> FetchRecord:
    return FetchRecord(
        time=1000.0 + i,
        address="127.0.0.1",
        user_agent=agent,
        vendor="yealink",
        model=None,
        firmware=None,
        file=f"{i}",
        mac=mac,
    )


# --- 3. config -------------------------------------------------------------------------------


def test_latin1_config_is_a_config_error_naming_path_and_line(tmp_path):
    path = tmp_path / "p.toml"
    path.write_bytes(
        '[log]\nlevel = "info"\n[appservice]\npassword = "Stra\xdfe"\n'.encode("latin-1")
    )
    with pytest.raises(ConfigError, match=rf"{path}: not valid UTF-8 at line 4"):
        Config.from_toml(path)


def test_deeply_nested_config_is_a_config_error(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text("x = " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ConfigError, match=str(path)):
        Config.from_toml(path)


def test_bad_key_error_names_path_and_key(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text("[store]\nfetch_history = 0\n")
    with pytest.raises(ConfigError, match=rf"{path}: store.fetch_history"):
        Config.from_toml(path)


def test_store_retention_defaults():
    config = Config()
    assert (config.store.fetch_history, config.store.max_user_agent) == (50, 512)


# --- 2. control parsing ----------------------------------------------------------------------


def test_depth_counts_nesting_outside_strings():
    assert control._depth(b'{"a": [1, {"b": "[[[[{{{{"}]}') == 3
    assert control._depth(b'"\\"[[["') == 0
    assert control._depth(b"[" * 3000) == 3000


async def test_handler_errors_become_error_replies():
    async def boom(_request):
        raise RuntimeError("handler bug")

    async def store_refused(_request):
        raise StoreError("/x/provd.db: OperationalError: disk I/O error")

    handlers = {"boom": boom, "store": store_refused}
    assert await control._answer(b'{"cmd": "boom"}', handlers) == {
        "ok": False,
        "error": "RuntimeError: handler bug",
    }
    answer = await control._answer(b'{"cmd": "store"}', handlers)
    assert answer["ok"] is False and "/x/provd.db" in answer["error"]
    answer = await control._answer(b"x" * (control.MAX_REQUEST + 1), handlers)
    assert answer["ok"] is False and "longer" in answer["error"]


# --- 7. lock ----------------------------------------------------------------------------------


def test_second_lock_on_same_database_refused(tmp_path):
    path = str(tmp_path / "p.db")
    first = DatabaseLock(path)
    first.acquire()
    with pytest.raises(CoreFailure) as info:
        DatabaseLock(path).acquire()
    assert info.value.status == ExitStatus.LOCKED
    assert info.value.fields["path"] == path
    first.release()
    again = DatabaseLock(path)
    again.acquire()  # released: free again
    again.release()


# --- 8. store errors and a lost file ----------------------------------------------------------


def test_check_file_notices_deleted_and_replaced(tmp_path):
    path = tmp_path / "p.db"
    db = Database(str(path))
    db.check_file()
    os.replace(_empty_db(tmp_path / "other.db"), path)
    with pytest.raises(StoreLost, match="replaced"):
        db.check_file()
    path.unlink()
    with pytest.raises(StoreLost, match="deleted"):
        db.check_file()
    db.close()


def _empty_db(path):
    sqlite3.connect(path).close()
    return path


async def test_sqlite_error_is_a_store_error_naming_the_path(tmp_path, nursery):
    path = str(tmp_path / "p.db")
    store = Store(path)
    await nursery.start(store.run)

    def refused(db):
        raise sqlite3.OperationalError("database or disk is full")

    with pytest.raises(StoreError, match=f"{path}: OperationalError: database or disk is full"):
        await store.call(refused)
    assert await store.call(lambda db: db.setting("k")) is None  # the actor goes on
    store.close()


async def test_lost_file_fails_pending_callers_and_ends_the_actor(tmp_path):
    path = tmp_path / "p.db"
    store = Store(str(path))
    errors: list[BaseException] = []

    async def caller():
        try:
            await store.call(lambda db: db.set_setting("k", "v"))
        except StoreError as exc:
            errors.append(exc)

    with pytest.raises(BaseExceptionGroup) as info:
        async with trio.open_nursery() as nursery:
            await nursery.start(store.run)
            path.unlink()
            for _ in range(3):
                nursery.start_soon(caller)
    failure = find_core_failure(info.value)
    assert failure is not None and failure.status == ExitStatus.STORE_LOST
    assert failure.fields["path"] == str(path)
    assert len(errors) == 3 and all("deleted" in str(e) for e in errors)


async def test_store_unusable_at_start_is_a_core_failure(tmp_path):
    (tmp_path / "dir.db").mkdir()
    store = Store(str(tmp_path / "dir.db"))
    with pytest.raises(BaseExceptionGroup) as info:
        async with trio.open_nursery() as nursery:
            await nursery.start(store.run)
    failure = find_core_failure(info.value)
    assert failure is not None and failure.status == ExitStatus.STORE
    assert failure.fields["setting"] == "store.path"


# --- 12. fetch retention ----------------------------------------------------------------------


def test_fetch_history_kept_per_phone_newest_first(tmp_path):
    db = Database(str(tmp_path / "p.db"), fetch_history=3, max_user_agent=20)
    for i in range(40):
        db.record_fetches([fetch(i, agent="A" * 100), fetch(i, mac="805ec0dd0002")])
    counts = dict(db.db.execute("SELECT mac, COUNT(*) FROM fetches GROUP BY mac").fetchall())
    assert all(3 <= n <= 3 + 8 for n in counts.values()), counts
    assert [f.file for f in db.fetches(MAC, limit=3)] == ["39", "38", "37"]
    assert {len(f.user_agent) for f in db.fetches(MAC)} == {20}
    db.close()
    reopened = Database(str(tmp_path / "p.db"), fetch_history=2)
    assert len(reopened.fetches(MAC)) >= 3  # an operator command prunes nothing
    reopened.prune_fetches()  # the daemon's store does, at start
    assert [f.file for f in reopened.fetches(MAC)] == ["39", "38"]
    reopened.close()

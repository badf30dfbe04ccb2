"""Issue 14: quick store operations run on the event loop; checkpoints run beside them."""

import sqlite3
import threading
from pathlib import Path

import trio

from provd.store import actor as store_actor
from provd.store.actor import Store


async def test_quick_operations_run_on_the_event_loop_thread(tmp_path, nursery):
    """A quick operation needs no thread hop (its SQL is shorter than the hop); any other
    still runs on the worker thread, and both see each other's commits in order."""
    store = Store(str(tmp_path / "s.db"))
    await nursery.start(store.run)
    loop_thread = threading.get_ident()

    def where(db, key):
        db.set_setting(key, "x")
        return threading.get_ident()

    assert await store.call(lambda db: where(db, "a"), quick=True) == loop_thread
    assert await store.call(lambda db: where(db, "b")) != loop_thread
    assert await store.call(lambda db: (db.setting("a"), db.setting("b")), quick=True) == (
        "x",
        "x",
    )
    store.close()


async def test_commits_never_checkpoint_inline_the_checkpointer_does(
    tmp_path, nursery, monkeypatch
):
    """The actor's own connection never checkpoints (an fsync would stall the event
    loop); after CHECKPOINT_AFTER operations the checkpointer copies the WAL into the
    database file, so a reader of the file alone (ignoring the WAL) sees the writes."""
    monkeypatch.setattr(store_actor, "CHECKPOINT_AFTER", 8)
    path = tmp_path / "s.db"
    store = Store(str(path))
    await nursery.start(store.run)
    assert (
        await store.call(lambda db: db.db.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0])
        == 0
    )
    for i in range(7):
        await store.call(lambda db, i=i: db.set_setting(f"k{i}", "v"), quick=True)
    assert _file_only(path, "k0") is None  # in the WAL only
    await store.call(lambda db: db.set_setting("k7", "v"), quick=True)
    with trio.fail_after(10):
        await store.wait_checkpoints(1)
    assert _file_only(path, "k7") == "v"
    store.close()


def _file_only(path: Path, key: str) -> str | None:
    """The setting as the database file holds it, WAL ignored (immutable=1)."""
    conn = sqlite3.connect(path.resolve().as_uri() + "?immutable=1", uri=True)
    try:
        row = conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
    except sqlite3.OperationalError:  # not even the table is in the file yet
        row = None
    finally:
        conn.close()
    return row[0] if row else None

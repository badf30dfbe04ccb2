"""The store actor: serialized, acknowledged after commit, drained on shutdown."""

import pytest
import trio

from provd.store.actor import Store, StoreClosed
from provd.store.database import Database


async def test_call_returns_after_commit(tmp_path, nursery):
    """A call's result is visible to another connection once it returned."""
    path = str(tmp_path / "s.db")
    store = Store(path)
    await nursery.start(store.run)
    await store.call(lambda db: db.set_setting("k", "v"))
    other = Database(path)
    assert other.setting("k") == "v"
    other.close()
    store.close()


async def test_failed_operation_raises_and_others_continue(tmp_path, nursery):
    """One failing operation raises for its caller only."""
    store = Store(str(tmp_path / "s.db"))
    await nursery.start(store.run)

    def boom(db):
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        await store.call(boom)
    await store.call(lambda db: db.set_setting("k", "v"))
    assert await store.call(lambda db: db.setting("k")) == "v"
    store.close()


async def test_operations_serialized_in_order(tmp_path, nursery):
    """Concurrent callers are applied one at a time, in mailbox order."""
    store = Store(str(tmp_path / "s.db"))
    await nursery.start(store.run)
    order = []

    async def write(i):
        await store.call(lambda db: order.append(i))

    async with trio.open_nursery() as inner:
        for i in range(50):
            inner.start_soon(write, i)
            await trio.testing.wait_all_tasks_blocked()
    assert order == list(range(50))
    store.close()


async def test_submitted_writes_drained_on_close(tmp_path):
    """Writes queued without waiting are committed when the store closes."""
    path = str(tmp_path / "s.db")
    store = Store(path)
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        for i in range(20):
            store.submit(lambda db, i=i: db.set_setting(f"k{i}", str(i)))
        store.close()
    db = Database(path)
    assert [db.setting(f"k{i}") for i in range(20)] == [str(i) for i in range(20)]
    db.close()


async def test_call_after_close_raises(tmp_path):
    """Calling a stopped store raises StoreClosed."""
    store = Store(str(tmp_path / "s.db"))
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        store.close()
    with pytest.raises(StoreClosed):
        await store.call(lambda db: None)


async def test_operations_may_run_on_different_worker_threads(tmp_path, nursery):
    """The connection works from whichever worker thread trio's cache hands the op to."""
    import threading

    store = Store(str(tmp_path / "s.db"))
    await nursery.start(store.run)
    threads = set()
    release = threading.Event()

    def note_thread(db, key):
        threads.add(threading.get_ident())
        db.set_setting(key, "x")

    await store.call(lambda db: note_thread(db, "a"))
    async with trio.open_nursery() as inner:
        # Keep the store's cached worker busy elsewhere, so the next op needs another thread.
        inner.start_soon(trio.to_thread.run_sync, release.wait)
        await trio.testing.wait_all_tasks_blocked()
        try:
            await store.call(lambda db: note_thread(db, "b"))
        finally:
            release.set()
    assert await store.call(lambda db: (db.setting("a"), db.setting("b"))) == ("x", "x")
    assert len(threads) == 2
    store.close()

"""The state store actor: the only writer to SQLite.

Theory of operation: callers put operations into one bounded mailbox; the actor takes them
in order and runs them in a worker thread under ``CapacityLimiter(1)``, so SQLite is
touched by one thread at a time and the event loop never blocks on it. An operation's caller is
answered only after its transaction committed, so a protocol step acknowledged to a peer is
on disk. When several operations are waiting, the actor runs them in one thread hop (each
still its own transaction), which keeps a boot storm of fetch records cheap.

Quick operations (``call(fn, quick=True)``: one phone's indexed reads and writes on the
provisioning path) run on the event-loop thread instead: an SQLite commit in WAL mode with
``synchronous=NORMAL`` writes to the page cache only (about 50 µs), while a hop to a
worker thread and back costs about 140 µs of CPU plus two thread wake-ups, and a GIL
hand-over to a thread that waits behind a busy event loop (issue 14: thread hops were a
third of the daemon's CPU per provisioned phone). A batch runs inline only when every
operation in it is quick; anything else (full-table reads, fetch batches, pruning) still
goes to the worker thread. A quick call with nothing queued or running before it is
applied by its caller directly (still in mailbox order), sparing two task switches. What
could block inline is kept off it: SQLite's automatic checkpoint (a copy of the WAL into
the database with two fsyncs) is switched off on the actor's connection, and a
checkpointer task runs ``wal_checkpoint(PASSIVE)`` on a connection of its own in a worker
thread after every :data:`CHECKPOINT_AFTER` operations (and when the store is idle),
concurrently with the writes.

Running thread work is not abandoned on cancellation (trio's default), so a commit that has
started finishes even during shutdown; the actor drains its mailbox before it exits.

Failures: an SQLite error inside one operation (disk full, read-only file system, a locked
or corrupt file) fails that operation only, as a :class:`StoreError` its caller turns into
an error result; the actor goes on. Two failures end the daemon, as a
:class:`~provd.exits.CoreFailure`: the database cannot be opened at start, and the file on
disk is no longer the one provd has open (deleted or replaced while running; checked after
every batch, before any caller is answered, and every ``check_interval`` seconds). Then no
caller is acknowledged any more; systemd restarts provd on the real file.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import attrs
import structlog
import trio

from ..exits import CoreFailure, ExitStatus
from .database import Database, StoreLost

log = structlog.get_logger("provd.store")

T = TypeVar("T")

#: Operations applied per thread hop, at most.
BATCH = 64
#: Operations (commits) after which the checkpointer copies the WAL into the database.
CHECKPOINT_AFTER = 512
#: Seconds the online flags set meanwhile wait to be written together (:meth:`Store.set_online`).
ONLINE_DELAY = 0.1
#: Seconds before online flags whose write SQLite refused are tried again.
ONLINE_RETRY = 1.0


@attrs.define
class _Op:
    fn: Callable[[Database], Any]
    reply: trio.MemorySendChannel[tuple[bool, Any]] | None
    #: Short enough to run on the event-loop thread (see the module docstring).
    quick: bool = False


class StoreError(Exception):
    """A store operation failed (SQLite said no: disk full, read-only, locked, corrupt).

    Nothing of the operation was written. The message names the database path.
    """


class StoreClosed(StoreError):
    """The store actor has stopped; no more operations are accepted."""


class Store:
    """Handle to the store actor. Construct, then ``await nursery.start(store.run)``."""

    def __init__(
        self,
        path: str,
        *,
        fetch_history: int = 50,
        max_user_agent: int = 512,
        check_interval: float = 10.0,
    ) -> None:
        self.path = path
        self.check_interval = check_interval
        self._db_options = {"fetch_history": fetch_history, "max_user_agent": max_user_agent}
        self._send, self._receive = trio.open_memory_channel[_Op](256)
        self._limiter = trio.CapacityLimiter(1)
        self._db: Database | None = None
        #: Operations since the last checkpoint; set when one is due.
        self._since_checkpoint = 0
        self._checkpoint_due = trio.Event()
        #: Checkpoints done (tests and benchmarks wait for them, :meth:`wait_checkpoints`).
        self.checkpoints = 0
        self._checkpointed = trio.Event()
        #: Operations in the mailbox or being applied (a quick call with none before it
        #: is applied by its caller directly); True while the actor serves the mailbox.
        self._queued = 0
        self._serving = False
        #: Why the file is gone, once it is (then nothing is acknowledged any more).
        self.lost: str | None = None
        #: Online flags not written yet, by MAC (:meth:`set_online`).
        self._online: dict[str, bool] = {}
        self._online_due = trio.Event()
        self._closed = False

    def _open(self) -> Database:
        db = Database(self.path, **self._db_options)
        try:
            db.prune_fetches()
            # Commits may run on the event loop: they must never checkpoint (fsync)
            # themselves; the checkpointer does it on its own connection.
            db.db.conn.execute("PRAGMA wal_autocheckpoint=0")
        except BaseException:
            db.close()
            raise
        return db

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Open the database, then serve the mailbox until closed.

        Raises:
            CoreFailure: the database cannot be opened (``STORE``) or was lost while
                running (``STORE_LOST``).
        """
        try:
            self._db = await trio.to_thread.run_sync(self._open, limiter=self._limiter)
        except (OSError, sqlite3.Error, RuntimeError) as exc:
            raise CoreFailure(
                ExitStatus.STORE,
                "daemon.start_failed",
                setting="store.path",
                path=self.path,
                error=_describe(exc),
            ) from exc
        log.info("store.opened", path=self.path)
        task_status.started()
        try:
            async with trio.open_nursery() as nursery:
                if self.path != ":memory:":
                    nursery.start_soon(self._checkpointer)
                nursery.start_soon(self._online_writer)
                async with self._receive:
                    try:
                        self._serving = True
                        await self._serve()
                    finally:
                        self._serving = False
                        with trio.CancelScope(shield=True):
                            # Still inside the channel: once it closes, trio drops what is
                            # buffered, and those callers would never be answered.
                            await self._drain()
                nursery.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(self._db.close, limiter=self._limiter)
            log.info("store.closed")

    async def _serve(self) -> None:
        while True:
            op: _Op | None = None
            with trio.move_on_after(self.check_interval):
                try:
                    op = await self._receive.receive()
                except trio.EndOfChannel:
                    return
            if op is None:  # quiet for check_interval: look at the file anyway
                self._check_file()
                if self.lost is not None:
                    self._fail()
                if self._since_checkpoint:
                    self._checkpoint_due.set()  # idle: a good moment to empty the WAL
                continue
            batch = [op]
            while len(batch) < BATCH:
                try:
                    batch.append(self._receive.receive_nowait())
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
            if all(o.quick for o in batch):
                # on the event loop: see the module docstring
                results = self._apply(batch, check_before=False)
            else:
                results = await trio.to_thread.run_sync(self._apply, batch, limiter=self._limiter)
            self._reply(batch, results)
            if self.lost is not None:
                self._fail()
            self._count_commits(len(batch))

    async def _checkpointer(self) -> None:
        """Copy the WAL into the database when due, on a connection of its own in a worker
        thread: a PASSIVE checkpoint never blocks the actor's writes (nor they it), so
        its fsyncs stay off the provisioning path. A failed checkpoint is logged and
        retried when the next one is due (the WAL keeps every commit meanwhile)."""
        limiter = trio.CapacityLimiter(1)
        conn: sqlite3.Connection | None = None  # opened when the first checkpoint is due
        try:
            while True:
                await self._checkpoint_due.wait()
                self._checkpoint_due = trio.Event()
                self._since_checkpoint = 0
                try:
                    if conn is None:
                        conn = await trio.to_thread.run_sync(
                            _checkpoint_connection, self.path, limiter=limiter
                        )
                    await trio.to_thread.run_sync(_checkpoint, conn, limiter=limiter)
                except sqlite3.Error as exc:
                    log.warning("store.checkpoint_failed", path=self.path, error=_describe(exc))
                else:
                    self.checkpoints += 1
                    self._checkpointed.set()
                    self._checkpointed = trio.Event()
        finally:
            if conn is not None:
                with trio.CancelScope(shield=True):
                    await trio.to_thread.run_sync(conn.close, limiter=limiter)

    def _check_file(self) -> None:
        assert self._db is not None
        if self.lost is None:
            try:
                self._db.check_file()
            except StoreLost as exc:
                self.lost = str(exc)

    def _fail(self) -> None:
        raise CoreFailure(
            ExitStatus.STORE_LOST,
            "store.lost",
            setting="store.path",
            path=self.path,
            error=f"database file {self.lost} while provd ran; writes since are not kept",
        )

    def _count_commits(self, count: int) -> None:
        self._since_checkpoint += count
        if self._since_checkpoint >= CHECKPOINT_AFTER:
            self._checkpoint_due.set()

    def _wake_to_fail(self) -> None:
        """A direct call found the file lost: have the actor end the daemon now, not at
        its next idle check."""
        try:
            self._send.send_nowait(_Op(lambda db: None, None, True))
            self._queued += 1
        except (trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
            pass

    def _reply(self, batch: list[_Op], results: list[tuple[bool, Any]]) -> None:
        self._queued -= len(batch)
        for op, result in zip(batch, results, strict=True):
            if op.reply is not None:
                op.reply.send_nowait(result)

    async def _drain(self) -> None:
        """Commit what is still queued (shutdown): nothing acknowledged-to-be is lost, and
        every queued caller gets an answer (an error once the file is lost)."""
        flags, self._online = self._online, {}
        while True:
            pending: list[_Op] = []
            if flags:  # the online flags set last, before the store closes
                pending.append(_Op(functools.partial(_write_online, flags), None))
                flags = {}
            while True:
                try:
                    pending.append(self._receive.receive_nowait())
                except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                    break
            if not pending:
                return
            results = await trio.to_thread.run_sync(self._apply, pending, limiter=self._limiter)
            self._reply(pending, results)

    def _apply(self, batch: list[_Op], check_before: bool = True) -> list[tuple[bool, Any]]:
        """Run ``batch`` (store thread). The file is checked before and after: when it is
        gone, every operation of the batch fails, so none is acknowledged. (A quick batch
        skips the check before: its few writes into a lost file fail all the same.)"""
        assert self._db is not None
        if check_before:
            self._check_file()
        results: list[tuple[bool, Any]] = []
        if self.lost is None:
            for op in batch:
                try:
                    results.append((True, op.fn(self._db)))
                except sqlite3.Error as exc:  # disk full, read-only, locked, corrupt
                    error = StoreError(f"{self.path}: {_describe(exc)}")
                    log.error("store.operation_failed", path=self.path, error=_describe(exc))
                    results.append((False, error))
                except Exception as exc:  # one failed operation must not take the others down
                    log.error("store.operation_failed", error=_describe(exc))
                    results.append((False, exc))
            self._check_file()
        if self.lost is not None:
            lost = StoreError(f"{self.path}: database file {self.lost}")
            results = [(False, lost)] * len(batch)
        return results

    async def call(self, fn: Callable[[Database], T], *, quick: bool = False) -> T:
        """Run ``fn(db)`` on the store thread; return once it committed.

        ``quick``: ``fn`` touches one phone's rows by key (no scan, no batch), so it may
        run on the event-loop thread (module docstring).

        Raises:
            StoreError: SQLite refused (nothing written), or the file is lost.
            StoreClosed: the actor is gone.
            Exception: whatever else ``fn`` raised.
        """
        if quick and self._serving and not self._queued and self.lost is None:
            # Nothing queued or running before it: apply it right here, in mailbox order
            # all the same, without the two task switches through the actor (each one a
            # pass of trio's run queue, which holds every connected phone's tasks).
            ((ok, value),) = self._apply([_Op(fn, None, True)], check_before=False)
            self._count_commits(1)
            if self.lost is not None:
                self._wake_to_fail()
            if not ok:
                raise value
            return value
        send, receive = trio.open_memory_channel[tuple[bool, Any]](1)
        try:
            self._queued += 1
            await self._send.send(_Op(fn, send, quick))
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            self._queued -= 1
            raise StoreClosed(f"{self.path}: the store has stopped") from None
        except BaseException:
            self._queued -= 1
            raise
        with trio.CancelScope(shield=True):
            # Once queued, wait for the commit even if our caller is being cancelled, so
            # "cancelled" never means "maybe written".
            try:
                ok, value = await receive.receive()
            except trio.EndOfChannel:
                raise StoreClosed(f"{self.path}: the store has stopped") from None
        if not ok:
            raise value
        return value

    def set_online(self, mac: str, online: bool) -> None:
        """Set a phone's online flag without waiting: the flags set within
        :data:`ONLINE_DELAY` are written in one transaction (a restart brings thousands of
        phones online: one commit each was the store's largest share, issue 14), and those
        still pending when the store closes are written before it does. The flag only
        informs (``provd phones list``); after a crash every start marks all phones offline
        before any connects, so a lost flag is never a wrong one for long."""
        self._online[mac] = online
        self._online_due.set()

    async def _online_writer(self) -> None:
        """Write the pending online flags: at once when none were written for
        :data:`ONLINE_DELAY` seconds, else that long after the last write (so a phone's
        flag lags by a scheduler pass when few change, and a restart's thousands share a
        transaction per interval). A refused write is logged (by :meth:`_apply`) and its
        flags, unless set anew meanwhile, are tried again with the next ones."""
        written = -ONLINE_DELAY
        refused = False
        while True:
            await self._online_due.wait()
            await trio.sleep_until(written + ONLINE_DELAY)
            if self._closed:
                return  # the drain writes what is pending
            self._online_due = trio.Event()
            flags, self._online = self._online, {}
            written = trio.current_time()
            try:
                # quick: one UPDATE per flag by key, a few dozen per interval in a restart
                await self.call(functools.partial(_write_online, flags), quick=True)
            except StoreClosed:  # closed while the mailbox was full
                for mac, online in flags.items():
                    self._online.setdefault(mac, online)
                return
            except StoreError:
                for mac, online in flags.items():
                    self._online.setdefault(mac, online)
                written += ONLINE_RETRY - ONLINE_DELAY  # one error line per retry
                self._online_due.set()
                refused = True
            else:
                if refused:  # the operator saw store.operation_failed: say it is over
                    log.info("store.online_flags_written", path=self.path, phones=len(flags))
                refused = False

    async def wait_checkpoints(self, count: int) -> None:
        """Return once ``count`` checkpoints were done since the start."""
        while self.checkpoints < count:
            await self._checkpointed.wait()

    def submit(self, fn: Callable[[Database], Any]) -> None:
        """Queue ``fn`` without waiting (fetch records). Dropped, and logged, if full."""
        try:
            self._send.send_nowait(_Op(fn, None))
            self._queued += 1
        except trio.WouldBlock:
            log.warning("store.queue_full_dropped")
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass

    def close(self) -> None:
        """Stop accepting operations; the actor drains and exits."""
        self._serving = False
        self._closed = True
        self._send.close()


def _write_online(flags: dict[str, bool], db: Database) -> None:
    db.set_online_many(flags)


def _checkpoint_connection(path: str) -> sqlite3.Connection:
    # mode=rw: never create the file (a store lost meanwhile must stay lost).
    uri = Path(path).resolve().as_uri() + "?mode=rw"
    conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout=5000")
    return conn


def _checkpoint(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()


def _describe(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return f"{type(exc).__name__}: {text}"

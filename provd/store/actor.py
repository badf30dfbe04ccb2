"""The state store actor: the only writer to SQLite.

Theory of operation: callers put operations into one bounded mailbox; the actor takes them
in order and runs them in a worker thread under ``CapacityLimiter(1)``, so SQLite is
touched by one thread at a time and the event loop never blocks on it. An operation's caller is
answered only after its transaction committed, so a protocol step acknowledged to a peer is
on disk. When several operations are waiting, the actor runs them in one thread hop (each
still its own transaction), which keeps a boot storm of fetch records cheap.

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

import sqlite3
from collections.abc import Callable
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


@attrs.define
class _Op:
    fn: Callable[[Database], Any]
    reply: trio.MemorySendChannel[tuple[bool, Any]] | None


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
        #: Why the file is gone, once it is (then nothing is acknowledged any more).
        self.lost: str | None = None

    def _open(self) -> Database:
        db = Database(self.path, **self._db_options)
        try:
            db.prune_fetches()
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
            async with self._receive:
                try:
                    await self._serve()
                finally:
                    with trio.CancelScope(shield=True):
                        # Still inside the channel: once it closes, trio drops what is
                        # buffered, and those callers would never be answered.
                        await self._drain()
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
                continue
            batch = [op]
            while len(batch) < BATCH:
                try:
                    batch.append(self._receive.receive_nowait())
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
            results = await trio.to_thread.run_sync(self._apply, batch, limiter=self._limiter)
            self._reply(batch, results)
            if self.lost is not None:
                self._fail()

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

    @staticmethod
    def _reply(batch: list[_Op], results: list[tuple[bool, Any]]) -> None:
        for op, result in zip(batch, results, strict=True):
            if op.reply is not None:
                op.reply.send_nowait(result)

    async def _drain(self) -> None:
        """Commit what is still queued (shutdown): nothing acknowledged-to-be is lost, and
        every queued caller gets an answer (an error once the file is lost)."""
        while True:
            pending: list[_Op] = []
            while True:
                try:
                    pending.append(self._receive.receive_nowait())
                except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                    break
            if not pending:
                return
            results = await trio.to_thread.run_sync(self._apply, pending, limiter=self._limiter)
            self._reply(pending, results)

    def _apply(self, batch: list[_Op]) -> list[tuple[bool, Any]]:
        """Run ``batch`` (store thread). The file is checked before and after: when it is
        gone, every operation of the batch fails, so none is acknowledged."""
        assert self._db is not None
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

    async def call(self, fn: Callable[[Database], T]) -> T:
        """Run ``fn(db)`` on the store thread; return once it committed.

        Raises:
            StoreError: SQLite refused (nothing written), or the file is lost.
            StoreClosed: the actor is gone.
            Exception: whatever else ``fn`` raised.
        """
        send, receive = trio.open_memory_channel[tuple[bool, Any]](1)
        try:
            await self._send.send(_Op(fn, send))
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise StoreClosed(f"{self.path}: the store has stopped") from None
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

    def submit(self, fn: Callable[[Database], Any]) -> None:
        """Queue ``fn`` without waiting (fetch records). Dropped, and logged, if full."""
        try:
            self._send.send_nowait(_Op(fn, None))
        except trio.WouldBlock:
            log.warning("store.queue_full_dropped")
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass

    def close(self) -> None:
        """Stop accepting operations; the actor drains and exits."""
        self._send.close()


def _describe(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return f"{type(exc).__name__}: {text}"

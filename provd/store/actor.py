"""The state store actor: the only writer to SQLite.

Theory of operation: callers put operations into one bounded mailbox; the actor takes them
in order and runs them in a worker thread under ``CapacityLimiter(1)``, so SQLite is
touched by one thread at a time and the event loop never blocks on it. An operation's caller is
answered only after its transaction committed, so a protocol step acknowledged to a peer is
on disk. When several operations are waiting, the actor runs them in one thread hop (each
still its own transaction), which keeps a boot storm of fetch records cheap.

Running thread work is not abandoned on cancellation (trio's default), so a commit that has
started finishes even during shutdown; the actor drains its mailbox before it exits.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import attrs
import structlog
import trio

from .database import Database

log = structlog.get_logger("provd.store")

T = TypeVar("T")

#: Operations applied per thread hop, at most.
BATCH = 64


@attrs.define
class _Op:
    fn: Callable[[Database], Any]
    reply: trio.MemorySendChannel[tuple[bool, Any]] | None


class StoreClosed(Exception):
    """The store actor has stopped; no more operations are accepted."""


class Store:
    """Handle to the store actor. Construct, then ``await nursery.start(store.run)``."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._send, self._receive = trio.open_memory_channel[_Op](256)
        self._limiter = trio.CapacityLimiter(1)
        self._db: Database | None = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self._db = await trio.to_thread.run_sync(Database, self.path, limiter=self._limiter)
        log.info("store.opened", path=self.path)
        task_status.started()
        try:
            async with self._receive:
                async for op in self._receive:
                    batch = [op]
                    while len(batch) < BATCH:
                        try:
                            batch.append(self._receive.receive_nowait())
                        except (trio.WouldBlock, trio.EndOfChannel):
                            break
                    results = await trio.to_thread.run_sync(
                        self._apply, batch, limiter=self._limiter
                    )
                    for op_, result in zip(batch, results, strict=True):
                        if op_.reply is not None:
                            op_.reply.send_nowait(result)
        finally:
            with trio.CancelScope(shield=True):
                await self._drain()
                await trio.to_thread.run_sync(self._db.close, limiter=self._limiter)
            log.info("store.closed")

    async def _drain(self) -> None:
        """Commit what is still queued (shutdown): nothing acknowledged-to-be is lost."""
        pending: list[_Op] = []
        while True:
            try:
                pending.append(self._receive.receive_nowait())
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                break
        if pending:
            results = await trio.to_thread.run_sync(self._apply, pending, limiter=self._limiter)
            for op, result in zip(pending, results, strict=True):
                if op.reply is not None:
                    op.reply.send_nowait(result)

    def _apply(self, batch: list[_Op]) -> list[tuple[bool, Any]]:
        assert self._db is not None
        results: list[tuple[bool, Any]] = []
        for op in batch:
            try:
                results.append((True, op.fn(self._db)))
            except Exception as exc:  # one failed operation must not take the others down
                log.error("store.operation_failed", error=f"{type(exc).__name__}: {exc}")
                results.append((False, exc))
        return results

    async def call(self, fn: Callable[[Database], T]) -> T:
        """Run ``fn(db)`` on the store thread; return once it committed.

        Raises:
            StoreClosed: the actor is gone.
            Exception: whatever ``fn`` raised.
        """
        send, receive = trio.open_memory_channel[tuple[bool, Any]](1)
        try:
            await self._send.send(_Op(fn, send))
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise StoreClosed() from None
        with trio.CancelScope(shield=True):
            # Once queued, wait for the commit even if our caller is being cancelled, so
            # "cancelled" never means "maybe written".
            try:
                ok, value = await receive.receive()
            except trio.EndOfChannel:
                raise StoreClosed() from None
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

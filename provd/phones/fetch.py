"""The record of one phone fetching its file, and the buffer that hands it to the store."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import NamedTuple

import structlog
import trio

log = structlog.get_logger()


class FetchRecord(NamedTuple):
    """A successful per-phone fetch (immutable).

    A named tuple, not an attrs class: one is made for every fetch, and in a boot storm
    that is thousands a second (issue 14: a third of the cost of an attrs ``frozen``).

    Attributes:
        time: when, as a UTC epoch timestamp in seconds.
        address: the client's IP address.
        user_agent: the User-Agent header as sent ("" if none).
        vendor: the vendor provd identified (``"yealink"``, ...).
        model: model from the User-Agent or file name, or None.
        firmware: firmware version from the User-Agent, or None.
        file: the file name served.
        mac: the phone's MAC, 12 lowercase hex digits.
    """

    time: float
    address: str
    user_agent: str
    vendor: str
    model: str | None
    firmware: str | None
    file: str
    mac: str


class FetchRecorder:
    """Buffers fetch records for the store: a request never waits, memory stays bounded.

    :meth:`record` appends to a buffer of at most ``limit`` records; :meth:`run` writes them
    in batches of up to ``batch`` through ``write`` (one store operation per batch, so a boot
    storm costs the store's mailbox a few slots, not one per fetch). When the buffer is full
    (the store can't keep up) records are dropped and counted; a warning with the count is
    logged at most once per ``warn_interval`` seconds, never one line per drop. On
    cancellation (shutdown) :meth:`run` writes what is buffered before it returns.

    Args:
        write: ``async (records) -> None``, e.g. a store call; its errors are logged. If
            it is cancelled, the records are taken to be unwritten and written again.
        limit: most records buffered.
        batch: most records per write.
        clock: monotonic seconds (tests inject a fake).
        warn_interval: seconds between two "dropped" warnings.
    """

    def __init__(
        self,
        write: Callable[[list[FetchRecord]], Awaitable[None]],
        *,
        limit: int = 10_000,
        batch: int = 500,
        clock: Callable[[], float] = time.monotonic,
        warn_interval: float = 60.0,
    ) -> None:
        self._write = write
        self.limit = limit
        self.batch = batch
        self._clock = clock
        self._warn_interval = warn_interval
        self._buffer: deque[FetchRecord] = deque()
        self._wake = trio.Event()
        self._unreported = 0  # dropped since the last warning
        self._last_warning: float | None = None
        self.dropped = 0  # dropped in total

    def __len__(self) -> int:
        return len(self._buffer)

    def record(self, fetch: FetchRecord) -> None:
        """Queue ``fetch`` for the store; never blocks. Dropped (and counted) when full."""
        if len(self._buffer) >= self.limit:
            self.dropped += 1
            self._unreported += 1
            self._maybe_warn()
            return
        self._buffer.append(fetch)
        self._wake.set()

    def _maybe_warn(self, *, force: bool = False) -> None:
        if not self._unreported:
            return
        now = self._clock()
        if (
            not force
            and self._last_warning is not None
            and now - self._last_warning < self._warn_interval
        ):
            return
        self._last_warning = now
        log.warning("phones.fetches_dropped", dropped=self._unreported, buffered=self.limit)
        self._unreported = 0

    async def _flush(self) -> None:
        while self._buffer:
            count = min(self.batch, len(self._buffer))
            rows = [self._buffer.popleft() for _ in range(count)]
            try:
                await self._write(rows)
            except Exception as exc:  # the store refused: these are lost, the next may do
                log.error("phones.fetches_not_recorded", count=len(rows), error=type(exc).__name__)
            except BaseException:  # cancelled before the write was queued: write them later
                self._buffer.extendleft(reversed(rows))
                raise
            self._maybe_warn()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Write buffered records until cancelled; then write the rest (shielded)."""
        task_status.started()
        try:
            while True:
                await self._wake.wait()
                self._wake = trio.Event()
                await self._flush()
        finally:
            with trio.CancelScope(shield=True):
                await self._flush()
                self._maybe_warn(force=True)

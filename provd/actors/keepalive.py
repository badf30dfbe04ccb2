"""One keep-alive for every sysclient connection: a single task pings them all.

Every connection is pinged ``interval`` seconds after it was watched and then every
``interval`` seconds; a pong that has not come ``timeout`` seconds after its ping ends the
connection (:meth:`SysclientSocket.fail`: the phone actor sees ``ConnectionLost`` with the
reason and reconnects), which is how a half-open Devices is noticed (issue 8.13). While a
ping is unanswered no second one is sent.

Why one task (issue 14): a task and a timer per phone cost memory and one wake-up per
phone per interval (7 % of a core for 1,000 phones, 40 % for 10,000, at 15 s). Here the
connections wait in a queue ordered by when their ping is due (every one is re-queued
``interval`` ahead, so appending keeps the order), and so do the sent pings by their pong
deadline: each wake-up pings every connection due within the next ``slack`` seconds in
one batch, and checks the deadlines that passed; the work per ping is O(1) and the task
sleeps until the next due time (not at all while there is nothing to watch). The task is
a trio system task started on the first :meth:`watch` and ending when nothing is left,
so whoever builds a :class:`~provd.actors.phone.PhoneContext` gets it without wiring.

A ping never blocks the task on one connection: a connection whose owner is sending is
retried a moment later, and a batch that cannot be written within ``SEND_BUDGET``
seconds (a peer with a full TCP window) ends the connection it was writing to.
"""

from __future__ import annotations

import collections

import structlog
import trio

from ..transport import ConnectionLost
from ..transport.sysws import PING_SIZE, SysclientSocket, ping_frames

log = structlog.get_logger("provd.keepalive")

#: Seconds a batch of pings may take to write before the connection being written is given up.
SEND_BUDGET = 2.0
#: Seconds before retrying a connection whose owner was sending when its ping was due.
BUSY_RETRY = 0.05
#: Pings written between two yields to the event loop (a batch can be thousands).
CHECKPOINT_EVERY = 64


class KeepAlive:
    """Pings every watched connection; ``interval`` 0 turns pings off."""

    def __init__(self, interval: float, timeout: float) -> None:
        self.interval = interval
        self.timeout = timeout
        #: Batch width: pings due within this many seconds go out in one wake-up.
        self.slack = min(0.5, interval / 20)
        self._due: collections.deque[SysclientSocket] = collections.deque()
        self._busy: collections.deque[SysclientSocket] = collections.deque()
        #: The pings sent, one entry per batch: (pong deadline, when the batch was sent,
        #: its connections), in deadline order (no object per ping).
        self._waiting: collections.deque[tuple[float, float, list[SysclientSocket]]] = (
            collections.deque()
        )
        self._running = False
        self._wake: trio.Event | None = None
        self.watched = 0
        #: Pings sent and connections ended for a late pong (for tests and the bench).
        self.pings = 0
        self.timeouts = 0

    def watch(self, ws: SysclientSocket) -> None:
        if self.interval <= 0:
            return
        ws.ping_due = trio.current_time() + self.interval
        ws.ping_sent = None
        ws.watched = True
        self._due.append(ws)
        self.watched += 1
        if not self._running:
            self._running = True
            trio.lowlevel.spawn_system_task(self._run, name="provd.keepalive")
        elif self._wake is not None and len(self._due) == 1:
            self._wake.set()  # the task sleeps on an empty queue: the new due time is sooner

    def unwatch(self, ws: SysclientSocket) -> None:
        """Forget ``ws`` (lazily: it is dropped from the queues when met)."""
        if ws.watched:
            ws.watched = False
            self.watched -= 1

    async def _run(self) -> None:
        structlog.contextvars.clear_contextvars()
        try:
            while self._due or self._waiting or self._busy:
                now = trio.current_time()
                self._expire(now)
                await self._ping(now)
                await self._sleep()
        except Exception:  # a bug here must not take the daemon down with a system task
            log.exception("keepalive.crashed")
        finally:
            self._running = False

    def _expire(self, now: float) -> None:
        waiting = self._waiting
        while waiting and waiting[0][0] <= now:
            _, sent, pinged = waiting.popleft()
            for ws in pinged:
                if ws.ping_sent == sent and ws.watched and not ws.closed:
                    self.timeouts += 1
                    ws.fail(f"no pong from Devices within {self.timeout:g} s")

    async def _ping(self, now: float) -> None:
        due, limit = self._due, now + self.slack
        batch: list[SysclientSocket] = []
        while self._busy:
            batch.append(self._busy.popleft())
        while due and due[0].ping_due <= limit:
            batch.append(due.popleft())
        if not batch:
            return
        frames = ping_frames(len(batch))
        pinged: list[SysclientSocket] = []
        next_due = now + self.interval
        i = 0
        with trio.move_on_after(SEND_BUDGET) as scope:
            for i, ws in enumerate(batch):
                if ws.closed or not ws.watched:
                    continue
                if ws.ping_sent is None:
                    j = i * PING_SIZE
                    try:
                        rest = ws.ping_nowait(now, frames[j : j + PING_SIZE])
                        if rest:  # TLS, or a full socket buffer
                            await ws.send_rest(rest)
                    except ConnectionLost:
                        ws.fail("closed while pinging")
                        continue
                    if rest is None:  # the owner is sending: retry in a moment
                        self._busy.append(ws)
                        continue
                    pinged.append(ws)
                ws.ping_due = next_due
                due.append(ws)
                if i % CHECKPOINT_EVERY == CHECKPOINT_EVERY - 1:
                    await trio.lowlevel.checkpoint()  # the written pings need no yield
        if pinged:
            self.pings += len(pinged)
            self._waiting.append((now + self.timeout, now, pinged))
        if scope.cancelled_caught:  # stuck writing to batch[i]; the rest go next time
            stuck = batch[i]
            stuck.fail(f"ping to Devices not written within {SEND_BUDGET:g} s")
            for ws in batch[i + 1 :]:
                self._busy.append(ws)

    async def _sleep(self) -> None:
        now = trio.current_time()
        if self._busy:
            await trio.sleep(BUSY_RETRY)
            return
        times = []
        if self._due:
            times.append(self._due[0].ping_due)
        if self._waiting:
            times.append(self._waiting[0][0])
        if not times:
            return
        self._wake = trio.Event()
        try:
            with trio.move_on_at(max(now, min(times))):
                await self._wake.wait()
        finally:
            self._wake = None

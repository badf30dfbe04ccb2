"""Supervises the phone actors: one per MAC, one-for-one.

``start(mac)`` (re)starts a phone's actor: a running one is cancelled first, so a new
provisioning code always begins with a fresh identify. An actor that crashes with an
unexpected exception (a bug: the actor handles network, URL and store failures itself) is
restarted after a back-off that grows up to ``provisioning.restart_cap``; it is never given
up (issue 8.4). A new Devices URL ends the pause at once, and so does ``start`` (a new
``ProvisioningPhone``): :meth:`is_running` is false while an actor waits after a crash.
The pause starts afresh once a run lived ``backoff_reset_after`` seconds. Cancellation is
not a crash. Per-MAC bookkeeping is dropped when the actor ends, so nothing grows with the
number of phones ever seen.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import structlog
import trio

from ..backoff import Backoff
from ..store.records import PhoneRecord
from .phone import PhoneContext, run_phone

log = structlog.get_logger("provd.supervisor")

#: First pause after a crash, seconds; it doubles up to ``provisioning.restart_cap``.
RESTART_INITIAL = 1.0


class PhoneSupervisor:
    def __init__(self, ctx: PhoneContext, *, clock=time.monotonic) -> None:
        self.ctx = ctx
        self._clock = clock
        self._nursery: trio.Nursery | None = None
        self._scopes: dict[str, trio.CancelScope] = {}
        #: MACs whose actor pauses after a crash.
        self._pausing: set[str] = set()
        #: Crashes per MAC of the running actors (dropped when an actor ends or stops).
        self.restarts: dict[str, int] = {}

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Start an actor for every stored phone that can still register ("instance restart")."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            started = self.start_loaded(self.ctx.directory.all())
            log.info("supervisor.started", phones=started)
            task_status.started()
            await trio.sleep_forever()

    @staticmethod
    def wants(record: PhoneRecord) -> bool:
        """A stored phone that gets an actor at start: it can still register."""
        return record.assigned or record.state == "pending"

    def start_loaded(self, records: Iterable[PhoneRecord]) -> int:
        """Start an actor for each of ``records`` (loaded from the store) that
        :meth:`wants` one and has none yet; returns how many were started. The daemon
        calls it for each page of phones it loads at start (issue 14: the first phones
        connect while the rest load)."""
        started = 0
        for record in records:
            if self.wants(record) and record.mac not in self._scopes:
                self.start(record.mac)
                started += 1
        return started

    @property
    def running(self) -> int:
        return len(self._scopes)

    def is_running(self, mac: str) -> bool:
        """An actor is working for ``mac`` (not pausing after a crash)."""
        return mac in self._scopes and mac not in self._pausing

    def start(self, mac: str) -> None:
        assert self._nursery is not None, "supervisor not running"
        self.stop(mac)
        scope = trio.CancelScope()
        self._scopes[mac] = scope
        self._nursery.start_soon(self._supervise, mac, scope, name=f"phone:{mac}")

    def stop(self, mac: str) -> None:
        scope = self._scopes.pop(mac, None)
        if scope is not None:
            scope.cancel()
        self._pausing.discard(mac)
        self.restarts.pop(mac, None)

    async def _supervise(self, mac: str, scope: trio.CancelScope) -> None:
        p = self.ctx.config.provisioning
        backoff = Backoff(initial=min(RESTART_INITIAL, p.restart_cap), cap=p.restart_cap)
        with scope:
            try:
                while True:
                    began = self._clock()
                    try:
                        await run_phone(mac, self.ctx)
                        return
                    except Exception as exc:
                        if self._clock() - began >= p.backoff_reset_after:
                            backoff.reset()
                        crashes = self.restarts.get(mac, 0) + 1
                        self.restarts[mac] = crashes
                        delay = backoff.next_delay()
                        error = f"{type(exc).__name__}: {exc}"[:300]
                        self._set_actor(mac, "crashed", error, crashes=crashes)
                        log.error(
                            "supervisor.actor_crashed",
                            mac=mac,
                            error=error,
                            crashes=crashes,
                            restart_in=round(delay, 1),
                        )
                        log.debug("supervisor.actor_crash_trace", mac=mac, exc_info=True)
                    self._pausing.add(mac)
                    try:
                        with trio.move_on_after(delay):
                            await self.ctx.locator.wait_changed()  # a new URL: retry now
                    finally:
                        self._pausing.discard(mac)
            finally:
                if self._scopes.get(mac) is scope:
                    del self._scopes[mac]
                    self.restarts.pop(mac, None)

    def _set_actor(self, mac: str, state: str, error: str | None, crashes: int = 0) -> None:
        directory = self.ctx.directory
        directory.set_actor(mac, state, error)
        status = directory.actors.get(mac)
        if status is not None and crashes:
            status.crashes = crashes

"""Supervises the phone actors: one per MAC, one-for-one.

``start(mac)`` (re)starts a phone's actor: a running one is cancelled first, so a new
provisioning code always begins with a fresh identify. An actor that crashes with an
unexpected exception (a bug, never a network error: the actor handles those itself) is
restarted after a back-off, unless it crashed ``MAX_RESTARTS`` times within
``RESTART_WINDOW`` seconds; then it stays down and says so in the log. Cancellation is not a
crash.
"""

from __future__ import annotations

import time

import structlog
import trio

from ..backoff import Backoff
from .phone import PhoneContext, run_phone

log = structlog.get_logger("provd.supervisor")

MAX_RESTARTS = 5
RESTART_WINDOW = 60.0


class PhoneSupervisor:
    def __init__(self, ctx: PhoneContext, *, clock=time.monotonic) -> None:
        self.ctx = ctx
        self._clock = clock
        self._nursery: trio.Nursery | None = None
        self._scopes: dict[str, trio.CancelScope] = {}
        self.restarts: dict[str, int] = {}

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Start an actor for every stored phone that can still register ("instance restart")."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            started = 0
            for record in self.ctx.directory.all():
                if record.assigned or record.state == "pending":
                    self.start(record.mac)
                    started += 1
            log.info("supervisor.started", phones=started)
            task_status.started()
            await trio.sleep_forever()

    @property
    def running(self) -> int:
        return len(self._scopes)

    def is_running(self, mac: str) -> bool:
        return mac in self._scopes

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

    async def _supervise(self, mac: str, scope: trio.CancelScope) -> None:
        crashes: list[float] = []
        backoff = Backoff(initial=1.0, cap=30.0)
        with scope:
            try:
                while True:
                    try:
                        await run_phone(mac, self.ctx)
                        return
                    except Exception:
                        now = self._clock()
                        crashes = [t for t in crashes if now - t < RESTART_WINDOW] + [now]
                        self.restarts[mac] = self.restarts.get(mac, 0) + 1
                        if len(crashes) > MAX_RESTARTS:
                            log.error("supervisor.gave_up", mac=mac, crashes=len(crashes))
                            return
                        log.exception("supervisor.actor_crashed", mac=mac)
                    await trio.sleep(backoff.next_delay())
            finally:
                if self._scopes.get(mac) is scope:
                    del self._scopes[mac]

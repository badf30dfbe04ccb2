"""The daemon's observability, wired in one place: metrics, access log, health listener,
PBX session watcher, and the reachability facts ``provd status`` shows.

The daemon holds one :class:`Observability`; it reads the daemon's state (never writes it)
so the actors stay free of metrics code. The phone actors report to the shared Devices
:class:`~provd.outage.OutageTracker` in their context; the PBX's session list is watched
here (sampled twice a second; a PBX reconnects on a back-off of seconds).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import trio

from ..health import HealthApp, serve_health
from ..metrics import AccessLog, Metrics
from ..outage import OutageTracker

if TYPE_CHECKING:
    from .daemon import Daemon

#: Seconds between samples of the PBX session list.
PBX_WATCH_INTERVAL = 0.5


class Observability:
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.metrics = Metrics(self)
        self.pbx = OutageTracker("pbx")
        self.ready = False
        self.health_urls: list[str] = []
        self._devices_url = ""
        self._devices_url_since: float | None = None

    # --- DaemonView (read at scrape time) -------------------------------------------------

    def phone_states(self) -> Iterable[tuple[str, bool]]:
        return ((r.state, r.online) for r in self.daemon.directory.all())

    def handshakes(self) -> tuple[int, int]:
        limiter = self.daemon.phones_ctx.handshakes
        return limiter.in_use, limiter.waiting

    def pbx_sessions(self) -> int:
        return len(self.daemon.app_ctx.pbx_sessions)

    def devices_snapshot(self) -> dict[str, Any]:
        return self.daemon.phones_ctx.devices_outage.snapshot()

    def reload_counts(self) -> tuple[int, int]:
        return self.daemon.reloads, getattr(self.daemon, "reloads_refused", 0)

    # --- wiring -----------------------------------------------------------------------------

    def phones_app(self) -> AccessLog:
        """The phones HTTP app with the access log and fetch metrics around it."""
        daemon = self.daemon
        return AccessLog(
            lambda: daemon.phones_app, self.metrics, lambda: daemon.config.log.access_rate
        )

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The health listener (if configured) and the PBX watcher, until cancelled."""
        async with trio.open_nursery() as nursery:
            listen = self.daemon.config.metrics.listen
            if listen:
                app = HealthApp(self.metrics, self.readiness)
                self.health_urls = await nursery.start(serve_health, app, listen)
            nursery.start_soon(self._watch)
            task_status.started()

    async def _watch(self) -> None:
        while True:
            sessions = self.pbx_sessions()
            if sessions and self.pbx.up is not True:
                self.pbx.session_up()
            elif not sessions and self.pbx.up is True:
                self.pbx.session_lost("no PBX App object session")
            url = self.daemon.locator.url
            if url != self._devices_url:
                self._devices_url, self._devices_url_since = url, time.time()
            await trio.sleep(PBX_WATCH_INTERVAL)

    # --- facts for /readyz and `provd status` ----------------------------------------------

    def readiness(self) -> dict[str, Any]:
        devices = self.devices_snapshot()
        return {
            "ready": self.ready,
            "pbx_session_up": self.pbx_sessions() > 0,
            "devices_up": devices["up"] is not False,
            "phones": len(self.daemon.directory),
        }

    def status(self) -> dict[str, Any]:
        """Extra fields of the control socket's ``status`` answer."""
        return {
            "devices": {
                **self.devices_snapshot(),
                "url": self.daemon.locator.url,
                "url_since": self._devices_url_since,
            },
            "pbx": {**self.pbx.snapshot(), "sessions": self.pbx_sessions()},
            "metrics": self.health_urls,
        }

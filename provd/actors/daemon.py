"""The top supervisor: one-cancels-all over the store, the listeners and the phone actors.

Shape (outer to inner): the store actor lives in the outer nursery and outlives everything
that writes to it; the inner nursery holds the phone supervisor, the AppWebsocket server,
the phones HTTP server, the control socket and the signal loop. SIGTERM/SIGINT cancel the
inner nursery (sessions close with 1001, phones disconnect), then the store drains its
queue and closes: pending writes are committed before exit. SIGHUP reloads the config file;
a broken file is refused and the running config kept.
"""

from __future__ import annotations

import functools
import signal
import ssl
import time
from typing import Any

import attrs
import structlog
import trio

from .. import __version__, logs, systemd
from ..config import DEFAULT_PASSWORD, Config, ConfigError
from ..phones import FetchRecord, PhonesApp, Renderer, serve_phones
from ..store.actor import Store
from ..transport import serve
from ..transport.tls import context_for
from . import control
from .appservice import AppServiceContext, handle_connection
from .devices_api import DevicesApi
from .phone import PhoneContext
from .state import DevicesLocator, Outcomes, PhoneDirectory
from .supervisor import PhoneSupervisor

log = structlog.get_logger("provd.daemon")

#: Settings a reload cannot change without a restart (listeners, store).
RESTART_ONLY = (
    ("appservice", "listen"),
    ("appservice", "tls_cert"),
    ("appservice", "tls_key"),
    ("phones", "listen"),
    ("phones", "tls_cert"),
    ("phones", "tls_key"),
    ("store", "path"),
    ("control", "socket"),
)


@attrs.frozen
class Bound:
    """Where a started daemon listens (ports resolved when the config said 0)."""

    appservice_url: str
    phones_urls: list[str]
    control_socket: str


def server_ssl_context(cert: str, key: str) -> ssl.SSLContext | None:
    if not cert:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


def warn_unverified_devices_tls(config: Config) -> None:
    """The loud warning for ``devices.verify = false`` (every start and reload)."""
    if not config.devices.verify:
        log.warning(
            "daemon.devices_tls_unverified",
            setting="devices.verify",
            hint="wss:// certificates of the Devices service are NOT checked; "
            "set devices.ca_file and devices.verify = true",
        )


class Daemon:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.started = time.monotonic()
        self.store = Store(config.store.path)
        self.directory = PhoneDirectory()
        self.locator = DevicesLocator()
        self.phones_ctx = PhoneContext(
            config=config,
            store=self.store,
            directory=self.directory,
            locator=self.locator,
            outcomes=Outcomes(),
            handshakes=trio.Semaphore(config.provisioning.max_handshakes),
        )
        self.supervisor = PhoneSupervisor(self.phones_ctx)
        self.app_ctx = AppServiceContext(phones=self.phones_ctx, supervisor=self.supervisor)
        self.phones_ctx.devices_api = DevicesApi(
            self.locator, self.app_ctx.current_pbx, self._devices_tls
        )
        self.renderer = Renderer(
            transport=config.phones.sip_transport, templates=config.phones.templates or None
        )
        self.phones_app = PhonesApp(self.renderer, self._lookup, self._record_fetch, config.phones)
        self._inner: trio.Nursery | None = None
        self.reloads = 0

    def _devices_tls(self, url: str) -> ssl.SSLContext | None:
        """The client TLS context for a Devices URL, from the live config."""
        d = self.config.devices
        return context_for(url, ca_file=d.ca_file, verify=d.verify)

    async def run(self, *, task_status: trio.TaskStatus[Bound] = trio.TASK_STATUS_IGNORED) -> None:
        config = self.config
        if config.appservice.password == DEFAULT_PASSWORD:
            log.warning("daemon.default_password", hint="set appservice.password")
        warn_unverified_devices_tls(config)
        async with trio.open_nursery() as outer:
            await outer.start(self.store.run)
            try:
                await self._run_inner(task_status)
            finally:
                self.store.close()
        log.info("daemon.stopped")

    async def _run_inner(self, task_status: trio.TaskStatus[Bound]) -> None:
        config = self.config
        records = await self.store.call(_load_and_mark_offline)
        self.directory.load(records)
        url = config.provisioning.devices_url or await self.store.call(
            lambda db: db.setting("devices_url")
        )
        self.locator.set(url or "")
        async with trio.open_nursery() as inner:
            self._inner = inner
            await inner.start(self.supervisor.run)
            a = config.appservice
            ws_server = await inner.start(
                functools.partial(
                    serve,
                    functools.partial(handle_connection, ctx=self.app_ctx),
                    a.listen,
                    ssl_context=server_ssl_context(a.tls_cert, a.tls_key),
                    max_message_size=a.max_message_size,
                )
            )
            phones_urls = await inner.start(serve_phones, self.phones_app, config.phones)
            control_path = await inner.start(
                control.serve_control, config.control_socket, self._control_handlers()
            )
            await inner.start(self._signals)  # handlers in place before READY
            interval = systemd.watchdog_interval()
            if interval:
                inner.start_soon(self._watchdog, interval)
            host = a.listen.rpartition(":")[0]
            scheme = "wss" if a.tls_cert else "ws"
            bound = Bound(
                appservice_url=f"{scheme}://{host}:{ws_server.port}/",
                phones_urls=list(phones_urls),
                control_socket=control_path,
            )
            log.info(
                "daemon.ready",
                version=__version__,
                appservice=bound.appservice_url,
                phones=",".join(bound.phones_urls),
                stored_phones=len(self.directory),
                devices_url=self.locator.url or "-",
            )
            systemd.notify("READY=1", f"STATUS=serving {len(self.directory)} phones")
            task_status.started(bound)

    def shutdown(self) -> None:
        if self._inner is not None:
            self._inner.cancel_scope.cancel()

    async def _signals(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
            task_status.started()
            async for signum in signals:
                if signum == signal.SIGHUP:
                    self.reload()
                else:
                    log.info("daemon.stopping", signal=signal.Signals(signum).name)
                    systemd.notify("STOPPING=1")
                    self.shutdown()
                    return

    async def _watchdog(self, interval: float) -> None:
        while True:
            systemd.notify("WATCHDOG=1")
            await trio.sleep(interval)

    def reload(self) -> bool:
        """Re-read the config file; apply what can change live. False if refused."""
        systemd.reloading()
        try:
            new = Config.load(self.config.source) if self.config.source else self.config
        except ConfigError as exc:
            log.error("daemon.reload_refused", error=str(exc))
            systemd.notify("READY=1", "STATUS=reload refused; old config kept")
            return False
        for section, key in RESTART_ONLY:
            if getattr(getattr(new, section), key) != getattr(getattr(self.config, section), key):
                log.warning("daemon.reload_needs_restart", setting=f"{section}.{key}")
        logs.configure(new.log.level, fmt=new.log.format)
        old, self.config = self.config, new
        self.phones_ctx.config = new
        warn_unverified_devices_tls(new)
        self.phones_app.settings = new.phones
        if (new.phones.templates, new.phones.sip_transport) != (
            old.phones.templates,
            old.phones.sip_transport,
        ):
            self.renderer = Renderer(
                transport=new.phones.sip_transport, templates=new.phones.templates or None
            )
            self.phones_app.renderer = self.renderer
        else:
            self.renderer.reload()
        self.reloads += 1
        log.info("daemon.reloaded", log_level=new.log.level, source=new.source or "-")
        systemd.notify("READY=1", f"STATUS=serving {len(self.directory)} phones")
        return True

    # --- phones HTTP server callbacks ---------------------------------------------------------

    async def _lookup(self, mac: str):
        return self.directory.data(mac)

    async def _record_fetch(self, fetch: FetchRecord) -> None:
        self.store.submit(lambda db: db.record_fetches([fetch]))

    # --- control socket -----------------------------------------------------------------------

    def _control_handlers(self) -> dict[str, control.Handler]:
        return {"status": self._control_status, "remove": self._control_remove}

    async def _control_status(self, _request: dict[str, Any]) -> dict[str, Any]:
        phones = self.directory.all()
        states: dict[str, int] = {}
        for record in phones:
            states[record.state] = states.get(record.state, 0) + 1
        return {
            "ok": True,
            "version": __version__,
            "uptime": control.uptime_since(self.started),
            "pbx_sessions": len(self.app_ctx.pbx_sessions),
            "devices_url": self.locator.url,
            "phones": len(phones),
            "online": sum(1 for r in phones if r.online),
            "states": states,
            "actors": self.supervisor.running,
            "reloads": self.reloads,
        }

    async def _control_remove(self, request: dict[str, Any]) -> dict[str, Any]:
        mac = control.mac_arg(request)
        self.supervisor.stop(mac)
        self.directory.remove(mac)
        removed = await self.store.call(lambda db: db.remove_phone(mac))
        log.info("phone.removed", mac=mac, existed=removed)
        return {"ok": True, "removed": removed}


def _load_and_mark_offline(db) -> list:
    db.set_all_offline()
    return db.phones()

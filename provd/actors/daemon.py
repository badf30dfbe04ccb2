"""The top supervisor: one-cancels-all over the store, the listeners and the phone actors.

Shape (outer to inner): the store actor lives in the outer nursery and outlives everything
that writes to it; the inner nursery holds the phone supervisor, the AppWebsocket server,
the phones HTTP server, the control socket and the signal loop. SIGTERM/SIGINT cancel the
inner nursery (sessions close with 1001, phones disconnect), then the store drains its
queue and closes: pending writes are committed before exit. SIGHUP reloads the config file;
a broken file is refused and the running config kept.

Supervision contract (README "Operations"): only a failure of provd's own core ends the
daemon, raised as :class:`~provd.exits.CoreFailure` and turned by ``provd run`` into ONE
log line at ``<2>`` naming the key and the path or address, and a distinct exit status
(:class:`~provd.exits.ExitStatus`):

- another daemon holds the database lock or serves the control socket (``LOCKED``, 6);
- the store cannot be opened, created or migrated at start (``STORE``, 3);
- a TLS certificate or key cannot be loaded (``TLS``, 5);
- a listener cannot bind (``LISTEN``, 4);
- the database file was deleted or replaced while running (``STORE_LOST``, 7).

No input from a peer (PBX, Devices, phones), the control socket, a config file or a
template ends it: sessions and actors contain their own failures, the control server turns
every error into an error reply, and the reload path refuses what it cannot apply, logs it
once with the path, and keeps the running config. A store operation that SQLite refuses
(disk full, read-only) fails as a ``StoreError`` for its caller only.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import signal
import ssl
import time
from collections.abc import Iterator
from typing import Any

import attrs
import structlog
import trio

from .. import __version__, logs, systemd
from ..app import AppFiles
from ..config import Config, ConfigError, password_warnings
from ..exits import CoreFailure, ExitStatus, find_core_failure
from ..phones import (
    CheckedRenderer,
    FetchRecord,
    FetchRecorder,
    PhonesApp,
    TemplateCheckError,
    serve_phones,
)
from ..phones.keys import keys_from
from ..phones.pbx import PbxDirectory
from ..store.actor import Store, StoreError
from ..store.lock import DatabaseLock
from ..transport import serve
from ..transport.tls import context_for
from . import control, devices_control
from .admin import AdminApi, ObservedDirectory
from .appservice import AppServiceContext, handle_connection
from .devices_api import DevicesApi, DevicesSession
from .observe import Observability
from .pbxadmin import PbxAdminClient
from .pbxdata import PbxData
from .phone import PhoneContext
from .registration import RegistrationChecker
from .state import DevicesLocator, HandshakeLimiter, Outcomes
from .supervisor import PhoneSupervisor

log = structlog.get_logger("provd.daemon")

#: Settings a reload cannot change without a restart (listeners, store).
RESTART_ONLY = (
    ("appservice", "listen"),
    ("appservice", "tls_cert"),
    ("appservice", "tls_key"),
    ("appservice", "max_connections"),
    ("appservice", "handshake_timeout"),
    ("appservice", "max_login_message_size"),
    ("phones", "listen"),
    ("phones", "tls_cert"),
    ("phones", "tls_key"),
    ("store", "path"),
    ("control", "socket"),
    ("metrics", "listen"),
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


def checked_ssl_context(section: str, cert: str, key: str) -> ssl.SSLContext | None:
    """:func:`server_ssl_context`, or a ``TLS`` :class:`CoreFailure` naming the key and file."""
    for name, path in (("tls_cert", cert), ("tls_key", key)):
        if not path:
            continue
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            raise CoreFailure(
                ExitStatus.TLS,
                "daemon.start_failed",
                setting=f"{section}.{name}",
                path=path,
                error=exc.strerror or str(exc),
            ) from exc
    try:
        return server_ssl_context(cert, key)
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise CoreFailure(
            ExitStatus.TLS,
            "daemon.start_failed",
            setting=f"{section}.tls_cert",
            path=cert,
            error=f"cannot load certificate and key {key} ({exc})",
        ) from exc


def _leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


async def _start_listener(
    nursery: trio.Nursery, key: str, address: str, fn: Any, *args: Any
) -> Any:
    """``nursery.start(fn, *args)``; a failure to bind becomes a ``LISTEN`` CoreFailure."""
    try:
        return await nursery.start(fn, *args)
    except CoreFailure:
        raise
    except Exception as exc:
        if (failure := find_core_failure(exc)) is not None:
            raise failure  # noqa: B904 - keeps its own cause (the OSError)
        leaf = _leaf(exc)
        raise CoreFailure(
            ExitStatus.LISTEN,
            "daemon.start_failed",
            setting=key,
            address=address,
            error=getattr(leaf, "strerror", None) or f"{type(leaf).__name__}: {leaf}",
        ) from exc


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
        self.store = Store(
            config.store.path,
            fetch_history=config.store.fetch_history,
            max_user_agent=config.store.max_user_agent,
            check_interval=config.store.check_interval,
        )
        self.lock = DatabaseLock(config.store.path)
        self.directory = ObservedDirectory()  # a PhoneDirectory that tells the admin App
        self.locator = DevicesLocator()
        self.phones_ctx = PhoneContext(
            config=config,
            store=self.store,
            directory=self.directory,
            locator=self.locator,
            outcomes=Outcomes(),
            handshakes=HandshakeLimiter(
                config.provisioning.max_handshakes, config.provisioning.code_handshakes
            ),
        )
        self.supervisor = PhoneSupervisor(self.phones_ctx)
        self.app_ctx = AppServiceContext(phones=self.phones_ctx, supervisor=self.supervisor)
        self.phones_ctx.devices_api = DevicesApi(
            self.locator, self.app_ctx.current_pbx, self._devices_tls
        )
        self.devices_session = DevicesSession(
            self.locator,
            self.app_ctx.current_pbx,
            self.app_ctx.wait_pbx_changed,
            self.store,
            self._devices_session_settings,
            self._devices_tls,
        )
        #: PbxAdminApi on the newest PBX session offering it (spec 8.4).
        self.pbx_admin = PbxAdminClient(self.app_ctx.pbx_admin_session)
        #: Each phone's lifecycle, registrations checked through PbxAdminApi.
        self.registration = RegistrationChecker(
            lambda: self.config, self.pbx_admin, self._write_lifecycles
        )
        self.app_ctx.pbx_listeners.append(self.registration.wake)
        #: The config as the file says, before the administrator's stored settings.
        self._file_config = config
        self.admin = AdminApi(self)
        self.app_ctx.admin = self.admin
        #: The PBX's node info and favourites, for the phone files (PbxApi).
        self.pbx_data = PbxData(self.store, self.directory, lambda: self.config.pbx)
        self.app_ctx.pbx_data = self.pbx_data
        # Raises TemplateCheckError (naming the file) for a broken operator template.
        self.renderer = checked_renderer(config, self.pbx_data.directory)
        self.phones_ctx.renderer = lambda: self.renderer  # the phone page's file preview
        self.phones_ctx.lifecycle = self._lifecycle_of  # the phone page's lifecycle
        self.fetches = FetchRecorder(self._write_fetches)
        self.phones_app = PhonesApp(self.renderer, self._lookup, self._record_fetch, config.phones)
        self._inner: trio.Nursery | None = None
        self.reloads = 0
        #: The last reload's outcome (None: none yet), for ``status`` and ``provd reload``.
        self.last_reload: dict[str, Any] | None = None
        self.reloads_refused = 0
        self.observe = Observability(self)

    def _devices_tls(self, url: str) -> ssl.SSLContext | None:
        """The client TLS context for a Devices URL, from the live config."""
        d = self.config.devices
        return context_for(url, ca_file=d.ca_file, verify=d.verify)

    def _devices_session_settings(self) -> tuple[float, float, float, float]:
        """Pings of an AppWebsocket session, back-off of the phone actors (live config)."""
        a, p = self.config.appservice, self.config.provisioning
        return a.ping_interval, a.ping_timeout, p.backoff_initial, p.backoff_cap

    async def run(self, *, task_status: trio.TaskStatus[Bound] = trio.TASK_STATUS_IGNORED) -> None:
        """Run until SIGTERM/SIGINT or :meth:`shutdown`.

        Raises:
            CoreFailure: a failure of provd's own core (see the module docstring).
        """
        config = self.config
        for warning in password_warnings(config):
            log.warning("daemon.weak_password", hint=warning)
        warn_unverified_devices_tls(config)
        self.lock.acquire()
        try:
            async with trio.open_nursery() as outer:
                await outer.start(self.store.run)
                try:
                    await self._run_inner(task_status)
                finally:
                    self.store.close()
        except BaseExceptionGroup as group:
            failure = find_core_failure(group)
            if failure is None:
                raise
            raise failure  # noqa: B904 - keeps its own cause (the OSError)
        finally:
            self.lock.release()
            self.admin.close()
        log.info("daemon.stopped")

    async def _run_inner(self, task_status: trio.TaskStatus[Bound]) -> None:
        config = self.config
        with self._store_failure():
            # The first page only: its phones connect while the rest load (issue 14).
            first = await self.store.call(_load_and_mark_offline)
            url = config.provisioning.devices_url or await self.store.call(
                lambda db: db.setting("devices_url")
            )
        self._loaded(*first)
        self.locator.set(url or "")
        await self.admin.load()
        if self.admin.stored:  # the administrator's settings, before the first render
            new = self.admin.overlay(self.config)
            self.renderer = self.phones_app.renderer = checked_renderer(
                new, self.pbx_data.directory
            )
            self.config = self.phones_ctx.config = new
            self.phones_app.settings = new.phones
        try:
            await self.pbx_data.load()  # the files render as before, without the PBX
        except StoreError as exc:
            log.error("pbx.stored_data_unreadable", setting="pbx_data", error=str(exc))
        a = config.appservice
        ws_ssl = checked_ssl_context("appservice", a.tls_cert, a.tls_key)
        checked_ssl_context("phones", config.phones.tls_cert, config.phones.tls_key)
        async with trio.open_nursery() as inner:
            self._inner = inner
            await inner.start(self.supervisor.run)  # actors for the first page
            with self._store_failure():
                after = first[0][-1].mac if len(first[0]) == FIRST_PAGE else None
                while after is not None:  # the rest, a page at a time
                    page = await self.store.call(functools.partial(_load_page, after, PAGE))
                    self._loaded(*page)
                    self.supervisor.start_loaded(page[0])
                    after = page[0][-1].mac if len(page[0]) == PAGE else None
                lifecycles = await self.store.call(lambda db: db.lifecycles())
            # Every phone loaded: the lifecycles (on the records as they are now; actors
            # may have changed some meanwhile), then the checker follows each change.
            self.registration.load(lifecycles, self.directory.all())
            self.directory.listeners.append(self.registration.phone_changed)
            ws_server = await _start_listener(
                inner,
                "appservice.listen",
                a.listen,
                functools.partial(
                    serve,
                    functools.partial(handle_connection, ctx=self.app_ctx),
                    a.listen,
                    ssl_context=ws_ssl,
                    # The full max_message_size applies once a connection has logged in.
                    max_message_size=a.max_login_message_size,
                    max_connections=a.max_connections,
                    handshake_timeout=a.handshake_timeout,
                    http=AppFiles(a.admin_app, a.title),
                ),
            )
            inner.start_soon(self.app_ctx.throttle.run)
            await inner.start(self.devices_session.run)
            await inner.start(self.fetches.run)
            await inner.start(self.registration.run)
            phones_urls = await _start_listener(
                inner,
                "phones.listen",
                config.phones.listen,
                serve_phones,
                self.observe.phones_app(),
                config.phones,
            )
            await inner.start(self.observe.run)
            control_path = await _start_listener(
                inner,
                "control.socket",
                config.control_socket,
                control.serve_control,
                config.control_socket,
                self._control_handlers(),
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
            # Everything loaded so far (phones, templates, modules) lives as long as the
            # daemon: keep it out of the collector's full passes, which otherwise scan it
            # all each time (~0.5 s with 1,000 phones on a busy machine: a boot storm's p99).
            gc.freeze()
            log.info(
                "daemon.ready",
                version=__version__,
                appservice=bound.appservice_url,
                phones=",".join(bound.phones_urls),
                stored_phones=len(self.directory),
                devices_url=self.locator.url or "-",
            )
            systemd.notify("READY=1", f"STATUS=serving {len(self.directory)} phones")
            self.observe.ready = True
            task_status.started(bound)

    @contextlib.contextmanager
    def _store_failure(self) -> Iterator[None]:
        """A StoreError while loading at start is a ``STORE`` CoreFailure."""
        try:
            yield
        except StoreError as exc:
            raise CoreFailure(
                ExitStatus.STORE,
                "daemon.start_failed",
                setting="store.path",
                path=self.config.store.path,
                error=str(exc),
            ) from exc

    def _loaded(self, records: list, fetches: dict[str, FetchRecord]) -> None:
        """A page of stored phones: into the directory, and the newest fetch of each phone
        that gets an actor kept for its first identify."""
        self.directory.load(records)
        last = self.phones_ctx.last_fetches
        for record in records:
            if self.supervisor.wants(record):
                last[record.mac] = fetches.get(record.mac)

    def shutdown(self) -> None:
        self.observe.ready = False
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
        """Re-read the config file; apply what can change live. False if refused.

        Never raises: whatever goes wrong is logged once, with the file's path, and the
        running config stays.
        """
        systemd.reloading()
        source = self.config.source
        try:
            return self._reload()
        except ConfigError as exc:
            error = str(exc)
            log.error("daemon.reload_refused", path=source or "-", error=error)
        except TemplateCheckError as exc:
            error = f"{exc.template}: {exc.message}"
            log.error(
                "daemon.reload_refused",
                path=source or "-",
                template=exc.template,
                error=exc.message,
            )
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            log.error("daemon.reload_refused", path=source or "-", error=error)
            log.debug("daemon.reload_refused_traceback", exc_info=True)
        systemd.notify("READY=1", "STATUS=reload refused; old config kept")
        self.last_reload = {"ok": False, "error": error, "time": time.time()}
        self.reloads_refused += 1
        return False

    def _reload(self) -> bool:
        from_file = Config.load(self.config.source) if self.config.source else self._file_config
        new = self.admin.overlay(from_file)  # the administrator's settings win over the file
        # Built and checked before anything changes: if this fails, the old config stays whole.
        renderer = checked_renderer(new, self.pbx_data.directory)
        for section, key in RESTART_ONLY:
            if getattr(getattr(new, section), key) != getattr(getattr(self.config, section), key):
                log.warning("daemon.reload_needs_restart", setting=f"{section}.{key}")
        logs.configure(new.log.level, fmt=new.log.format)
        self._file_config = from_file
        self.config = new
        self.phones_ctx.config = new
        warn_unverified_devices_tls(new)
        self.phones_app.settings = new.phones
        # A fresh renderer (checked above): edited templates, empty cache, new transport.
        self.renderer = self.phones_app.renderer = renderer
        log.info("phones.templates_reloaded", templates=new.phones.templates or "-")
        if self._inner is not None:  # new [pbx] switches: bump the phones whose files change
            self._inner.start_soon(self.pbx_data.reconfigure)
        self.reloads += 1
        self.last_reload = {"ok": True, "error": "", "time": time.time()}
        log.info("daemon.reloaded", log_level=new.log.level, source=new.source or "-")
        systemd.notify("READY=1", f"STATUS=serving {len(self.directory)} phones")
        self.registration.wake()  # [registration] may have changed
        return True

    # --- phones HTTP server callbacks ---------------------------------------------------------

    async def _lookup(self, mac: str):
        return self.directory.data(mac)

    async def _record_fetch(self, fetch: FetchRecord) -> None:
        self.fetches.record(fetch)  # buffered: never blocks a phone's request

    def _lifecycle_of(self, mac: str) -> Any:
        """The phone's lifecycle (issue 11.1) for its page."""
        return self.registration.book.phones.get(mac)

    async def _write_fetches(self, rows: list[FetchRecord]) -> None:
        await self.store.call(lambda db: db.record_fetches(rows))
        for row in rows:  # newer than what the start read for its actor's identify
            self.phones_ctx.last_fetches.pop(row.mac, None)
        self.registration.fetched(rows)  # the lifecycle's "fetched" step

    async def _write_lifecycles(self, rows: list) -> None:
        await self.store.call(lambda db: db.put_lifecycles(rows))

    # --- control socket -----------------------------------------------------------------------

    def _control_handlers(self) -> dict[str, control.Handler]:
        return {
            "status": self._control_status,
            "remove": self._control_remove,
            "keys": self._control_keys,
            "reload": self._control_reload,
            "actor": self._control_actor,
            **devices_control.handlers(self),
        }

    async def _control_reload(self, _request: dict[str, Any]) -> dict[str, Any]:
        ok = self.reload()
        answer: dict[str, Any] = {"ok": ok, "source": self.config.source}
        if not ok and self.last_reload is not None:
            answer["error"] = self.last_reload["error"]
        return answer

    async def _control_status(self, _request: dict[str, Any]) -> dict[str, Any]:
        phones = self.directory.all()
        states: dict[str, int] = {}
        for record in phones:
            states[record.state] = states.get(record.state, 0) + 1
        last = self.last_reload
        return {
            # False while the file on disk is one the daemon refused: the next restart
            # would fail on it.
            "ok": last is None or last["ok"],
            "last_reload": last,
            "version": __version__,
            "uptime": control.uptime_since(self.started),
            "pbx_sessions": len(self.app_ctx.pbx_sessions),
            "devices_url": self.locator.url,
            "phones": len(phones),
            "online": sum(1 for r in phones if r.online),
            "states": states,
            "actors": self.supervisor.running,
            "reloads": self.reloads,
            "pbx_data": self.pbx_data.summary(),
            "devices_session": self.devices_session.status.to_json(),
            "lifecycle": self.registration.book.counts(),
            "registration_checks": self.pbx_admin.available,
            "not_registered": [
                {"mac": w.mac, "since": w.since, "error": w.error}
                for w in self.registration.book.warned()[:20]
            ],
            **self.observe.status(),
            **self._actor_summary(),
        }

    def _actor_summary(self) -> dict[str, Any]:
        """Phone actors by state, and those not connected with their last error."""
        states: dict[str, int] = {}
        troubled = []
        for mac, status in self.directory.actors.items():
            states[status.state] = states.get(status.state, 0) + 1
            if status.error and status.state != "connected":
                troubled.append({"mac": mac, **status.to_json()})
        troubled.sort(key=lambda t: -t["since"])
        return {"actor_states": states, "actor_errors": troubled[:20]}

    async def _control_actor(self, request: dict[str, Any]) -> dict[str, Any]:
        mac = control.mac_arg(request)
        status = self.directory.actors.get(mac)
        running = self.supervisor.is_running(mac)
        return {"ok": True, "running": running, **(status.to_json() if status else {})}

    async def _control_remove(self, request: dict[str, Any]) -> dict[str, Any]:
        mac = control.mac_arg(request)
        # The store first: if SQLite refuses (disk full, read-only), the StoreError becomes
        # an error reply and the phone stays, in the database and in memory alike.
        removed = await self.store.call(lambda db: db.remove_phone(mac))
        self.supervisor.stop(mac)
        self.directory.remove(mac)
        logs.forget_secrets(owner=mac)
        log.info("phone.removed", mac=mac, existed=removed)
        return {"ok": True, "removed": removed}

    async def _control_keys(self, request: dict[str, Any]) -> dict[str, Any]:
        """Set a phone's key category/own keys (``provd phones keys``); served at once."""
        mac = control.mac_arg(request)
        category, keys = request.get("category"), request.get("keys")
        if category is not None and not isinstance(category, str):
            raise ValueError("category must be a string")
        if keys is not None:
            keys = [k.as_dict() for k in keys_from(keys, "keys")]

        def write(db):
            return db.phone(mac) if db.set_phone_keys(mac, category=category, keys=keys) else None

        record = await self.store.call(write)
        if record is None:
            return {"ok": False, "error": f"no phone {mac}"}
        self.directory.put(record)
        log.info("phone.keys_set", mac=mac, category=record.key_category, keys=len(record.keys))
        return {"ok": True}


def checked_renderer(config: Config, pbx: PbxDirectory | None = None) -> CheckedRenderer:
    """The renderer for ``config``, its templates compiled and tried on a sample phone.

    Raises:
        TemplateCheckError: a template is broken; names the file and the error.
    """
    renderer = CheckedRenderer(
        transport=config.phones.sip_transport,
        templates=config.phones.templates or None,
        settings=config.phones,
        pbx=pbx,
    )
    renderer.check()
    return renderer


#: Phones loaded before the first actors start, and per page after (issue 14: a restart's
#: first phone waited for all 10,000 to load).
FIRST_PAGE = 256
PAGE = 2000


def _load_and_mark_offline(db) -> tuple[list, dict[str, FetchRecord]]:
    db.set_all_offline()
    return _load_page("", FIRST_PAGE, db)


def _load_page(after: str, limit: int, db) -> tuple[list, dict[str, FetchRecord]]:
    """Up to ``limit`` phones after MAC ``after``, and their newest fetches."""
    records = db.phones(after, limit)
    fetches = db.last_fetches(records[0].mac, records[-1].mac) if records else {}
    return records, fetches

"""The simulated PBX: an App object (Websocket checkmark) connecting to provd, reconnecting.

Per connection (spec sections 2, 3, 7): password login with the App object's identity and
an ``info`` object shaped like a real PBX's, then ``PbxInfo``, then ``AppInfo`` (provd's
answer is how the PBX learns that provd publishes ``com.innovaphone.provisioning``), then
serve the Services API and PbxApi until the connection ends. Between connections it backs
off (doubling up to 32 s, half jitter, :class:`~provd.backoff.Backoff`) as a PBX does.

All protocol decisions live in the pure :class:`~.services.ServiceRegistry` and
:class:`~.pbxapi.PbxApiState`; this module is the loop, the dispatch and the fault hooks.
"""

from __future__ import annotations

from typing import Any

import attrs
import structlog
import trio

from ..backoff import Backoff
from ..protocol import LoginRefused, crypto
from ..protocol.login import Identity
from ..protocol.messages import (
    AppInfo,
    AppInfoResult,
    GetServiceLogin,
    KeepAlive,
    Message,
    PbxInfo,
    SubscribeServices,
    SubscribeServicesResult,
    UnknownMessage,
    UnsubscribeServices,
    UnsubscribeServicesResult,
)
from ..transport import AppWebsocket, ConnectionLost, connect, login_with_password
from .config import SimConfig
from .faults import Direction, FaultPlan, Party
from .pbxadmin import PbxAdminState
from .pbxapi import PbxApiState
from .services import ServiceEntry, ServiceRegistry
from .watch import Watch

log = structlog.get_logger("provd.sim.pbx")

APP_INFO_SRC = "pbx-appinfo"


def http_url(ws_url: str) -> str:
    """``ws://h/p`` → ``http://h/p`` (the App object's URL as a PBX shows it)."""
    if ws_url.startswith("wss://"):
        return "https://" + ws_url[6:]
    if ws_url.startswith("ws://"):
        return "http://" + ws_url[5:]
    return ws_url


def app_object_identity(config: SimConfig, url: str) -> Identity:
    """Who the App object is. ``info`` keeps a stable key order: it is part of the digest."""
    name = config.pbx.app_object
    info = {"appobj": name, "cn": name, "apps": [{"name": name}], "appurl": http_url(url)}
    return Identity(
        app=name,
        domain=config.pbx.domain,
        sip=name,
        guid=config.pbx.guid,
        dn=name,
        pbx_obj=name,
        info=info,
    )


@attrs.define
class PbxStatus:
    """What tests can observe; every change wakes :attr:`SimPbx.watch`."""

    attempts: int = 0
    logins: int = 0
    refusals: int = 0
    connected: bool = False
    subscribed: bool = False
    #: Back-off delays slept between attempts, in order.
    delays: list[float] = attrs.field(factory=list)
    #: ``info`` of provd's AppInfoResult, once received.
    app_info: dict[str, Any] | None = None
    #: The service-info member of provd's AppInfoResult, once received (None: absent).
    service_info: dict[str, Any] | None = None


class SimPbx:
    """Args:
    config: the simulator configuration (``pbx`` and ``provd`` sections).
    registry: the services this PBX lists (provd's entry is added here).
    pbxapi: PbxApi state.
    faults: fault knobs (party ``PBX``).
    backoff: override the reconnect back-off (tests).
    pbxadmin: PbxAdminApi state (objects, registrations); served when ``pbx.admin_api``.
    """

    def __init__(
        self,
        config: SimConfig,
        registry: ServiceRegistry,
        pbxapi: PbxApiState,
        faults: FaultPlan,
        *,
        backoff: Backoff | None = None,
        pbxadmin: PbxAdminState | None = None,
    ) -> None:
        self.config = config
        self.pbxadmin = pbxadmin or PbxAdminState(config.pbx)
        self.registry = registry
        self.pbxapi = pbxapi
        self.faults = faults
        self.backoff = backoff or Backoff(
            initial=config.pbx.reconnect_initial, cap=config.pbx.reconnect_cap
        )
        self.status = PbxStatus()
        self.watch = Watch()
        registry.on_change = self.watch.notify
        self.url: str | None = config.provd.url
        self.password = config.provd.password
        self._conn: AppWebsocket | None = None
        self._session_key: str | None = None
        self._subscription_src: str | None = None
        self._sent_version = -1
        self._reconnect_now = trio.Event()

    @property
    def identity(self) -> Identity:
        return app_object_identity(self.config, self.url or "")

    def set_provd(self, url: str | None = None, password: str | None = None) -> None:
        """Point the App object at another URL/password; takes effect on the next connect
        (and wakes a PBX waiting for a URL). ``provd``'s listed service URL follows."""
        if url is not None:
            self.url = url
            if self.registry.get(self.config.provd.service_name):
                self.registry.update(self.config.provd.service_name, url=url)
        if password is not None:
            self.password = password
            if self.registry.get(self.config.provd.service_name):
                self.registry.update(self.config.provd.service_name, password=password)
        self._reconnect_now.set()
        self.watch.notify()

    async def wait_logged_in(self, logins: int = 1) -> None:
        """Return once the PBX has logged in ``logins`` times in total."""
        await self.watch.wait_until(lambda: self.status.logins >= logins)

    async def wait_subscribed(self) -> None:
        await self.watch.wait_until(lambda: self.status.subscribed)

    def _changed(self) -> None:
        self.watch.notify()

    # --- the reconnect loop ------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, serve, back off, forever (until cancelled)."""
        while True:
            await self.watch.wait_until(lambda: self.url is not None)
            url = self.url
            assert url is not None
            self.status.attempts += 1
            self._changed()
            try:
                await self._connection(url)
            except LoginRefused:
                self.status.refusals += 1
                log.warning("pbx.login_refused", url=url)
            except Exception as exc:  # any failure: log, back off, retry (one-for-one)
                log.info(
                    "pbx.connection_failed",
                    url=url,
                    error=type(exc).__name__,
                    reason=getattr(exc, "reason", None) or str(exc),
                )
            finally:
                self._conn = None
                self.status.connected = False
                self.status.subscribed = False
                self._changed()
            delay = self.backoff.next_delay()
            self.status.delays.append(delay)
            log.info("pbx.reconnect_in", seconds=round(delay, 3))
            self._reconnect_now = trio.Event()
            with trio.move_on_after(delay):
                await self._reconnect_now.wait()

    async def _connection(self, url: str) -> None:
        log.info("pbx.connecting", url=url)
        async with connect(url) as ws:
            conn = AppWebsocket(ws)
            password = self.password
            if self.faults.rejects(Party.PBX):
                password = crypto.new_challenge(32)
            key = await login_with_password(conn, self.identity, password)
            self._conn, self._session_key = conn, key
            self.status.logins += 1
            self.status.connected = True
            self.backoff.reset()
            self._subscription_src = None
            self._sent_version = -1
            self.pbxapi.reset_subscriptions()
            self._changed()
            log.info("pbx.logged_in", url=url, app=self.identity.app, domain=self.identity.domain)
            pbx = self.config.pbx
            apis = ("PbxApi", "Services") + (("PbxAdminApi",) if pbx.admin_api else ())
            await self._send(PbxInfo(domain=pbx.domain, pbx=pbx.name, pbx_dns=pbx.dns, apis=apis))
            await self._send(AppInfo(app=self.identity.app, src=APP_INFO_SRC))
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._push_services)
                try:
                    await self._reader(conn)
                finally:
                    nursery.cancel_scope.cancel()

    async def _send(self, msg: Message) -> None:
        conn = self._conn
        if conn is None:
            raise ConnectionLost("not connected")
        await conn.send(msg)
        if self.faults.should_drop(Party.PBX, msg.MT, Direction.SENT):
            log.info("pbx.fault_drop", after=msg.MT)
            await conn.close(1001, "fault: drop")
            raise ConnectionLost("fault: drop")

    async def _answer(self, msgs: list[Message]) -> None:
        seconds = self.faults.delay_for(Party.PBX)
        if seconds > 0:
            await trio.sleep(seconds)
        for msg in msgs:
            await self._send(msg)

    # --- serving the connection ------------------------------------------------------------

    async def _reader(self, conn: AppWebsocket) -> None:
        while True:
            try:
                msg = await conn.receive()
            except ConnectionLost as exc:
                log.info("pbx.disconnected", reason=exc.reason)
                return
            except Exception as exc:  # malformed input from provd: a PBX logs and goes on
                log.info("pbx.bad_message", reason=getattr(exc, "reason", None) or str(exc))
                continue
            mt = msg.mt if isinstance(msg, UnknownMessage) else msg.MT
            if self.faults.should_drop(Party.PBX, mt, Direction.RECEIVED):
                log.info("pbx.fault_drop", after=mt)
                await conn.close(1001, "fault: drop")
                return
            await self._dispatch(msg, mt)

    async def _dispatch(self, msg: Message, mt: str) -> None:
        if isinstance(msg, AppInfoResult):
            self._on_app_info(msg)
        elif isinstance(msg, SubscribeServices):
            log.info("pbx.services_subscribed")
            self._subscription_src = msg.src
            self.status.subscribed = True
            self._sent_version = self.registry.version
            self._changed()
            await self._answer(
                [msg.reply(SubscribeServicesResult), self.registry.services_info(src=msg.src)]
            )
        elif isinstance(msg, UnsubscribeServices):
            self.status.subscribed = False
            self._changed()
            await self._answer([msg.reply(UnsubscribeServicesResult)])
        elif isinstance(msg, GetServiceLogin):
            assert self._session_key is not None
            if self.faults.take_service_login_refusal():
                result = self.registry.refusal(msg, "service login refused (fault)")
            else:
                result = self.registry.service_login(
                    msg, caller=self.identity, pbx_session_key=self._session_key
                )
            log.info("pbx.service_login", app=msg.app, error=result.error)
            await self._answer([result])
        elif isinstance(msg, KeepAlive):
            pass  # accepted silently (spec section 2)
        elif (answers := self.pbxapi.handle(msg)) is not None:
            log.info("pbx.pbxapi", mt=mt)
            await self._answer(answers)
        elif self.config.pbx.admin_api and (answers := self.pbxadmin.handle(msg)) is not None:
            log.info("pbx.pbxadmin", mt=mt)
            await self._answer(answers)
        else:
            log.debug("pbx.ignored", mt=mt)

    def _on_app_info(self, msg: AppInfoResult) -> None:
        """Learn the APIs provd offers on incoming connections, from the member
        ``pbx.service_apis_from`` names: the service info (what AppWebsocketServiceInfo fills,
        SDK ``common/lib/appwebsocket.htm``) or the app info's ``info.apis``."""
        self.status.app_info = msg.info
        self.status.service_info = msg.service_info
        if self.config.pbx.service_apis_from == "service_info":
            source = msg.service_info
        else:
            source = msg.info
        apis = source.get("apis") if isinstance(source, dict) else None
        apis = apis if isinstance(apis, dict) else {}
        target = self.config.provd
        log.info("pbx.app_info", apis=sorted(apis), source=self.config.pbx.service_apis_from)
        self.registry.set(
            ServiceEntry(
                name=target.service_name,
                url=self.url or "",
                password=self.password,
                title=target.title,
                apis=apis,
            )
        )
        self._changed()

    async def _push_services(self) -> None:
        """Send ServicesInfo whenever the registry changed while subscribed."""
        while True:
            await self.watch.wait_until(
                lambda: self.status.subscribed and self.registry.version != self._sent_version
            )
            self._sent_version = self.registry.version
            log.info("pbx.services_info", version=self._sent_version)
            await self._answer([self.registry.services_info(src=self._subscription_src)])

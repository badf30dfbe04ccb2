"""One session per AppWebsocket connection to provd.

After the login (the PBX App object with the instance password, or another app service
with a login the PBX made for it) every message goes through one dispatch table keyed by
message type. A PBX connection announces itself with ``PbxInfo``; provd then subscribes to
its Services and learns the Devices URL. The Users/Profile service sends
``ProvisioningPhone``. Malformed input closes only this session, with a reason; an unknown
``mt`` is ignored.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import structlog
import trio
import trio_websocket as tw

from ..config import Config
from ..logs import debug_enabled, register_secret
from ..protocol import LoginRefused, ProtocolError, crypto, normalize_mac
from ..protocol.admin import ADMIN_API
from ..protocol.login import ServerLogin
from ..protocol.messages import (
    DEVICES_API,
    PBX_ADMIN_API,
    SERVICES_API,
    AppInfo,
    CheckBuild,
    CheckBuildResult,
    GetServiceLogin,
    GetServiceLoginResult,
    InvalidMessage,
    KeepAlive,
    Message,
    PbxInfo,
    ProvisioningPhone,
    ProvisioningPhoneResult,
    ServicesInfo,
    SubscribeServices,
    SubscribeServicesResult,
    UnknownMessage,
    app_info_result,
    provisioning_phone_problem,
)
from ..transport import AppWebsocket, ConnectionLost, RequestTracker, accept_login
from ..transport.guard import LoginThrottle
from . import pbxdata
from .devices_api import ask_service_login
from .phone import PhoneContext
from .state import Outcome, devices_url_problem
from .supervisor import PhoneSupervisor

log = structlog.get_logger("provd.appservice")

#: Websocket close codes provd uses.
CLOSE_POLICY = 1008  # login refused
CLOSE_PROTOCOL = 1002  # malformed input
CLOSE_GOING_AWAY = 1001  # shutdown

#: ``ProvisioningPhone`` requests one session may have in flight; more are answered
#: ``busy`` (the Users Admin app sends one at a time, so only a faulty peer gets there).
MAX_PROVISIONING_PER_SESSION = 16


@attrs.define
class AppServiceContext:
    phones: PhoneContext
    supervisor: PhoneSupervisor
    #: Live PBX sessions, newest last.
    pbx_sessions: list[AppSession] = attrs.field(factory=list)
    #: Growing delay for wrong logins per client address (settings read live).
    throttle: LoginThrottle = attrs.field(init=False)
    #: The admin API (:class:`~provd.actors.admin.AdminApi`), when the daemon runs one.
    admin: Any = None
    #: The PBX's node info and favourites (:class:`~provd.actors.pbxdata.PbxData`), when
    #: the daemon keeps them.
    pbx_data: Any = None
    #: Set (and replaced) whenever a PBX session comes or goes.
    pbx_change: trio.Event = attrs.field(init=False, factory=trio.Event)
    #: Called (no arguments) whenever a PBX session announced itself with ``PbxInfo``.
    pbx_listeners: list[Callable[[], None]] = attrs.field(factory=list)

    def __attrs_post_init__(self) -> None:
        def settings() -> tuple[float, float, float]:
            a = self.config.appservice
            return a.login_delay_initial, a.login_delay_cap, a.login_report_interval

        self.throttle = LoginThrottle(settings)

    @property
    def config(self) -> Config:
        return self.phones.config

    def current_pbx(self) -> AppSession | None:
        """The newest live PBX session (for service logins), if any."""
        return self.pbx_sessions[-1] if self.pbx_sessions else None

    def pbx_sessions_changed(self) -> None:
        self.pbx_change.set()
        self.pbx_change = trio.Event()

    async def wait_pbx_changed(self) -> None:
        await self.pbx_change.wait()

    def pbx_admin_session(self) -> AppSession | None:
        """The newest live PBX session that offers PbxAdminApi (``PbxInfo.apis``), if any."""
        return next((s for s in reversed(self.pbx_sessions) if s.offers_pbx_admin), None)


async def handle_connection(ws: tw.WebSocketConnection, ctx: AppServiceContext) -> None:
    """One connection from login to close. Nothing the peer does escapes this function."""
    conn = AppWebsocket(ws)
    with structlog.contextvars.bound_contextvars(peer=conn.remote):
        try:
            a = ctx.config.appservice
            login = await accept_login(
                conn, a.password, login_timeout=a.login_timeout, throttle=ctx.throttle
            )
        except LoginRefused as exc:  # counted and logged (summed up) by the throttle
            log.debug("appservice.login_failed", reason=exc.reason)
            await conn.close(CLOSE_POLICY, "login failed")
            return
        except ProtocolError as exc:
            log.debug("appservice.login_failed", reason=exc.reason)
            await conn.close(CLOSE_PROTOCOL, exc.reason)
            return
        except ConnectionLost as exc:
            log.info("appservice.connection_lost", reason=exc.reason, during="login")
            return
        assert login.login is not None
        conn.allow_message_size(ctx.config.appservice.max_message_size)
        with structlog.contextvars.bound_contextvars(app=login.login.app, sip=login.login.sip):
            log.info("appservice.logged_in")
            session = AppSession(conn, login, ctx)
            try:
                await session.run()
            finally:
                await conn.close(CLOSE_GOING_AWAY, "provd session ended")
                log.info("appservice.session_closed")


class AppSession:
    def __init__(self, conn: AppWebsocket, login: ServerLogin, ctx: AppServiceContext) -> None:
        self.conn = conn
        self.login = login
        self.ctx = ctx
        self.tracker = RequestTracker("provd")
        self._nursery: trio.Nursery | None = None
        #: Set once provd subscribed to Services here: only then is a ServicesInfo trusted.
        self._subscribed_services = False
        self._pbx_name = "?"
        #: The PbxInfo of a PBX App-object session (None for other logins).
        self.pbx_info: PbxInfo | None = None
        #: The APIs the PBX offers on this connection (``PbxInfo.apis``).
        self.pbx_apis: tuple[str, ...] = ()
        self._refused_urls: set[str] = set()
        self._provisioning = 0
        self._handlers: dict[type[Message], Callable[[Any], Awaitable[None]]] = {
            AppInfo: self._on_app_info,
            CheckBuild: self._on_check_build,
            KeepAlive: self._on_keep_alive,
            PbxInfo: self._on_pbx_info,
            ServicesInfo: self._on_services_info,
            SubscribeServicesResult: self._on_ignore,
            ProvisioningPhone: self._on_provisioning_phone,
            UnknownMessage: self._on_unknown,
        }
        #: PbxApi answers/indications, taken only on a PBX session (after PbxInfo).
        self._pbx_domain: str | None = None
        self._handlers.update(dict.fromkeys(pbxdata.MESSAGES, self._on_pbx_api))

    @property
    def session_key(self) -> str:
        assert self.login.session_key is not None
        return self.login.session_key

    async def run(self) -> None:
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._keepalive, nursery.cancel_scope)
                while True:
                    try:
                        msg = await self.conn.receive()
                    except InvalidMessage as exc:
                        if await self._on_invalid(exc):
                            continue
                        log.warning("appservice.protocol_error", reason=exc.reason)
                        await self.conn.close(CLOSE_PROTOCOL, exc.reason)
                        nursery.cancel_scope.cancel()
                        return
                    except ProtocolError as exc:
                        log.warning("appservice.protocol_error", reason=exc.reason)
                        await self.conn.close(CLOSE_PROTOCOL, exc.reason)
                        nursery.cancel_scope.cancel()
                        return
                    except ConnectionLost as exc:
                        log.info("appservice.connection_lost", reason=exc.reason)
                        nursery.cancel_scope.cancel()
                        return
                    if self.tracker.deliver(msg):
                        continue
                    handler = self._handlers.get(type(msg), self._on_ignore)
                    await handler(msg)
        finally:
            self.tracker.fail_all()
            if self in self.ctx.pbx_sessions:
                self.ctx.pbx_sessions.remove(self)
                self.ctx.pbx_sessions_changed()

    async def _keepalive(self, scope: trio.CancelScope) -> None:
        """Websocket pings; a session whose peer stopped answering is closed."""
        a = self.ctx.config.appservice
        if a.ping_interval <= 0:
            return
        try:
            await self.conn.keepalive(a.ping_interval, a.ping_timeout)
        except ConnectionLost as exc:
            log.warning("appservice.keepalive_failed", reason=exc.reason)
            scope.cancel()

    async def ask_service_login(self, request: GetServiceLogin) -> GetServiceLoginResult:
        """A login for another app service, made by this PBX (Services API)."""
        return await ask_service_login(self.conn, self.tracker, request)

    @property
    def offers_pbx_admin(self) -> bool:
        return PBX_ADMIN_API in self.pbx_apis

    async def ask(self, request: Message) -> Message:
        """Send ``request`` on this session and return the first answer to it (by ``src``).

        Raises:
            ConnectionLost: the session ended before an answer came.
        """
        async with self.tracker.expect(request) as (tagged, answers):
            await self.conn.send(tagged)
            try:
                return await answers.receive()
            except trio.EndOfChannel:
                raise ConnectionLost("PBX session ended") from None

    async def send(self, msg: Message) -> None:
        try:
            await self.conn.send(msg)
        except ConnectionLost:
            log.info("appservice.send_failed", mt=msg.MT)

    # --- base messages ----------------------------------------------------------------------

    async def _on_app_info(self, msg: AppInfo) -> None:
        await self.send(app_info_result(msg, title=self.ctx.config.appservice.title))

    async def _on_check_build(self, msg: CheckBuild) -> None:
        # No url: the innovaphone JS client redirects whenever one is set (spec section 2).
        await self.send(msg.reply(CheckBuildResult))

    async def _on_invalid(self, exc: InvalidMessage) -> bool:
        """A known message with bad members. ``ProvisioningPhone`` is answered with an
        error and the session stays open (spec section 8.3); returns False for the rest."""
        if exc.mt != ProvisioningPhone.MT:
            return False
        log.warning("provisioning.invalid", reason=exc.reason)
        await self.send(
            ProvisioningPhoneResult(src=exc.src, result="error", error=f"invalid: {exc.reason}")
        )
        return True

    async def _on_keep_alive(self, msg: KeepAlive) -> None:
        """Accepted silently: its arrival is all it has to say."""

    async def _on_ignore(self, msg: Message) -> None:
        log.debug("appservice.ignored", mt=msg.MT)

    async def _on_unknown(self, msg: UnknownMessage) -> None:
        if msg.api == ADMIN_API and self.ctx.admin is not None:  # the App's admin API
            await self.ctx.admin.handle(self, msg)
            return
        log.debug("appservice.unknown_message", mt=msg.mt, api=msg.api)

    # --- the PBX App-object connection ------------------------------------------------------

    async def _on_pbx_info(self, msg: PbxInfo) -> None:
        self._pbx_name = msg.pbx or msg.domain or "?"
        self.pbx_info = msg
        if self not in self.ctx.pbx_sessions:
            self.ctx.pbx_sessions.append(self)
            self.ctx.pbx_sessions_changed()
        log.info("pbx.info", domain=msg.domain, pbx=msg.pbx, apis=",".join(msg.apis))
        self.pbx_apis = msg.apis
        if not self.offers_pbx_admin:
            log.info(
                "pbx.admin_api_unavailable",
                pbx=self._pbx_name,
                hint="registrations are not checked; enable PbxAdminApi on provd's App object",
            )
        for listener in list(self.ctx.pbx_listeners):
            listener()
        if SERVICES_API in msg.apis:
            self._subscribed_services = True
            await self.send(SubscribeServices(src="services"))
        if self.ctx.pbx_data is not None and self._pbx_domain is None and self._nursery:
            login_domain = self.login.login.domain if self.login.login else ""
            self._pbx_domain = (msg.domain or login_domain or "").lower()
            self._nursery.start_soon(
                self.ctx.pbx_data.session, self.send, self._pbx_domain, msg.apis
            )

    async def _on_pbx_api(self, msg: Message) -> None:
        """Node info and profile favourites (PbxApi), from the PBX session only."""
        if self._pbx_domain is None or self.ctx.pbx_data is None:
            log.debug("appservice.ignored", mt=msg.MT, hint="not a PBX session")
            return
        await self.ctx.pbx_data.handle(self._pbx_domain, msg)

    async def _on_services_info(self, msg: ServicesInfo) -> None:
        if not self._subscribed_services:
            # Only the PBX App-object session (PbxInfo, then our SubscribeServices) may tell
            # provd where Devices is; a ServicesInfo from any other login is not trusted.
            log.warning("appservice.services_info_untrusted", hint="not a PBX session")
            return
        devices = msg.find(DEVICES_API)
        if devices is None or not devices.url:
            log.warning("pbx.no_devices_service", services=len(msg.services))
            return
        problem = devices_url_problem(devices.url)
        if problem is not None:
            if devices.url not in self._refused_urls:  # the PBX repeats it on every change
                self._refused_urls.add(devices.url)
                log.warning(
                    "pbx.devices_url_refused", url=devices.url, pbx=self._pbx_name, error=problem
                )
            return
        if self.ctx.phones.locator.set(devices.url, devices.name):
            url = devices.url
            await self.ctx.phones.store.call(lambda db: db.set_setting("devices_url", url))
            log.info("pbx.devices_service", url=url, name=devices.name)

    # --- com.innovaphone.provisioning -------------------------------------------------------

    async def _on_provisioning_phone(self, msg: ProvisioningPhone) -> None:
        assert self._nursery is not None
        problem = provisioning_phone_problem(msg)
        if problem is not None:
            log.warning("provisioning.invalid", reason=problem)
            await self._result(msg, f"invalid: {problem}")
            return
        if self._provisioning >= MAX_PROVISIONING_PER_SESSION:
            log.warning("provisioning.busy", in_flight=self._provisioning)
            await self._result(msg, "busy")
            return
        self._provisioning += 1
        self._nursery.start_soon(self._provision_counted, msg)

    async def _provision_counted(self, msg: ProvisioningPhone) -> None:
        try:
            await self._provision(msg)
        finally:
            self._provisioning -= 1

    async def _provision(self, msg: ProvisioningPhone) -> None:
        try:
            mac = normalize_mac(msg.mac)
        except ProtocolError as exc:
            await self._result(msg, f"invalid MAC: {exc.reason}")
            return
        # This task's own context (trio copies it per task, _provision_counted): bound
        # without structlog's generator-based bound_contextvars, nothing to undo (issue 14).
        structlog.contextvars.bind_contextvars(mac=mac)
        try:
            outcome = await self._provision_phone(mac, msg)
        except Exception:  # a store failure: answer, keep the session
            log.exception("provisioning.internal_error")
            outcome = Outcome(ok=False, error="provd could not store the phone")
        if outcome.ok:
            # phone.provisioned (and phone.lifecycle) said it at info; a repeated request
            # changed nothing. Two info lines per first provisioning, not four (issue 14:
            # each line is a wake-up of journald, or of whoever reads the pipe).
            if debug_enabled():
                log.debug("provisioning.ok")
            await self._result(msg, None)
        else:
            log.warning("provisioning.error", error=outcome.error)
            await self._result(msg, outcome.error)

    async def _provision_phone(self, mac: str, msg: ProvisioningPhone) -> Outcome:
        password = msg.password
        if msg.password_encrypted:
            try:
                password = crypto.app_decrypt(msg.seed1, self.session_key, msg.password)
            except ProtocolError as exc:
                return Outcome(ok=False, error=f"password does not decrypt: {exc.reason}")
        return await provision_phone(
            self.ctx,
            PhoneRequest(
                mac=mac,
                code=msg.code,
                hwid=msg.hwid,
                usename=msg.usename,
                cn=msg.cn,
                password=password,
                domain=msg.domain,
                dns=msg.dns,
            ),
        )

    async def _result(self, msg: ProvisioningPhone, error: str | None) -> None:
        if error is None:
            await self.send(msg.reply(ProvisioningPhoneResult, result="ok"))
        else:
            await self.send(msg.reply(ProvisioningPhoneResult, result="error", error=error))


@attrs.frozen
class PhoneRequest:
    """One phone to provision, as a ``ProvisioningPhone`` says it (password decrypted), or
    as ``provd phones add`` put it together from Devices and the PBX."""

    mac: str
    code: str
    hwid: str = ""
    usename: str = ""
    cn: str = ""
    password: str = attrs.field(default="", repr=False)
    domain: str = ""
    dns: str = ""


async def provision_phone(ctx: AppServiceContext, request: PhoneRequest) -> Outcome:
    """Store the phone, (re)start its actor and wait for its first registration with Devices.

    The one path for ``ProvisioningPhone`` and ``provd phones add``. Idempotent: the same
    request again answers ok without a new registration.

    Raises:
        StoreError: the store refused the write (nothing changed).
    """
    phones = ctx.phones
    mac, password = request.mac, request.password
    register_secret(password, owner=mac)
    record, new_code = await phones.store.call(
        lambda db: db.upsert_phone(
            mac=mac,
            code=request.code,
            hwid=request.hwid,
            usename=request.usename,
            cn=request.cn,
            password=password,
            domain=request.domain,
            dns=request.dns,
        ),
        quick=True,
    )
    phones.directory.put(record)
    if debug_enabled():  # the outcome is what an operator reads: phone.provisioned, or
        log.debug("provisioning.stored", new_code=new_code, state=record.state)  # an error
    if record.state == "provisioned" and not new_code:
        return Outcome(ok=True)  # a repeated request: idempotent
    if new_code or record.state == "failed" or not ctx.supervisor.is_running(mac):
        if record.state == "failed":
            await phones.store.call(lambda db: db.set_state(mac, "pending"), quick=True)
            current = phones.directory.get(mac) or record  # as it is now, after the await
            phones.directory.put(attrs.evolve(current, state="pending", error=""))
        phones.outcomes.reset(mac, request.code)
        ctx.supervisor.start(mac)
    timeout = phones.config.provisioning.timeout
    with trio.move_on_after(timeout):
        return await phones.outcomes.wait(mac, request.code)
    return Outcome(ok=False, error=f"Devices did not complete the registration in {timeout:g} s")

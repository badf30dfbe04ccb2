"""The simulated Devices app: trio shells around the pure Devices cores.

One websocket listener serves both endpoints of a Devices instance, told apart by path:

- ``<path>`` (e.g. ``/example.com/devices/``): the ``com.innovaphone.devices`` AppWebsocket
  API, one :class:`~.devices_api.DevicesApiSession` per login;
- ``<path>sysclients``: the binary Sysclient endpoint, one
  :class:`~.sysclient_server.SysclientServer` per device connection.

A second listener (hypercorn, plain HTTP, see :mod:`.passthrough`) serves
``<path>passthrough/<MAC>/<key>/...`` and relays each request into the device's tunnel.
A real Devices serves both on one HTTPS port; two loopback ports keep the simulator on
plain websocket servers, and the passthrough base is published in ``Device.uri``.

The websocket listener is :func:`.wsserver.serve`: sysclients get a lean
:class:`~.wsserver.ServerWebsocket` (no task, channel or lock of its own per connection;
pings answered inline), and so does a plain upgrade for the API (an
:class:`~.wsserver.AppServerWebsocket`; anything else stays on trio-websocket) (issue 14:
the simulator's CPU per phone is on provd's critical path in the benchmarks).

Every change of the shared :class:`~.domain.DevicesDomain` wakes :attr:`DevicesApp.watch`.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import ssl
from typing import Any

import attrs
import structlog
import trio
import trio_websocket as tw
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve

from ..protocol import LoginRefused, ProtocolError, crypto
from ..protocol.messages import KeepAlive, Message, UnknownMessage
from ..protocol.sysclient import AdminType, TunnelEvent, TunnelFrame, encode_frame
from ..transport import AppWebsocket, ConnectionLost, accept_login, parse_listen, ws_url
from .config import DevicesConfig
from .devices_api import DevicesApiSession
from .domain import DevicesDomain, random_digits
from .faults import Direction, FaultPlan, Party
from .passthrough import PassthroughError, passthrough_app
from .sysclient_server import Admitted, Closed, ServerState, SysclientServer, TunnelReceived
from .tunnel import HttpResponse, TunnelError, TunnelRelay
from .watch import Watch
from .wsserver import ServerWebsocket, WebsocketClosed
from .wsserver import serve as serve_websockets

log = structlog.get_logger("provd.sim.devices")

#: Close code for a Devices restart (RFC 6455 "Service Restart").
RESTART_CODE = 1012
#: Close code for a refused sysclient (policy violation).
REFUSED_CODE = 1008


@attrs.frozen
class DevicesAddresses:
    """Where the Devices app listens (reported through ``nursery.start``)."""

    #: Devices service URL as listed in ServicesInfo (ends with ``/``).
    url: str
    #: ``url + "sysclients"``.
    sysclients_url: str
    #: ``http://host:port<path>passthrough/``; append ``<MAC>/<key>/...``.
    passthrough_base: str


def _advertised_host(host: str) -> str:
    return "127.0.0.1" if host in ("", "0.0.0.0") else "::1" if host == "::" else host  # noqa: S104


def _frame_name(data: bytes) -> str:
    if data[:1] == b"\x01" and len(data) >= 3:
        kind = int.from_bytes(data[1:3], "big")
        return AdminType(kind).name if kind in AdminType._value2member_map_ else "?"
    return "TUNNEL"


class _SysclientConn:
    """One admitted-or-not device connection.

    What one call sends goes out as one write (the state machine's queue after a
    message, a tunnel's frames), so no lock is needed to keep another task's frames from
    landing in between, and a device gets its password and configuration in one segment.
    """

    __slots__ = ("dropped", "faults", "machine", "tunnels", "ws")

    def __init__(self, ws: ServerWebsocket, machine: SysclientServer, faults: FaultPlan) -> None:
        self.ws = ws
        self.machine = machine
        self.faults = faults
        self.tunnels: dict[int, trio.MemorySendChannel[TunnelFrame]] = {}
        self.dropped = False

    async def flush(self) -> None:
        """Send what the state machine queued (and honour drop-after-sent rules)."""
        if self.machine.has_outgoing:
            await self._send(self.machine.outgoing())

    async def send_frames(self, frames: list[TunnelFrame]) -> None:
        await self._send([encode_frame(frame) for frame in frames])

    async def _send(self, messages: list[bytes]) -> None:
        if self.dropped or not messages:
            return
        drop = False
        if self.faults.drops(Party.SYSCLIENT):
            for i, data in enumerate(messages):
                if self.faults.should_drop(Party.SYSCLIENT, _frame_name(data), Direction.SENT):
                    messages, drop = messages[: i + 1], True  # sent, then the drop
                    break
        try:
            await self.ws.send_messages(messages)
        except WebsocketClosed:
            raise ConnectionLost("send failed") from None
        if drop:
            self.dropped = True
            await self.ws.aclose(1001, "fault: drop")


class DevicesApp:
    """The Devices app on its listeners. Construct, then ``await nursery.start(app.run)``."""

    def __init__(
        self,
        config: DevicesConfig,
        domain: DevicesDomain,
        faults: FaultPlan,
        watch: Watch | None = None,
    ) -> None:
        self.config = config
        self.domain = domain
        self.faults = faults
        self.watch = watch or Watch()
        self.addresses: DevicesAddresses | None = None
        self._api_sessions: dict[str, tuple[DevicesApiSession, trio.MemorySendChannel]] = {}
        self._online: dict[str, _SysclientConn] = {}
        self._live: set[tw.WebSocketConnection | ServerWebsocket] = set()
        #: The app's own nursery (timers such as ``password_mid_session``).
        self._nursery: trio.Nursery | None = None
        self._tunnel_ids = itertools.count(1)
        #: Device frames that broke the SDK layout, as ``(mac, description)``.
        self.violations: list[tuple[str, str]] = []
        #: Sysclients refused but kept open (``refused = "keep"``), by first identify's id.
        self.kept_refused: list[str] = []
        #: Devices API requests answered with an error (``devices.api_errors``; shared by
        #: every session, changed at runtime by ``Faults.devices_api_error``).
        self.api_errors: dict[str, str] = dict(config.api_errors)

    # --- observable state ------------------------------------------------------------------

    def online_macs(self) -> set[str]:
        """MACs with an admitted sysclient connection right now."""
        return set(self._online)

    async def assign_password(self, mac: str) -> str | None:
        """An administrator adds the connected device to a domain during its session: a
        fresh 0x0001 goes out now. Returns the password, None when not connected."""
        conn = self._online.get(mac)
        if conn is None:
            return None
        password = conn.machine.assign_password()
        with contextlib.suppress(ConnectionLost):
            await conn.flush()
        log.info("sysclient.password_reassigned", mac=mac)
        return password

    # --- lifecycle ---------------------------------------------------------------------------

    async def run(
        self, *, task_status: trio.TaskStatus[DevicesAddresses] = trio.TASK_STATUS_IGNORED
    ) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            tls = self._server_tls()
            server: tw.WebSocketServer = await nursery.start(
                functools.partial(
                    serve_websockets,
                    lean_path=self.config.path + "sysclients",
                    app_paths=(self.config.path, self.config.path.rstrip("/")),
                    ssl_context=tls,
                    max_connections=self.config.max_connections,
                ),
                self._on_sysclient,
                self._on_websocket,
                self.config.listen,
            )
            host = _advertised_host(parse_listen(self.config.listen)[0])
            url = ws_url(host, server.port, self.config.path, tls=tls is not None)
            hconfig = HypercornConfig()
            hconfig.bind = [self.config.http_listen]
            hconfig.accesslog = None
            hconfig.errorlog = None
            hconfig.graceful_timeout = 1.0
            app = passthrough_app(self, self.config.path)
            binds: list[str] = await nursery.start(
                lambda task_status: hypercorn_serve(app, hconfig, task_status=task_status)
            )
            http_host, http_port = parse_listen(binds[0].split("://", 1)[1])
            http_base = ws_url(_advertised_host(http_host), http_port, self.config.path)
            http_base = "http" + http_base.removeprefix("ws")
            self.addresses = DevicesAddresses(
                url=url,
                sysclients_url=url + "sysclients",
                passthrough_base=http_base + "passthrough/",
            )
            log.info("devices.listening", url=url, passthrough=self.addresses.passthrough_base)
            task_status.started(self.addresses)

    def _server_tls(self) -> ssl.SSLContext | None:
        """``devices.tls_cert``/``tls_key``: serve wss:// as an App Platform does."""
        if not self.config.tls_cert:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.config.tls_cert, self.config.tls_key)
        return context

    async def restart(self) -> None:
        """Close every connection as a restarting Devices would; wait until all are gone."""
        log.info("devices.restart", connections=len(self._live))
        for ws in list(self._live):
            with trio.move_on_after(2):
                await ws.aclose(RESTART_CODE, "restart")
        await self.watch.wait_until(lambda: not self._live)

    async def remove_device(self, mac: str) -> bool:
        """Delete a device as an administrator would in the Devices app: its record and
        sysclient password are forgotten and its connection closed. Returns whether it
        existed."""
        existed = self.domain.devices.pop(mac, None) is not None
        conn = self._online.get(mac)
        if conn is not None:
            log.info("devices.device_removed", mac=mac)
            with trio.move_on_after(2):
                await conn.ws.aclose(1000, "device removed")
        self.domain.on_change()
        return existed

    async def change_category(
        self, category: str, *, domain: str | None = None, **changes: Any
    ) -> set[str]:
        """Change a category and push the changed items to its connected devices."""
        dom = (
            self.domain.domain_by_name(domain)
            if domain
            else next(iter(self.domain.domains.values()))
        )
        if dom is None:
            raise KeyError(domain)
        types = self.domain.update_category(dom.id, category, **changes)
        cat = self.domain.category_by_name(dom.id, category)
        assert cat is not None
        for conn in list(self._online.values()):
            if conn.machine.device is not None and conn.machine.device.category_id == cat.id:
                conn.machine.push_config(types)
                with contextlib.suppress(ConnectionLost):
                    await conn.flush()
        log.info("devices.category_changed", category=category, items=sorted(types))
        return types

    # --- websocket routing -------------------------------------------------------------------

    async def _on_websocket(self, ws: tw.WebSocketConnection) -> None:
        base = self.config.path
        path = ws.path.split("?", 1)[0]
        self._live.add(ws)
        self.watch.notify()
        try:
            if path in (base, base.rstrip("/")):  # (sysclients: _on_sysclient)
                await self._api(ws)
            else:
                log.info("devices.unknown_path", path=path)
                await ws.aclose(1008, "unknown path")
        finally:
            self._live.discard(ws)
            self.watch.notify()

    async def _on_sysclient(self, ws: ServerWebsocket) -> None:
        self._live.add(ws)
        self.watch.notify()
        try:
            await self._sysclient(ws)
        finally:
            self._live.discard(ws)
            self.watch.notify()

    async def _delay(self, party: Party) -> None:
        seconds = self.faults.delay_for(party)
        if seconds > 0:
            await trio.sleep(seconds)

    # --- the Devices API -----------------------------------------------------------------------

    async def _api(self, ws: tw.WebSocketConnection) -> None:
        conn = AppWebsocket(ws)
        password = self.config.password
        if self.faults.rejects(Party.DEVICES_API):
            password = crypto.new_challenge(32)  # nobody knows it: every login is refused
        try:
            server_login = await accept_login(conn, password)
        except (LoginRefused, ProtocolError, ConnectionLost) as exc:
            log.info(
                "devices.api.login_refused",
                peer=conn.remote,
                reason=getattr(exc, "reason", str(exc)),
            )
            await conn.close(1008, "login refused")
            return
        login = server_login.login
        assert login is not None
        session = DevicesApiSession(
            self.domain,
            login_domain=login.domain,
            admin=login.domain == self.config.instance_domain,
            categories_per_result=self.config.categories_per_result,
            passthrough_base=self.addresses.passthrough_base if self.addresses else "",
            errors=self.api_errors,
        )
        log.info(
            "devices.api.logged_in",
            app=login.app,
            domain=login.domain,
            sip=login.sip,
            admin=session.admin,
        )
        outbox_send, outbox_recv = trio.open_memory_channel[Message](64)
        self._api_sessions[session.key] = (session, outbox_send)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._api_writer, conn, outbox_recv, nursery.cancel_scope)
                await self._api_reader(conn, session, outbox_send)
                nursery.cancel_scope.cancel()
        finally:
            del self._api_sessions[session.key]
            session.close()
            log.info("devices.api.closed", domain=login.domain)

    async def _api_reader(
        self,
        conn: AppWebsocket,
        session: DevicesApiSession,
        outbox: trio.MemorySendChannel[Message],
    ) -> None:
        while True:
            try:
                msg = await conn.receive()
            except ConnectionLost:
                return
            except ProtocolError as exc:
                log.info("devices.api.bad_message", reason=exc.reason)
                continue
            mt = msg.mt if isinstance(msg, UnknownMessage) else msg.MT
            if self.faults.should_drop(Party.DEVICES_API, mt, Direction.RECEIVED):
                log.info("devices.api.fault_drop", after=mt)
                await conn.close(1001, "fault: drop")
                return
            answers = session.handle(msg)
            if answers is None:
                if not isinstance(msg, KeepAlive):
                    log.debug("devices.api.ignored", mt=mt)
                continue
            log.info("devices.api.request", mt=mt, src=msg.src)
            await self._delay(Party.DEVICES_API)
            for answer in answers:
                await outbox.send(answer)

    async def _api_writer(
        self,
        conn: AppWebsocket,
        outbox: trio.MemoryReceiveChannel[Message],
        scope: trio.CancelScope,
    ) -> None:
        async for msg in outbox:
            try:
                await conn.send(msg)
            except ConnectionLost:
                scope.cancel()
                return
            if self.faults.should_drop(Party.DEVICES_API, msg.MT, Direction.SENT):
                log.info("devices.api.fault_drop", after=msg.MT)
                await conn.close(1001, "fault: drop")
                scope.cancel()
                return

    def _notify_provisioned(self, owner: str | None, device, code: str) -> None:
        entry = self._api_sessions.get(owner or "")
        if entry is None:
            log.info("devices.provisioned_no_session", code_owner_gone=True, mac=device.mac)
            return
        session, outbox = entry
        try:
            outbox.send_nowait(session.device_provisioned(device, code))
        except (trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
            log.warning("devices.provisioned_undelivered", mac=device.mac)

    # --- sysclients ----------------------------------------------------------------------------

    async def _sysclient(self, ws: ServerWebsocket) -> None:
        machine = SysclientServer(
            self.domain,
            last_inside_config=self.config.last_inside_config,
            after_digest=self.config.after_digest,
            last_frame=self.config.last_frame,
            code_when_known=self.config.code_when_known,
            challenge_factory=random_digits,
        )
        conn = _SysclientConn(ws, machine, self.faults)
        try:
            await self._sysclient_loop(conn)
        except ConnectionLost:
            pass
        finally:
            for channel in conn.tunnels.values():
                channel.close()
            mac = machine.mac
            if mac is not None and self._online.get(mac) is conn:
                del self._online[mac]
                self.domain.set_online(mac, False)
                log.info("sysclient.offline", mac=mac)
            self.watch.notify()

    async def _sysclient_loop(self, conn: _SysclientConn) -> None:
        machine = conn.machine
        while not conn.dropped:
            try:
                data = await conn.ws.get_message()
            except WebsocketClosed:
                return
            if isinstance(data, str):
                log.info("sysclient.refused", reason="text frame")
                await conn.ws.aclose(REFUSED_CODE, "binary frames only")
                return
            if self.faults.rejects(Party.SYSCLIENT) and machine.state is not ServerState.ADMITTED:
                log.info("sysclient.refused", reason="fault: reject")
                await conn.ws.aclose(REFUSED_CODE, "refused")
                return
            events = machine.receive(data)
            if self.faults.should_drop(Party.SYSCLIENT, machine.last_received, Direction.RECEIVED):
                log.info("sysclient.fault_drop", after=machine.last_received, mac=machine.mac)
                await conn.ws.aclose(1001, "fault: drop")
                return
            if machine.state is not ServerState.CLOSED and (events or machine.has_outgoing):
                await self._delay(Party.SYSCLIENT)  # before every answer, the challenge too
            await conn.flush()
            for event in events:
                if isinstance(event, Closed):
                    log.info("sysclient.refused", reason=event.reason)
                    if self.config.refused == "keep":
                        # Left connected and silent, shown as unassigned (spec section 6.5).
                        ident = machine.identity
                        self.kept_refused.append(ident.id if ident else "?")
                        self.watch.notify()
                        continue
                    await conn.ws.aclose(REFUSED_CODE, "refused")
                    return
                if isinstance(event, Admitted):
                    await self._admitted(conn, event)
                elif isinstance(event, TunnelReceived):
                    await self._route_tunnel(conn, event.frame)
            if machine.state is ServerState.CHALLENGED and machine.identity is not None:
                log.info("sysclient.challenged", mac=machine.identity.id)

    async def _admitted(self, conn: _SysclientConn, event: Admitted) -> None:
        mac = event.device.mac
        previous = self._online.get(mac)
        self._online[mac] = conn
        if previous is not None and previous is not conn:
            previous.dropped = True  # a newer connection of the same device replaces it
            with trio.move_on_after(2):
                await previous.ws.aclose(1000, "replaced")
        self.domain.set_online(mac, True)
        admission = event.admission
        log.info(
            "sysclient.admitted",
            mac=mac,
            first_time=admission is not None,
            category=self.domain.categories[event.device.category_id].name,
        )
        if admission is not None and admission.first_use:
            self._notify_provisioned(admission.code.owner, event.device, admission.code.code)
        if self.config.unknown_messages:
            conn.machine.send_unknown()
            await conn.flush()
        if self.config.password_mid_session > 0 and self._nursery is not None:
            self._nursery.start_soon(self._password_later, conn, mac)
        self.watch.notify()

    async def _password_later(self, conn: _SysclientConn, mac: str) -> None:
        await trio.sleep(self.config.password_mid_session)
        if self._online.get(mac) is conn:
            conn.machine.assign_password()
            with contextlib.suppress(ConnectionLost):
                await conn.flush()
            log.info("sysclient.password_reassigned", mac=mac)
            self.watch.notify()

    async def _route_tunnel(self, conn: _SysclientConn, frame: TunnelFrame) -> None:
        channel = conn.tunnels.get(frame.session)
        if channel is not None:
            try:
                channel.send_nowait(frame)
                return
            except (trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
                log.warning("sysclient.tunnel_overrun", session=frame.session)
        if frame.event != TunnelEvent.SHUTDOWN:
            # Data for a session we no longer have: tell the device it is over.
            await conn.send_frames([TunnelFrame(frame.session, TunnelEvent.SHUTDOWN)])

    # --- passthrough -----------------------------------------------------------------------------

    async def relay_http(
        self, mac: str, method: str, target: str, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> HttpResponse:
        """Relay one HTTP request into the device's tunnel.

        Raises:
            PassthroughError: 404 unknown device, 502 offline/broken tunnel, 504 timeout.
        """
        conn = self._online.get(mac)
        if conn is None:
            raise PassthroughError(
                502 if mac in self.domain.devices else 404,
                "device offline" if mac in self.domain.devices else "unknown device",
            )
        relay = TunnelRelay(
            next(self._tunnel_ids),
            chunk=self.config.tunnel_chunk,
            strict=self.config.strict_frames,
        )
        send, receive = trio.open_memory_channel[TunnelFrame](16)
        conn.tunnels[relay.session] = send
        log.info("passthrough.request", mac=mac, method=method, session=relay.session)
        try:
            with trio.fail_after(self.config.tunnel_timeout):
                await conn.send_frames(relay.start(method, target, headers, body))
                async for frame in receive:
                    try:
                        replies = relay.on_frame(frame)
                    except TunnelError as exc:
                        self.violations += [(mac, v) for v in relay.violations]
                        log.info("passthrough.tunnel_error", mac=mac, reason=str(exc))
                        await conn.send_frames([TunnelFrame(relay.session, TunnelEvent.SHUTDOWN)])
                        raise PassthroughError(502, "bad answer from device") from None
                    await conn.send_frames(replies)
                    if relay.done:
                        self.violations += [(mac, v) for v in relay.violations]
                        assert relay.response is not None
                        return relay.response
        except trio.TooSlowError:
            raise PassthroughError(504, "device did not answer") from None
        except ConnectionLost:
            raise PassthroughError(502, "device went offline") from None
        finally:
            conn.tunnels.pop(relay.session, None)
        raise PassthroughError(502, "device went offline")

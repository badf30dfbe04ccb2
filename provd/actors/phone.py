"""One Sysclient actor per phone (MAC): register with Devices, then stay connected.

Lifecycle (spec section 6): the first connection identifies with the provisioning code and
receives the device password, which is committed before anything else; every later
connection identifies without code and answers the challenge with that password. While
connected the actor applies configuration items and administrative passwords as they
arrive. On failure it reconnects with exponential back-off and jitter; at most
``max_handshakes`` handshakes run at once across all phones.

The actor ends (returns) when its phone was removed, or when Devices refused the
provisioning code ``code_attempts`` times: the phone is marked ``failed`` and waits for a
new ``ProvisioningPhone``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import structlog
import trio
import trio_websocket as tw

from .. import __version__
from ..backoff import Backoff
from ..config import Config
from ..logs import register_secret
from ..protocol import ProtocolError
from ..protocol.sysclient import (
    AdminPasswordReceived,
    Authenticated,
    ConfigReceived,
    DeviceState,
    Identify,
    PasswordAssigned,
    ProvisionResult,
    SysclientDevice,
    TunnelFrame,
    TunnelReceived,
    encode_frame,
)
from ..protocol.tunnel import TunnelEndpoint
from ..store.actor import Store
from ..store.records import PhoneRecord
from ..transport import ConnectionLost, connect
from ..transport.address import sysclients_url
from ..transport.tls import context_for
from .devices_api import DevicesApi
from .state import DevicesLocator, Outcome, Outcomes, PhoneDirectory

log = structlog.get_logger("provd.phone")


@attrs.define
class PhoneContext:
    """What every phone actor shares; built once by the daemon."""

    config: Config
    store: Store
    directory: PhoneDirectory
    locator: DevicesLocator
    outcomes: Outcomes
    handshakes: trio.Semaphore
    #: Explains refused codes; None in tests that run without a PBX.
    devices_api: DevicesApi | None = None


class HandshakeFailed(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


async def run_phone(mac: str, ctx: PhoneContext) -> None:
    """The actor's body. Returns when the phone is gone or definitively refused."""
    with structlog.contextvars.bound_contextvars(mac=mac):
        p = ctx.config.provisioning
        backoff = Backoff(initial=p.backoff_initial, cap=p.backoff_cap)
        refusals = 0
        while True:
            record = ctx.directory.get(mac)
            if record is None:
                log.info("phone.gone")
                return
            url = await ctx.locator.wait_url()
            attempt = await _attempt(record, url, ctx)
            if attempt.admitted:
                backoff.reset()  # a working connection ended: start the back-off afresh
            await _set_online(ctx, mac, False)
            record = ctx.directory.get(mac)
            if record is None:
                return
            reason = attempt.reason
            if attempt.moved:
                log.info("sysclient.devices_moved", url=ctx.locator.url)
                continue  # reconnect at once, to the new URL
            if not record.assigned:
                refusals += 1
                log.warning("sysclient.code_attempt_failed", reason=reason, attempt=refusals)
                if refusals >= p.code_attempts:
                    error = f"Devices did not accept the provisioning code ({reason})"
                    if ctx.devices_api is not None:
                        why = await ctx.devices_api.explain_refusal(record.code, mac)
                        error = f"{error}: {why}" if why else error
                    await _fail(ctx, record, error)
                    return
            else:
                log.info("sysclient.disconnected", reason=reason)
            delay = backoff.next_delay()
            with trio.move_on_after(delay):
                await ctx.locator.wait_changed()  # a new Devices URL: retry at once


@attrs.define
class _Attempt:
    """How one connection attempt ended."""

    reason: str = ""
    admitted: bool = False  # the handshake completed
    moved: bool = False  # ended because the PBX announced another Devices URL


async def _attempt(record: PhoneRecord, url: str, ctx: PhoneContext) -> _Attempt:
    """One connection, ended early if the Devices service moves. Never raises for the
    failures a network peer can cause; their reason is in the result."""
    attempt = _Attempt()

    async def connect_and_serve() -> None:
        try:
            await _connection(record, url, ctx, attempt)
        except (ConnectionLost, HandshakeFailed, ProtocolError) as exc:
            attempt.reason = exc.reason
        except (OSError, tw.HandshakeError, trio.BrokenResourceError) as exc:
            attempt.reason = f"cannot connect: {type(exc).__name__}"
        nursery.cancel_scope.cancel()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(connect_and_serve)
        while ctx.locator.url == url:
            await ctx.locator.wait_changed()
        attempt.moved = True
        attempt.reason = "Devices service moved"
        nursery.cancel_scope.cancel()
    return attempt


async def _connection(record: PhoneRecord, url: str, ctx: PhoneContext, attempt: _Attempt) -> None:
    """One Sysclient connection, from handshake to close (always by an exception)."""
    p = ctx.config.provisioning
    identify = Identify(id=record.mac, product=p.product, version=__version__, other=True)
    if record.assigned:
        device = SysclientDevice(identify, password=record.sysclient_password)
    else:
        device = SysclientDevice(identify, code=record.code)
    target = sysclients_url(url)
    handshake_done = False
    await ctx.handshakes.acquire()
    try:
        with trio.fail_after(p.handshake_timeout) as handshake_scope:
            tls = context_for(
                target, ca_file=ctx.config.devices.ca_file, verify=ctx.config.devices.verify
            )
            async with connect(target, connect_timeout=p.handshake_timeout, ssl_context=tls) as ws:
                log.debug("sysclient.connected", url=target, with_code=not record.assigned)
                await ws.send_message(device.start())
                link = _Link(record, ctx, TunnelEndpoint(lambda _r: _status_page(ctx, record.mac)))
                while True:
                    data = await _receive(ws)
                    events = device.receive(data)
                    for frame in device.outgoing():
                        await ws.send_message(frame)
                    if device.state is DeviceState.READY and not handshake_done:
                        handshake_done = attempt.admitted = True
                        handshake_scope.deadline = math.inf
                        ctx.handshakes.release()
                        await _set_online(ctx, record.mac, True)
                    for event in events:
                        for frame in await _HANDLERS[type(event)](event, link):
                            await ws.send_message(encode_frame(frame))
    except trio.TooSlowError:
        raise HandshakeFailed("handshake timed out") from None
    finally:
        if not handshake_done:
            ctx.handshakes.release()


async def _receive(ws: tw.WebSocketConnection) -> bytes:
    try:
        data = await ws.get_message()
    except tw.ConnectionClosed as exc:
        code = exc.reason.code if exc.reason else "none"
        raise ConnectionLost(f"closed by Devices ({code})") from None
    if isinstance(data, str):
        raise ProtocolError("text frame on the sysclient connection")
    return data


@attrs.define
class _Link:
    """What the event handlers of one live Sysclient connection need."""

    record: PhoneRecord
    ctx: PhoneContext
    tunnel: TunnelEndpoint

    @property
    def mac(self) -> str:
        return self.record.mac


async def _on_password(event: PasswordAssigned, link: _Link) -> list[TunnelFrame]:
    """Commit the device password first: it is the phone's only credential from now on."""
    register_secret(event.password)
    code = link.record.code
    stored = await link.ctx.store.call(
        lambda db: db.set_sysclient_password(link.mac, event.password, code)
    )
    if not stored:  # a newer ProvisioningPhone replaced this code meanwhile
        raise ConnectionLost("provisioning code superseded")
    await _refresh(link.ctx, link.mac)
    log.info("sysclient.password_assigned")
    return []


async def _on_authenticated(event: Authenticated, link: _Link) -> list[TunnelFrame]:
    log.info("sysclient.authenticated")
    return []


async def _on_config(event: ConfigReceived, link: _Link) -> list[TunnelFrame]:
    item, store, mac = event.item, link.ctx.store, link.mac
    revision = await store.call(lambda db: db.put_config_item(mac, item.type, item.item))
    log.info("sysclient.config_item", type=item.type, last=item.last, revision=revision)
    if event.completes_initial:
        current = link.ctx.directory.get(mac)
        if current is not None and current.state != "provisioned":
            await store.call(lambda db: db.set_state(mac, "provisioned"))
    await _refresh(link.ctx, mac)
    if event.completes_initial:
        log.info("phone.config_current" if link.record.assigned else "phone.provisioned")
        link.ctx.outcomes.report(mac, link.record.code, Outcome(ok=True))
    return []


async def _on_admin_password(event: AdminPasswordReceived, link: _Link) -> list[TunnelFrame]:
    register_secret(event.password)
    await link.ctx.store.call(lambda db: db.set_admin_password(link.mac, event.password))
    await _refresh(link.ctx, link.mac)
    log.info("sysclient.admin_password_received")
    return []


async def _on_provision_result(event: ProvisionResult, link: _Link) -> list[TunnelFrame]:
    log.info("sysclient.provision_result_ignored")  # FXS only; provd provisions no FXS
    return []


async def _on_tunnel(event: TunnelReceived, link: _Link) -> list[TunnelFrame]:
    return link.tunnel.receive(event.frame)


#: One hop from a Sysclient event to its handler; each returns frames to send back.
_HANDLERS: dict[type, Callable[[Any, _Link], Awaitable[list[TunnelFrame]]]] = {
    PasswordAssigned: _on_password,
    Authenticated: _on_authenticated,
    ConfigReceived: _on_config,
    AdminPasswordReceived: _on_admin_password,
    ProvisionResult: _on_provision_result,
    TunnelReceived: _on_tunnel,
}


async def _refresh(ctx: PhoneContext, mac: str) -> None:
    record = await ctx.store.call(lambda db: db.phone(mac))
    if record is not None and ctx.directory.get(mac) is not None:
        ctx.directory.put(record)


async def _set_online(ctx: PhoneContext, mac: str, online: bool) -> None:
    record = ctx.directory.get(mac)
    if record is None or record.online == online:
        return
    await ctx.store.call(lambda db: db.set_online(mac, online))
    ctx.directory.put(attrs.evolve(record, online=online))


async def _fail(ctx: PhoneContext, record: PhoneRecord, error: str) -> None:
    await ctx.store.call(lambda db: db.set_state(record.mac, "failed", error))
    await _refresh(ctx, record.mac)
    log.error("phone.provisioning_failed", error=error)
    ctx.outcomes.report(record.mac, record.code, Outcome(ok=False, error=error))


def _status_page(ctx: PhoneContext, mac: str) -> bytes:
    record = ctx.directory.get(mac)
    if record is None:
        body = f"provd: phone {mac} is not known\n"
    else:
        body = (
            f"provd {__version__}\nphone {mac}\nstate {record.state}\n"
            f"online {record.online}\nrevision {record.revision}\n"
            f"config {', '.join(sorted(record.config)) or '-'}\n"
            f"updated {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(record.updated))} UTC\n"
        )
    data = body.encode()
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
        + f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode()
        + data
    )

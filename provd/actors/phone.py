"""One Sysclient actor per phone (MAC): register with Devices, then stay connected.

Lifecycle (spec sections 6 and 8.2): while the phone has a provisioning code Devices has
not answered, each connection identifies with it (keeping any stored password to answer a
challenge, when the device is already in a domain); the password Devices assigns is
committed, replacing the old one and the old registration's configuration items, before
anything else. Every later connection identifies without code and answers the challenge.
Devices sends no "ok" after a correct digest and may send nothing at all: any frame, or
``admit_quiet`` seconds of silence without a close, is admission. A ``0x0001`` during a
session (an administrator added the device to a domain) replaces the stored password.

The identify describes the phone as far as provd knows it: vendor and model/firmware from
its last fetch (User-Agent), the user's display name, the address it fetched from. The
digest is computed from exactly the identify sent on that connection.

While connected the actor applies configuration items and administrative passwords as
they arrive, and pings Devices every ``ping_interval`` seconds; no pong within
``ping_timeout`` ends the connection. On failure it reconnects with exponential back-off
and jitter, reset only after a connection lived ``backoff_reset_after`` seconds. At most
``max_handshakes`` handshakes run at once across all phones; first provisionings go ahead.

The actor ends (returns) when its phone was removed, or when Devices refused the
provisioning code ``code_attempts`` times and the phone has no older working password:
the phone is marked ``failed`` and waits for a new ``ProvisioningPhone``. With an older
password it stays connected on that one (a refused re-provisioning keeps the old
credential). Nothing a network peer, an invalid URL or the store does ends it otherwise.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import structlog
import trio

from ..backoff import Backoff
from ..config import Config
from ..logs import debug_enabled, register_secret
from ..outage import OutageTracker
from ..phones import page as phone_page
from ..phones.fetch import FetchRecord
from ..phones.identify import vendor_for_oui
from ..protocol import ProtocolError
from ..protocol.sysclient import (
    AdminPasswordReceived,
    Authenticated,
    ConfigReceived,
    DeviceState,
    Identify,
    Ignored,
    PasswordAssigned,
    ProvisionResult,
    Settled,
    SysclientDevice,
    TunnelFrame,
    TunnelReceived,
    encode_frame,
)
from ..protocol.tunnel import TunnelEndpoint
from ..store.actor import Store, StoreError
from ..store.records import PhoneRecord
from ..transport import ConnectionLost
from ..transport.address import sysclients_url
from ..transport.sysws import SysclientSocket, WebsocketRejected, open_sysclient
from ..transport.tls import context_for
from .devices_api import DevicesApi
from .keepalive import KeepAlive
from .state import DevicesLocator, HandshakeLimiter, Outcome, Outcomes, PhoneDirectory

log = structlog.get_logger("provd.phone")


@attrs.define
class PhoneContext:
    """What every phone actor shares; built once by the daemon."""

    config: Config
    store: Store
    directory: PhoneDirectory
    locator: DevicesLocator
    outcomes: Outcomes
    handshakes: HandshakeLimiter
    #: Explains refused codes; None in tests that run without a PBX.
    devices_api: DevicesApi | None = None
    #: Summarises Devices outages over all phone actors (provd.outage).
    devices_outage: OutageTracker = attrs.field(factory=lambda: OutageTracker("devices"))
    #: The phones server's current renderer (it changes on reload), for the phone page's
    #: "file it would get"; None in tests that run without one.
    renderer: Callable[[], Any] | None = None
    #: The phone's lifecycle by MAC (issue 11.1), for the phone page; None: not kept.
    lifecycle: Callable[[str], Any] | None = None
    #: The one keep-alive task's queues (built from the provisioning settings when None).
    keepalive: KeepAlive = attrs.field(default=None)
    #: Each phone's newest fetch (None: none) as read at start, until its first
    #: connection takes it; a fetch recorded since drops the entry (the daemon's).
    last_fetches: dict[str, FetchRecord | None] = attrs.field(factory=dict)
    #: The connection attempts running now, for ending them when Devices moves.
    attempts: set[_Attempt] = attrs.field(factory=set, init=False)

    def __attrs_post_init__(self) -> None:
        if self.keepalive is None:
            p = self.config.provisioning
            self.keepalive = KeepAlive(p.ping_interval, p.ping_timeout)
        self.locator.listeners.append(self._devices_moved)

    def _devices_moved(self, url: str) -> None:
        """A new Devices URL: every attempt on another one ends (and reconnects at once)."""
        for attempt in [a for a in self.attempts if a.url != url]:
            attempt.moved = True
            attempt.scope.cancel()


class HandshakeFailed(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


async def run_phone(mac: str, ctx: PhoneContext) -> None:
    """The actor's body. Returns when the phone is gone or definitively refused."""
    structlog.contextvars.clear_contextvars()  # not the context of the session that spawned it
    with _bound_mac(mac):
        p = ctx.config.provisioning
        backoff = Backoff(initial=p.backoff_initial, cap=p.backoff_cap)
        refusals = 0
        code_refused = False  # this actor gave up on the code; it keeps the old password
        while True:
            record = ctx.directory.get(mac)
            if record is None:
                log.info("phone.gone")
                ctx.outcomes.forget(mac)
                return
            ctx.directory.set_actor(mac, "connecting")
            url = await ctx.locator.wait_url()
            # A failed phone's code was refused: only a new ProvisioningPhone (which sets
            # the state back to pending) presents it again; the old password still works.
            use_code = record.code_pending and record.state != "failed" and not code_refused
            attempt = await _attempt(record, url, ctx, use_code, code_refused)
            ctx.devices_outage.attempt_ended(mac, attempt.admitted, attempt.reason)
            if attempt.lived >= p.backoff_reset_after:
                backoff.reset()  # a connection that lived a while: start afresh
            await _set_online(ctx, mac, False)
            record = ctx.directory.get(mac)
            if record is None:
                ctx.outcomes.forget(mac)
                return
            reason = attempt.reason
            if attempt.moved:
                log.info("sysclient.devices_moved", url=ctx.locator.url)
                continue  # reconnect at once, to the new URL
            if use_code and attempt.connected and not attempt.code_done:
                refusals += 1
                log.warning("sysclient.code_attempt_failed", reason=reason, attempt=refusals)
                if refusals >= p.code_attempts:
                    error = f"Devices did not accept the provisioning code ({reason})"
                    if ctx.devices_api is not None:
                        why = await ctx.devices_api.explain_refusal(record.code, mac)
                        error = f"{error}: {why}" if why else error
                    await _fail(ctx, record, error)
                    if not record.assigned:
                        ctx.directory.set_actor(mac, "failed", error)
                        return
                    code_refused = True
                    log.warning("sysclient.keeping_old_password")
            elif attempt.store_error:
                log.error("sysclient.store_error", reason=reason)
            else:
                # during an outage the tracker's one warning says it; each retry is debug
                (log.debug if ctx.devices_outage.down else log.info)(
                    "sysclient.disconnected", reason=reason
                )
            delay = backoff.next_delay()
            ctx.directory.set_actor(mac, "backoff", reason)
            with trio.move_on_after(delay):
                await ctx.locator.wait_changed()  # a new Devices URL: retry at once


def _bound_mac(mac: str) -> contextlib.nullcontext[None]:
    """``mac`` on every log line of this actor. The task runs in its own context (trio
    copies it per task), so nothing needs undoing; a plain null context costs less
    memory per phone than structlog's generator-based ``bound_contextvars``."""
    structlog.contextvars.bind_contextvars(mac=mac)
    return contextlib.nullcontext()


@attrs.define(eq=False)
class _Attempt:
    """How one connection attempt ended."""

    #: The Devices service URL it connects to; its scope ends it when Devices moves.
    url: str = ""
    scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    reason: str = ""
    connected: bool = False  # the websocket was open
    admitted: bool = False  # the handshake completed
    code_done: bool = False  # Devices answered the code (password committed, or challenge)
    moved: bool = False  # ended because the PBX announced another Devices URL
    store_error: bool = False
    #: Seconds the admitted connection lived.
    lived: float = 0.0


async def _attempt(
    record: PhoneRecord, url: str, ctx: PhoneContext, use_code: bool, code_refused: bool = False
) -> _Attempt:
    """One connection, ended early if the Devices service moves. Never raises for the
    failures a network peer, a bad URL or the store can cause; their reason is in the
    result (issue 8.4: none of them may end the actor)."""
    attempt = _Attempt(url=url)
    if ctx.locator.url != url:
        attempt.moved = True
    else:
        ctx.attempts.add(attempt)
        try:
            # The one cancel scope of the connection: a Devices move, the keep-alive
            # (a late pong) and the handshake deadline all end the attempt through it.
            with attempt.scope:
                await _connect_and_serve(record, url, ctx, attempt, use_code, code_refused)
        finally:
            ctx.attempts.discard(attempt)
    if attempt.moved:
        attempt.reason = "Devices service moved"
    elif attempt.scope.cancelled_caught and not attempt.reason:
        attempt.reason = "handshake timed out"  # its deadline (the keep-alive says why)
    return attempt


async def _connect_and_serve(
    record: PhoneRecord,
    url: str,
    ctx: PhoneContext,
    attempt: _Attempt,
    use_code: bool,
    code_refused: bool,
) -> None:
    try:
        await _connection(record, url, ctx, attempt, use_code, code_refused)
    except (ConnectionLost, HandshakeFailed, ProtocolError) as exc:
        attempt.reason = exc.reason
    except (OSError, WebsocketRejected, trio.BrokenResourceError) as exc:
        attempt.reason = f"cannot connect to {url}: {type(exc).__name__}"
    except ValueError as exc:  # an invalid Devices URL (the URL parser's)
        attempt.reason = f"invalid Devices URL {url!r}: {exc}"
    except (StoreError, sqlite3.Error) as exc:  # the store actor's, or a direct read's
        attempt.reason = f"store error: {exc}"
        attempt.store_error = True


def describe(record: PhoneRecord, fetch: FetchRecord | None, fallback_product: str) -> Identify:
    """The identify for ``record`` (spec section 8.2): what the Devices UI should show.

    Once the phone fetched a file: product and version are its model and firmware from
    that fetch's User-Agent, ``ethIfs`` the address it fetched from. Before: the vendor
    the MAC's OUI names ("Yealink phone"), version empty. ``name`` is the user's display
    name. ``other`` stays true: not an innovaphone device.
    """
    vendor_name = ""
    if fetch is not None and fetch.vendor:
        vendor_name = fetch.vendor
    else:
        vendor = vendor_for_oui(record.mac)
        vendor_name = str(vendor) if vendor else ""
    vendor_title = vendor_name.capitalize() if vendor_name else ""
    model = (fetch.model or "") if fetch is not None else ""
    if model:
        product = model if model.lower().startswith(vendor_name) else f"{vendor_title} {model}"
    elif vendor_title:
        product = f"{vendor_title} phone"
    else:
        product = fallback_product
    version = (fetch.firmware or "") if fetch is not None else ""
    extra: dict[str, Any] = {}
    if fetch is not None and fetch.address:
        extra["ethIfs"] = [_eth_if(fetch.address)]
    return Identify(
        id=record.mac,
        product=product.strip(),
        version=version,
        name=record.cn or None,
        other=True,
        extra=extra,
    )


def _eth_if(address: str) -> dict[str, str]:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return {"if": "eth0"}
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    key = "ipv4" if ip.version == 4 else "ipv6"
    return {"if": "eth0", key: str(ip)}


async def _connection(
    record: PhoneRecord,
    url: str,
    ctx: PhoneContext,
    attempt: _Attempt,
    use_code: bool,
    code_refused: bool,
) -> None:
    """One Sysclient connection, from handshake to close (always by an exception)."""
    p = ctx.config.provisioning
    identify = describe(record, await _last_fetch(ctx, record.mac), p.product)
    device = SysclientDevice(
        identify,
        code=record.code if use_code else None,
        password=record.sysclient_password or None,
    )
    target = sysclients_url(url)
    handshake_done = False
    admitted_at = 0.0
    await ctx.handshakes.acquire(priority=use_code)
    slot_held = True
    ws: SysclientSocket | None = None
    scope = attempt.scope  # the handshake deadline is its deadline, lifted once answered
    try:
        ctx.directory.set_actor(record.mac, "handshake")
        scope.deadline = trio.current_time() + p.handshake_timeout
        tls = context_for(
            target, ca_file=ctx.config.devices.ca_file, verify=ctx.config.devices.verify
        )
        ws = await open_sysclient(target, ssl_context=tls)
        attempt.connected = True
        if debug_enabled():  # skipped cheaply: a filtered log.debug costs ~25 us
            log.debug("sysclient.connected", url=target, with_code=use_code)
        link = _Link(
            record,
            ctx,
            TunnelEndpoint(),  # answered with the phone page (_on_tunnel)
            attempt,
            use_code,
            code_refused,
        )
        # One task per phone: this one receives; the shared keep-alive pings (and cancels
        # the attempt's scope, with ws.lost saying why, when a pong is late).
        ws.scope = scope
        ctx.keepalive.watch(ws)
        await ws.send_message(device.start())
        while True:
            events = await _next_events(ws, device, p.admit_quiet)
            # The frames that came in the same read are handled together (a burst of
            # items: one commit, issue 14); a bad one among them ends the connection only
            # after the frames before it were handled, as if they came one by one.
            bad = _take_ready(ws, device, events)
            for frame in device.outgoing():
                await ws.send_message(frame)
            if slot_held and device.state in _ANSWERED:
                # Our part is done (digest sent, or password received): silence from here
                # on is not failure (spec section 8.2), so no deadline; the quiet timer
                # admits and pings keep the session. Devices' work is done: free the slot.
                slot_held = False
                scope.deadline = float("inf")
                ctx.handshakes.release()
            if device.state is DeviceState.READY and not handshake_done:
                handshake_done = attempt.admitted = True
                admitted_at = trio.current_time()
                ctx.directory.set_actor(record.mac, "connected", "")
                await _set_online(ctx, record.mac, True)
                ctx.devices_outage.connected_ok(record.mac)
            for frame in await _handle(events, link):
                await ws.send_message(encode_frame(frame))
            if bad is not None:
                raise bad
            # Not kept while the phone waits for its next frame (hours, mostly): a first
            # registration's burst holds every item it brought (2-3 KB per phone).
            del events
    finally:
        if ws is not None:
            ctx.keepalive.unwatch(ws)
            attempt.reason = attempt.reason or ws.lost
            await ws.aclose()
        if handshake_done:
            attempt.lived = trio.current_time() - admitted_at
        if slot_held:
            ctx.handshakes.release()


async def _last_fetch(ctx: PhoneContext, mac: str) -> FetchRecord | None:
    """The phone's newest fetch: as the daemon read it for all phones at start (one query
    per page, issue 14), once; afterwards from the store."""
    if mac in ctx.last_fetches:
        return ctx.last_fetches.pop(mac)
    fetches = await ctx.store.call(lambda db: db.fetches(mac, 1), quick=True)
    return fetches[0] if fetches else None


#: States in which the device has said its part of the handshake.
_ANSWERED = (DeviceState.ANSWERED, DeviceState.READY)


async def _next_events(ws: SysclientSocket, device: SysclientDevice, quiet: float):
    """The events of the next frame; or, while silence means something, of ``quiet``
    seconds without one (spec section 8.2: silence after the digest is not failure)."""
    if not device.wants_quiet_timer:
        return device.receive(await ws.get_message())
    with trio.move_on_after(quiet):
        return device.receive(await ws.get_message())
    return device.quiet()


def _take_ready(
    ws: SysclientSocket, device: SysclientDevice, events: list[Any]
) -> ProtocolError | None:
    """Add the events of the messages already received to ``events``; the error of the
    first bad one (the rest are dropped with it: the connection ends)."""
    for data in ws.take_ready():
        try:
            events += device.receive(data)
        except ProtocolError as exc:
            return exc
    return None


@attrs.define
class _Link:
    """What the event handlers of one live Sysclient connection need."""

    record: PhoneRecord
    ctx: PhoneContext
    tunnel: TunnelEndpoint
    attempt: _Attempt = attrs.field(factory=_Attempt)
    #: This connection presented the provisioning code.
    use_code: bool = False
    #: The actor gave up on the code: connected on the old password only.
    code_refused: bool = False
    #: The initial configuration is in (Settled); until then a first registration's items
    #: are summed up in one line (phone.provisioned items=N).
    settled: bool = False
    initial_items: int = 0

    @property
    def mac(self) -> str:
        return self.record.mac


async def _on_password(event: PasswordAssigned, link: _Link) -> list[TunnelFrame]:
    """Commit the device password first: it is the phone's only credential from now on.

    The answer to our code replaces the old password and the old registration's items in
    one transaction; a password during a session (added to a domain by an administrator)
    replaces only the password.
    """
    register_secret(event.password, owner=link.mac)
    mac, store = link.mac, link.ctx.store
    code = link.record.code if event.with_code else None
    # The write and the re-read in one store call (issue 14: one commit and one pass
    # through the store instead of two): the directory holds the new password and the
    # answered code together, so a connection lost from here on reconnects without code.
    stored, record = await store.call(
        lambda db: _read_after(db, mac, db.set_sysclient_password(mac, event.password, code)),
        quick=True,
    )
    if event.with_code:
        if not stored:  # a newer ProvisioningPhone replaced this code meanwhile
            raise ConnectionLost("provisioning code superseded")
        link.attempt.code_done = True
    _keep(link.ctx, record)
    # A first registration's password is summed up by phone.provisioned (issue 14: one
    # info line per step was a share of the CPU per provisioned phone); one assigned
    # during a session (an administrator's doing) keeps its info line.
    if not (event.with_code and link.use_code):
        log.info("sysclient.password_assigned", during_session=not event.with_code)
    elif debug_enabled():
        log.debug("sysclient.password_assigned", during_session=False)
    return []


async def _on_authenticated(event: Authenticated, link: _Link) -> list[TunnelFrame]:
    if event.code_challenged:
        # Already in a domain: Devices challenged our code identify and took the stored
        # password. The code is answered; the password stays (spec section 8.2).
        mac, code = link.mac, link.record.code
        _, record = await link.ctx.store.call(
            lambda db: _read_after(db, mac, db.code_answered(mac, code)), quick=True
        )
        _keep(link.ctx, record)
        link.attempt.code_done = True
        log.info("sysclient.code_answered_by_challenge")
    log.info("sysclient.authenticated")
    return []


async def _on_config(event: ConfigReceived, link: _Link) -> list[TunnelFrame]:
    return await _on_configs([event], link)


async def _on_configs(events: list[ConfigReceived], link: _Link) -> list[TunnelFrame]:
    """Configuration items that came together: stored in one transaction, in order."""
    store, mac = link.ctx.store, link.mac
    items = [event.item for event in events if event.item is not None]
    if len(items) < len(events) and debug_enabled():
        log.debug("sysclient.config_last")  # a bare {"last":...} frame
    if not items:
        return []
    pairs = [(item.type, item.item) for item in items]
    revisions = await store.call(lambda db: db.put_config_items(mac, pairs), quick=True)
    # A first registration's initial set is summed up by phone.provisioned (per-item lines
    # were a tenth of the daemon's CPU per provisioned phone, issue 14); any other item,
    # a live change above all, keeps its own info line.
    initial = link.use_code and not link.settled
    if initial:
        link.initial_items += len(items)
    if not initial or debug_enabled():
        for item, revision in zip(items, revisions, strict=True):
            (log.debug if initial else log.info)(
                "sysclient.config_item", type=item.type, last=item.last, revision=revision
            )
    # O(1) per item (issue 8.14): update the in-memory record's items in place instead
    # of reloading every item of the phone from the store.
    current = link.ctx.directory.get(mac)
    if initial and current is not None and current.state != "provisioned":
        # Not served before it settles, and _on_settled re-reads the record (items and
        # revision) once it is in: no copy of the record per initial item (issue 14).
        return []
    if current is not None:
        for item in items:
            current.config[item.type] = item.item
        link.ctx.directory.put(attrs.evolve(current, revision=revisions[-1]))
    return []


async def _on_settled(event: Settled, link: _Link) -> list[TunnelFrame]:
    """Admitted and the initial set is in (or Devices stays quiet): the phone is served."""
    mac, ctx = link.mac, link.ctx
    link.settled = True
    if link.code_refused:
        return []  # connected on the old password; the refused code stays failed
    if link.use_code and not link.attempt.code_done:
        return []
    current = ctx.directory.get(mac)
    if current is not None and current.state != "provisioned":
        # Re-read (in the same store call), never write back the copy from before the
        # await: a ProvisioningPhone with a new code may have been stored meanwhile, and
        # its pending code must stay visible to the actor that presents it. The re-read
        # also takes in the initial items and administrative password, which were not
        # copied into the directory one by one (issue 14).
        _, record = await ctx.store.call(
            lambda db: _read_after(db, mac, db.set_state(mac, "provisioned")), quick=True
        )
        _keep(ctx, record)
    log.info(
        "phone.provisioned" if link.use_code else "phone.config_current",
        quiet=event.by_quiet,
        items=link.initial_items,
    )
    ctx.outcomes.report(mac, link.record.code, Outcome(ok=True))
    return []


async def _on_admin_password(event: AdminPasswordReceived, link: _Link) -> list[TunnelFrame]:
    register_secret(event.password, owner=link.mac)
    mac, ctx = link.mac, link.ctx
    initial = link.use_code and not link.settled
    current = ctx.directory.get(mac)
    if initial and current is not None and current.state != "provisioned":
        # Not served before it settles, and _on_settled re-reads the record once it is
        # in (as for the initial items): the write alone (issue 14).
        await ctx.store.call(lambda db: db.set_admin_password(mac, event.password), quick=True)
    else:
        _, record = await ctx.store.call(
            lambda db: _read_after(db, mac, db.set_admin_password(mac, event.password)),
            quick=True,
        )
        _keep(ctx, record)
    if not initial or debug_enabled():
        (log.debug if initial else log.info)("sysclient.admin_password_received")
    return []


async def _on_provision_result(event: ProvisionResult, link: _Link) -> list[TunnelFrame]:
    log.info("sysclient.provision_result_ignored")  # FXS only; provd provisions no FXS
    return []


async def _on_ignored(event: Ignored, link: _Link) -> list[TunnelFrame]:
    log.debug("sysclient.ignored", what=event.what)
    return []


async def _on_tunnel(event: TunnelReceived, link: _Link) -> list[TunnelFrame]:
    tunnel = link.tunnel
    ignored, refused = tunnel.ignored, tunnel.refused
    frames = tunnel.receive(event.frame)
    if tunnel.ignored != ignored:
        log.debug("sysclient.tunnel_event_ignored", tunnel_event=event.frame.event)
    if tunnel.refused != refused:
        log.info("sysclient.tunnel_session_shut", reason=tunnel.last_refusal)
    for sid, request in tunnel.requests():
        try:
            data = await _page_data(link.ctx, link.mac)
            response = phone_page.respond(request, data)
        except Exception as exc:  # a bug in the page: that request fails, the session stays
            log.error("sysclient.phone_page_failed", error=f"{type(exc).__name__}: {exc}"[:300])
            response = phone_page.error_response(500, "internal error")
        frames += tunnel.answer(sid, response)
    return frames


async def _page_data(ctx: PhoneContext, mac: str) -> phone_page.PageData:
    """What the phone page shows (issue 11.5), read now."""
    record = ctx.directory.get(mac)
    if record is None:
        return phone_page.PageData(mac=mac, record=None)
    try:
        fetches = await ctx.store.call(lambda db: db.fetches(mac, phone_page.FETCHES_SHOWN))
    except (StoreError, sqlite3.Error) as exc:  # the page shows the rest
        log.warning("sysclient.phone_page_no_fetches", error=str(exc)[:300])
        fetches = []
    renderer = ctx.renderer() if ctx.renderer is not None else None
    preview = phone_page.file_preview(
        renderer, ctx.directory.data(mac), record, fetches[0] if fetches else None
    )
    life = ctx.lifecycle(mac) if ctx.lifecycle is not None else None
    return phone_page.PageData(
        mac=mac, record=record, fetches=tuple(fetches), file=preview, lifecycle=life
    )


async def _handle(events: list[Any], link: _Link) -> list[TunnelFrame]:
    """Run each event's handler, in order; a run of configuration items goes to one call
    (:func:`_on_configs`). Returns the frames to send back."""
    frames: list[TunnelFrame] = []
    for kind, run in itertools.groupby(events, type):
        if kind is ConfigReceived:
            frames += await _on_configs(list(run), link)
        else:
            for event in run:
                frames += await _HANDLERS[kind](event, link)
    return frames


#: One hop from a Sysclient event to its handler; each returns frames to send back.
_HANDLERS: dict[type, Callable[[Any, _Link], Awaitable[list[TunnelFrame]]]] = {
    PasswordAssigned: _on_password,
    Authenticated: _on_authenticated,
    Settled: _on_settled,
    AdminPasswordReceived: _on_admin_password,
    ProvisionResult: _on_provision_result,
    Ignored: _on_ignored,
    TunnelReceived: _on_tunnel,
}


def _read_after(db: Any, mac: str, result: Any) -> tuple[Any, PhoneRecord | None]:
    """``result`` of a write just made (its argument) and the phone's record as stored
    after it: a write and its re-read in one store call (store thread)."""
    return result, db.phone(mac)


def _keep(ctx: PhoneContext, record: PhoneRecord | None) -> None:
    """Put a record re-read from the store into the directory, unless the phone was
    removed meanwhile."""
    if record is not None and ctx.directory.get(record.mac) is not None:
        ctx.directory.put(record)


async def _set_online(ctx: PhoneContext, mac: str, online: bool) -> None:
    record = ctx.directory.get(mac)
    if record is None or record.online == online:
        return
    ctx.store.set_online(mac, online)  # batched with the other phones' (issue 14)
    ctx.directory.set_online(mac, online)


async def _fail(ctx: PhoneContext, record: PhoneRecord, error: str) -> None:
    mac = record.mac
    _, current = await ctx.store.call(
        lambda db: _read_after(db, mac, db.set_state(mac, "failed", error)), quick=True
    )
    _keep(ctx, current)
    log.error("phone.provisioning_failed", error=error)
    ctx.outcomes.report(record.mac, record.code, Outcome(ok=False, error=error))

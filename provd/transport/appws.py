"""Typed AppWebsocket connections over trio-websocket, and login on both sides.

Errors are translated at this boundary: a closed or broken websocket becomes
:class:`ConnectionLost`; malformed peer input stays a
:class:`~provd.protocol.ProtocolError` so the caller can close with a reason.
"""

from __future__ import annotations

import errno
import ssl
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import structlog
import trio
import trio_websocket as tw

from ..protocol import LoginRefused, ProtocolError
from ..protocol.jsonwire import MAX_MESSAGE_SIZE
from ..protocol.login import ClientLogin, Identity, ServerLogin, check_login
from ..protocol.messages import (
    AppChallenge,
    AppChallengeResult,
    AppCheckLogin,
    AppLogin,
    AppLoginResult,
    CheckBuild,
    CheckBuildResult,
    GetServiceLogin,
    GetServiceLoginResult,
    Message,
    decode_text,
    encode_text,
)
from .address import parse_listen
from .front import (
    BadRequest,
    HttpHandler,
    HttpResponse,
    ReplayStream,
    answer,
    is_upgrade,
    read_head,
    to_request,
)
from .guard import LoginThrottle

log = structlog.get_logger("provd.transport")

M = TypeVar("M", bound=Message)


class ConnectionLost(Exception):
    """The websocket closed or broke; ``reason`` says how (log-safe)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class AppWebsocket:
    """One AppWebsocket connection: JSON text messages in and out, typed."""

    def __init__(self, ws: tw.WebSocketConnection) -> None:
        self.ws = ws
        self.session_key: str | None = None

    @property
    def remote(self) -> str:
        r = self.ws.remote
        if isinstance(r, tw.Endpoint):
            return f"{r.address}:{r.port}"
        return getattr(getattr(self.ws, "_stream", None), "peer", None) or str(r)

    @property
    def remote_address(self) -> str:
        """The peer's IP address alone (what per-address limits key on)."""
        r = self.ws.remote
        if isinstance(r, tw.Endpoint):
            return str(r.address)
        peer = getattr(getattr(self.ws, "_stream", None), "peer", None)  # via the HTTP front
        if peer:
            return peer.rpartition(":")[0].strip("[]")
        return str(r)

    def allow_message_size(self, size: int) -> None:
        """Raise (or lower) this connection's message cap, e.g. to the full one after login.

        trio-websocket fixes ``max_message_size`` per server; its reader compares every
        frame against the connection's ``_max_message_size`` (checked for 0.11-0.12), so
        setting that attribute is the only way to change the cap of one live connection.
        """
        self.ws._max_message_size = size

    async def keepalive(self, interval: float, pong_timeout: float) -> None:
        """Ping every ``interval`` seconds; raise ``ConnectionLost`` when a pong is late.

        Every websocket endpoint must answer a ping with a pong (RFC 6455, 5.5.2-5.5.3), so
        a peer that does not within ``pong_timeout`` is gone (a half-open TCP connection) or
        stuck. Runs until the connection closes or a pong is late; never returns normally.

        Raises:
            ConnectionLost: a pong did not come in time, or the connection closed.
        """
        while True:
            await trio.sleep(interval)
            with trio.move_on_after(pong_timeout) as scope:
                try:
                    await self.ws.ping()
                except (tw.ConnectionClosed, trio.BrokenResourceError, trio.ClosedResourceError):
                    raise ConnectionLost("closed while pinging") from None
            if scope.cancelled_caught:
                raise ConnectionLost(f"no pong within {pong_timeout:g} s")

    async def send(self, msg: Message) -> None:
        try:
            await self.ws.send_message(encode_text(msg))
        except (tw.ConnectionClosed, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise ConnectionLost(f"send failed: {type(exc).__name__}") from None

    async def receive(self) -> Message:
        """The next message.

        Raises:
            ConnectionLost: the peer closed or the connection broke.
            ProtocolError: a binary frame, or malformed JSON/message.
        """
        try:
            data = await self.ws.get_message()
        except tw.ConnectionClosed as exc:
            reason = exc.reason
            raise ConnectionLost(f"closed ({reason.code if reason else 'no reason'})") from None
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise ConnectionLost("broken") from None
        if isinstance(data, bytes):
            raise ProtocolError("binary frame on an AppWebsocket connection")
        return decode_text(data)

    async def receive_kind(self, kind: type[M]) -> M:
        msg = await self.receive()
        if not isinstance(msg, kind):
            raise ProtocolError(f"expected {kind.MT}, got {type(msg).__name__}")
        return msg

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        with trio.move_on_after(2) as scope:
            scope.shield = True
            await self.ws.aclose(code, reason)


async def accept_login(
    conn: AppWebsocket,
    password: str,
    *,
    login_timeout: float = 10.0,
    throttle: LoginThrottle | None = None,
) -> ServerLogin:
    """Run the server side of the login: challenge, verify, answer.

    Returns:
        The successful :class:`ServerLogin` (who logged in, session key).

    Raises:
        LoginRefused: wrong digest (the refusal was sent), or the login took too long.
        ProtocolError, ConnectionLost: as :meth:`AppWebsocket.receive`.

    With a ``throttle``, an ``AppLogin`` from an address with recent failures is looked at
    only when its turn comes (inside ``login_timeout``), and every failure is counted (and
    logged) there.
    """
    address = conn.remote_address

    def refused(reason: str) -> None:
        if throttle is not None:
            throttle.failed(address, reason)

    login = ServerLogin(password)
    with trio.move_on_after(login_timeout) as scope:
        while True:
            try:
                msg = await conn.receive()
            except ProtocolError as exc:
                refused(f"protocol error: {exc.reason}")
                raise
            if isinstance(msg, AppChallenge):
                await conn.send(login.on_challenge(msg))
            elif isinstance(msg, AppLogin):
                if throttle is not None:
                    await throttle.wait_turn(address)
                result = login.on_login(msg)
                if not result.ok:
                    refused("wrong digest")  # counted before the answer leaves
                await conn.send(result)
                if result.ok:
                    conn.session_key = login.session_key
                    if throttle is not None:
                        throttle.succeeded(address)
                    return login
                raise LoginRefused("wrong digest")
            elif isinstance(msg, AppCheckLogin):
                # The PBX Manager's password check: answered, never a protocol error
                # (spec section 2); after a match the connection may still log in. A
                # mismatch ends the connection once answered, as a wrong AppLogin does, so
                # the check is no password-guessing oracle.
                if throttle is not None:  # an oracle for the password: rate-limited too
                    await throttle.wait_turn(address)
                result = check_login(msg, password)
                if result.ok:
                    log.info("appservice.check_login", app=msg.app, ok=True)
                    if throttle is not None:
                        throttle.succeeded(address)
                    await conn.send(result)
                    continue
                # Logged (once, then summed per address) by the throttle's refusal report.
                refused(
                    "AppCheckLogin digest does not match: the App object's password differs"
                    " from appservice.password"
                )
                await conn.send(result)
                raise LoginRefused("AppCheckLogin digest does not match")
            elif isinstance(msg, CheckBuild):
                # The innovaphone JS client sends it before its AppChallenge when checkBuild
                # is set. No url: the client would redirect (spec section 2).
                await conn.send(msg.reply(CheckBuildResult))
            else:
                refused(f"{type(msg).__name__} before login")
                raise ProtocolError(f"{type(msg).__name__} before login")
    assert scope.cancelled_caught
    refused(f"no login within {login_timeout:g} s")
    raise LoginRefused(f"no login within {login_timeout:g} s")


async def login_with_password(conn: AppWebsocket, identity: Identity, password: str) -> str:
    """Client login with a known password. Returns the session key."""
    client = ClientLogin(identity=identity, password=password)
    await conn.send(client.start())
    login = client.on_challenge(await conn.receive_kind(AppChallengeResult))
    assert isinstance(login, AppLogin)
    await conn.send(login)
    client.on_result(await conn.receive_kind(AppLoginResult))
    conn.session_key = client.session_key
    assert client.session_key is not None
    return client.session_key


async def login_as_service(
    conn: AppWebsocket,
    service: str,
    ask_pbx: Callable[[GetServiceLogin], Awaitable[GetServiceLoginResult]],
    pbx_session_key: str,
) -> str:
    """Client login to another app service with a login the PBX makes for us.

    ``ask_pbx`` sends ``GetServiceLogin`` on the PBX connection and returns its result.
    Returns the session key.
    """
    client = ClientLogin(service=service)
    await conn.send(client.start())
    ask = client.on_challenge(await conn.receive_kind(AppChallengeResult))
    assert isinstance(ask, GetServiceLogin)
    login = client.on_service_login(await ask_pbx(ask), pbx_session_key)
    await conn.send(login)
    client.on_result(await conn.receive_kind(AppLoginResult))
    conn.session_key = client.session_key
    assert client.session_key is not None
    return client.session_key


def connect(
    url: str,
    *,
    ssl_context: ssl.SSLContext | None = None,
    max_message_size: int = MAX_MESSAGE_SIZE,
    connect_timeout: float = 10.0,
):
    """``async with connect(url) as ws`` — a client websocket (raw; wrap in AppWebsocket)."""
    return tw.open_websocket_url(
        url,
        ssl_context=ssl_context,
        max_message_size=max_message_size,
        connect_timeout=connect_timeout,
        disconnect_timeout=2.0,
    )


#: Peer address of every accepted TCP stream, recorded at accept time (a reset peer can no
#: longer be asked with getpeername).
_PEERS: weakref.WeakKeyDictionary[trio.SocketStream, str] = weakref.WeakKeyDictionary()
#: accept() errors that concern only the one connection (as trio's own SocketListener).
_IGNORABLE_ACCEPT = {errno.ECONNABORTED, errno.EPERM, errno.EPROTO}


class _PeerListener(trio.abc.Listener[trio.SocketStream]):
    """A TCP listener like :class:`trio.SocketListener` that remembers each peer address."""

    def __init__(self, inner: trio.SocketListener) -> None:
        self.inner = inner

    async def accept(self) -> trio.SocketStream:
        while True:
            try:
                sock, address = await self.inner.socket.accept()
            except OSError as exc:
                if exc.errno in (errno.EBADF, errno.ENOTSOCK):
                    raise trio.ClosedResourceError from None
                if exc.errno not in _IGNORABLE_ACCEPT:
                    raise
            else:
                stream = trio.SocketStream(sock)
                host, port = address[:2]
                _PEERS[stream] = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
                return stream

    async def aclose(self) -> None:
        await self.inner.aclose()


def _stream_peer(stream: trio.abc.Stream) -> str:
    """``address:port`` of a raw (TCP or TLS) stream's peer, for log lines."""
    inner = getattr(stream, "transport_stream", stream)
    return _PEERS.get(inner, "?") if isinstance(inner, trio.SocketStream) else "?"


#: What a peer that resets, closes or vanishes mid-handshake makes the library raise.
_PEER_GONE = (OSError, trio.BrokenResourceError, trio.ClosedResourceError, tw.ConnectionClosed)


def _leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups, or ``exc`` itself."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for sub in exc.exceptions for leaf in _leaves(sub)]
    return [exc]


class _Refusals:
    """Counts connections refused at the cap; one warning a minute, not one per refusal."""

    INTERVAL = 60.0

    def __init__(self, listen: str, limit: int) -> None:
        self.listen = listen
        self.limit = limit
        self.count = 0
        self.logged_at: float | None = None

    def refused(self, peer: str) -> None:
        self.count += 1
        now = trio.current_time()
        if self.logged_at is None or now - self.logged_at >= self.INTERVAL:
            log.warning(
                "appservice.connection_limit",
                listen=self.listen,
                limit=self.limit,
                refused=self.count,
                peer=peer,
            )
            self.count = 0
            self.logged_at = now


async def serve(
    handler: Callable[[tw.WebSocketConnection], Awaitable[None]],
    listen: str,
    *,
    ssl_context: ssl.SSLContext | None = None,
    max_message_size: int = MAX_MESSAGE_SIZE,
    max_connections: int = 1024,
    handshake_timeout: float = 10.0,
    http: HttpHandler | None = None,
    task_status: trio.TaskStatus[tw.WebSocketServer] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve websockets on ``listen`` (any URL path); readiness via ``nursery.start``.

    Every connection is accepted and handed to ``handler``. Nothing a peer does ends the
    server: each connection runs inside a guard that logs what escapes it (once, with the
    peer address) and goes on with the next. At most ``max_connections`` are held at once
    (more are closed right away); the upgrade must complete within ``handshake_timeout``
    seconds; ``max_message_size`` is each connection's cap until the handler raises it
    (:meth:`AppWebsocket.allow_message_size`). With ``http``, requests that are not a
    websocket upgrade are answered by it (the App's files; see :mod:`.front`).
    """
    host, port = parse_listen(listen)
    tcp = await trio.open_tcp_listeners(port, host=host)
    listeners: list[trio.abc.Listener[Any]] = [_PeerListener(t) for t in tcp]
    described: list[trio.abc.Listener[Any]] = list(tcp)  # for WebSocketServer.port/listeners
    if ssl_context is not None:
        listeners = [trio.SSLListener(t, ssl_context, https_compatible=True) for t in listeners]
        described = [trio.SSLListener(t, ssl_context, https_compatible=True) for t in tcp]

    async def on_request(request: tw.WebSocketRequest) -> None:
        try:
            ws = await request.accept()
        except (tw.ConnectionClosed, trio.BrokenResourceError, trio.ClosedResourceError):
            log.info("connection.upgrade_aborted", peer=_remote(request))
            return
        try:
            await handler(ws)
        except Exception:
            log.exception("connection.crashed", peer=_remote(request))

    server = tw.WebSocketServer(
        on_request,
        described,
        max_message_size=max_message_size,
        connect_timeout=handshake_timeout,
        disconnect_timeout=2.0,
    )
    active = 0
    refusals = _Refusals(listen, max_connections)

    async def guarded(stream: trio.abc.Stream) -> None:
        nonlocal active
        peer = _stream_peer(stream)
        if active >= max_connections:
            refusals.refused(peer)
            await trio.aclose_forcefully(stream)
            return
        active += 1
        try:
            if http is not None:
                front = await _front(stream, peer, http, handshake_timeout)
                if front is None:
                    return
                stream = front
            # The library's per-connection task (upgrade, reader, our on_request); it is
            # what trio-websocket's own WebSocketServer.run hands to serve_listeners.
            await server._handle_connection(stream)
        except Exception as exc:  # a peer must never end the listener
            leaves = _leaves(exc)
            error = ",".join(sorted({type(e).__name__ for e in leaves}))
            detail = str(leaves[0])[:200]
            if all(isinstance(e, _PEER_GONE) for e in leaves):
                log.info("connection.aborted", peer=peer, error=error, detail=detail)
            else:  # a bug on our side or in the library: worth a traceback
                log.error("connection.failed", peer=peer, error=error, detail=detail, exc_info=exc)
            await trio.aclose_forcefully(stream)
        finally:
            active -= 1
            log.debug("connection.released", peer=peer, active=active)

    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, guarded, listeners)
        task_status.started(server)


async def _front(
    stream: trio.abc.Stream, peer: str, http: HttpHandler, head_timeout: float
) -> trio.abc.Stream | None:
    """The stream to hand to trio-websocket, or None when the request was answered here."""
    request = None
    with trio.move_on_after(head_timeout):
        try:
            request, raw = await read_head(stream)
        except BadRequest as exc:
            log.info("http.bad_request", peer=peer, error=str(exc)[:200])
            await answer(stream, HttpResponse(400, b"bad request\n"), head_only=False)
            return None
    if request is None:  # timed out or closed before a full head
        await trio.aclose_forcefully(stream)
        return None
    if is_upgrade(request):
        return ReplayStream(stream, raw, peer)
    req = to_request(request)
    try:
        response = await http(req)
    except Exception:
        log.exception("http.failed", peer=peer, target=req.target[:200])
        response = HttpResponse(500, b"internal error\n")
    await answer(stream, response, head_only=req.method == "HEAD")
    return None


def _remote(request: tw.WebSocketRequest) -> str:
    r = request.remote
    if isinstance(r, tw.Endpoint):
        return f"{r.address}:{r.port}"
    # Through the HTTP front the library sees a ReplayStream, which knows the peer.
    stream = getattr(getattr(request, "_connection", None), "_stream", None)
    return getattr(stream, "peer", None) or str(r)

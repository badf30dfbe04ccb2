"""The Devices listener: a lean websocket server for sysclients, trio-websocket for the rest.

A simulated Devices holds one sysclient connection per phone (10,000 in the scale bench)
and sits on provd's critical path while provisioning and after a restart (issue 14). With
trio-websocket every connection had its own reader task, nursery and memory channel, every
message crossed that channel, and every ping of provd's keep-alive woke the reader task
and took its send lock; profiles showed about half of the simulator's CPU there. So this
module serves the listener itself:

- it accepts TCP (TLS with ``ssl_context``, as :func:`provd.transport.serve` does), holds
  at most ``max_connections`` and reads the upgrade request within ``handshake_timeout``:
  a plain one (provd's) is parsed here, anything else by wsproto's
  :class:`~wsproto.handshake.H11Handshake` (h11 took a fifth of the CPU of a reconnect);
- an upgrade for ``lean_path`` (the sysclients endpoint) is accepted here and served by a
  :class:`ServerWebsocket`: wsproto over the one stream, **no task, channel or lock of its
  own**: the handler's task reads, and answers pings inline while it does;
- anything else (the Devices API's AppWebsocket, a wrong path, a request wsproto does not
  take) is handed, with the bytes already read, to trio-websocket's server exactly as
  before (:class:`~provd.transport.front.ReplayStream`).

Nothing a peer does ends the listener: each connection runs inside a guard that logs what
escapes it and goes on with the next.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import errno
import hashlib
import os
import ssl
from collections.abc import Awaitable, Callable, Collection
from typing import Any

import structlog
import trio
import trio_websocket as tw
from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    Request,
    TextMessage,
)
from wsproto.frame_protocol import CloseReason
from wsproto.handshake import H11Handshake
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from ..protocol.jsonwire import MAX_MESSAGE_SIZE
from ..transport import parse_listen
from ..transport.front import ReplayStream

log = structlog.get_logger("provd.sim.wsserver")

#: Bytes asked of the stream per read (a sysclient frame is small).
RECEIVE_BYTES = 16384
#: Largest upgrade request head accepted, bytes.
MAX_HEAD = 16 << 10
#: Seconds a close handshake may take before the stream is closed anyway (as
#: trio-websocket's ``disconnect_timeout`` in :func:`provd.transport.serve`).
DISCONNECT_TIMEOUT = 2.0
#: The server's answer to an empty client ping: FIN + opcode 0xA, unmasked, no payload
#: (RFC 6455 sections 5.2 and 5.5.3; a server never masks, section 5.1).
_EMPTY_PONG = b"\x8a\x00"
#: What the stream errors of a peer that resets or vanishes look like.
_GONE = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)


class WebsocketClosed(Exception):
    """The connection is closed (by the peer, by us, or it broke)."""

    def __init__(self, code: int | None = None, reason: str = "") -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason


class ServerWebsocket:
    """One accepted websocket: binary or text messages in, binary messages out.

    The handler's task calls :meth:`get_message`; other tasks may :meth:`send_message` and
    :meth:`aclose` at the same time (sends are serialised by a flag and a lazily made
    event, not a lock). A ping is answered inside :meth:`get_message`; an empty one on a
    plain TCP connection with one ``write`` and no wsproto call (provd pings every phone
    every ``ping_interval``).
    """

    __slots__ = (
        "_decoder",
        "_done",
        "_ended",
        "_fd",
        "_max",
        "_messages",
        "_owner",
        "_parts",
        "_send_done",
        "_sending",
        "_size",
        "_stream",
        "_ws",
        "close_code",
        "closed",
        "path",
        "peer",
        "scope",
    )

    def __init__(
        self,
        stream: trio.abc.Stream,
        ws: Connection,
        path: str,
        peer: str,
        max_message_size: int = MAX_MESSAGE_SIZE,
    ) -> None:
        self._stream = stream
        self._ws = ws
        #: The request target (with any query), as trio-websocket's ``path``.
        self.path = path
        self.peer = peer
        self._fd = stream.socket.fileno() if isinstance(stream, trio.SocketStream) else -1
        #: wsproto's frame decoder, to see that no frame is half received (wsproto
        #: 1.2-1.3, as :mod:`provd.transport.sysws`); None: no fast path.
        decoder = getattr(getattr(ws, "_proto", None), "_frame_decoder", None)
        buffer = getattr(decoder, "buffer", None)
        self._decoder = (
            decoder if hasattr(decoder, "header") and hasattr(buffer, "buffer") else None
        )
        self._max = max_message_size
        self._sending = False
        self._send_done: trio.Event | None = None
        self._parts: list[bytes] = []
        self._size = 0
        #: Whole messages received, not yet returned; wsproto may already hold some (bytes
        #: that came with the upgrade request): :meth:`get_message` looks first.
        self._messages: list[bytes | str] = []
        self.closed = False
        #: The close code received or sent (None while open).
        self.close_code: int | None = None
        #: Set by the server around the handler: :meth:`aclose` from another task gives it
        #: a deadline, so a peer that never answers the close cannot hold the connection.
        self.scope: trio.CancelScope | None = None
        #: The handler's task, and whether it has returned (the stream then closed); an
        #: event (made lazily) for other tasks waiting in :meth:`aclose`.
        self._owner: trio.lowlevel.Task | None = None
        self._ended = False
        self._done: trio.Event | None = None

    # --- receiving ---------------------------------------------------------------------

    async def get_message(self) -> bytes | str:
        """The next message (``str`` for a text message); pings answered on the way.

        Raises:
            WebsocketClosed: closed by the peer or by us, broken, or a message over the cap.
        """
        messages = self._messages
        if not messages:
            await self._handle_events()  # what wsproto already holds (after the upgrade)
        while not messages:
            if self.closed:
                raise WebsocketClosed(self.close_code, "closed")
            try:
                data = await self._read()
            except _GONE:
                self.closed = True
                raise WebsocketClosed(1006, "connection broke") from None
            if not data:
                self.closed = True
                raise WebsocketClosed(1006, "end of stream")
            if (
                self._fd >= 0
                and len(data) == 6
                and data[:2] == b"\x89\x80"
                and self._between_frames()
                and not self._sending
            ):
                # An empty masked ping (provd's keep-alive), alone in this read: answer it
                # without wsproto (it keeps no state about pings) and without yielding.
                try:
                    if os.write(self._fd, _EMPTY_PONG) == len(_EMPTY_PONG):
                        continue
                except BlockingIOError:
                    pass
                except OSError:
                    self.closed = True
                    raise WebsocketClosed(1006, "connection broke") from None
                # Not written whole: let wsproto answer it the ordinary way (below).
            self._ws.receive_data(data)
            await self._handle_events()
        return messages.pop(0)

    async def _read(self) -> bytes:
        if self._fd < 0:
            return await self._stream.receive_some(RECEIVE_BYTES)
        while True:
            await trio.lowlevel.wait_readable(self._fd)
            try:
                return os.read(self._fd, RECEIVE_BYTES)
            except BlockingIOError:
                continue

    def _between_frames(self) -> bool:
        decoder = self._decoder
        return decoder is not None and decoder.header is None and not decoder.buffer.buffer

    async def _handle_events(self) -> None:
        for event in list(self._ws.events()):
            if isinstance(event, BytesMessage | TextMessage):
                self._size += len(event.data)
                if self._size > self._max:
                    await self._close_quietly(CloseReason.MESSAGE_TOO_BIG)
                    raise WebsocketClosed(1009, "message too big")
                data = event.data
                self._parts.append(bytes(data) if isinstance(data, bytearray) else data)
                if event.message_finished:
                    parts = self._parts
                    if isinstance(event, TextMessage):
                        self._messages.append("".join(parts))
                    else:
                        self._messages.append(parts[0] if len(parts) == 1 else b"".join(parts))
                    self._parts, self._size = [], 0
            elif isinstance(event, Ping):
                with contextlib.suppress(WebsocketClosed):
                    await self._send(self._ws.send(event.response()))
            elif isinstance(event, CloseConnection):
                code = event.code
                if self._ws.state is ConnectionState.REMOTE_CLOSING:
                    await self._close_quietly(None, event)
                elif self._ws.state is ConnectionState.OPEN:  # bad framing: wsproto's verdict
                    await self._close_quietly(code)
                self.closed = True
                if self.close_code is None:
                    self.close_code = code
                if not self._messages:
                    raise WebsocketClosed(code, event.reason or "")
            # Pong: nothing to do (Devices does not ping).

    # --- sending -----------------------------------------------------------------------

    async def send_message(self, data: bytes) -> None:
        """Send one binary message.

        Raises:
            WebsocketClosed: the connection is closed or broke.
        """
        if self.closed or self._ws.state is not ConnectionState.OPEN:
            raise WebsocketClosed(self.close_code, "closed")
        frame = self._ws.send(BytesMessage(data=data))
        await self._send(frame)

    async def send_messages(self, messages: list[bytes]) -> None:
        """Send binary messages in order, with one write (no other frame between them).

        Raises:
            WebsocketClosed: the connection is closed or broke.
        """
        if self.closed or self._ws.state is not ConnectionState.OPEN:
            raise WebsocketClosed(self.close_code, "closed")
        send = self._ws.send
        await self._send(b"".join([send(BytesMessage(data=data)) for data in messages]))

    async def _send(self, frame: bytes) -> None:
        while self._sending:
            if self._send_done is None:
                self._send_done = trio.Event()
            await self._send_done.wait()
        if self.closed:
            raise WebsocketClosed(self.close_code, "closed")
        if self._fd >= 0:
            # Most frames fit the socket buffer: one write, no trio checkpoint.
            try:
                written = os.write(self._fd, frame)
            except BlockingIOError:
                written = 0
            except OSError:
                self.closed = True
                raise WebsocketClosed(1006, "connection broke") from None
            if written == len(frame):
                return
            frame = frame[written:]
        self._sending = True
        try:
            await self._stream.send_all(frame)
        except _GONE:
            self.closed = True
            raise WebsocketClosed(1006, "connection broke") from None
        except trio.Cancelled:
            self.closed = True  # a frame may be half written: the stream is unusable
            raise
        finally:
            self._sending = False
            if self._send_done is not None:
                self._send_done.set()
                self._send_done = None

    # --- closing -----------------------------------------------------------------------

    async def _close_quietly(self, code: int | None, received: CloseConnection | None = None):
        """Send a close frame (or the answer to ``received``) if possible; never raises."""
        try:
            if received is not None:
                frame = self._ws.send(received.response())
            elif self._ws.state is ConnectionState.OPEN:
                frame = self._ws.send(CloseConnection(code=code or CloseReason.NORMAL_CLOSURE))
            else:
                return
            with trio.move_on_after(DISCONNECT_TIMEOUT):
                await self._send(frame)
        except (LocalProtocolError, WebsocketClosed):
            pass

    async def _close_frame(self, code: int, reason: str | None) -> None:
        """Send our close frame (at most :data:`DISCONNECT_TIMEOUT` seconds) unless the
        connection is closed already, and give the handler that long to see the answer.
        The caller shields it."""
        if not self.closed and self._ws.state is ConnectionState.OPEN:
            if self.close_code is None:
                self.close_code = code
            try:
                frame = self._ws.send(CloseConnection(code=code, reason=reason))
                with trio.move_on_after(DISCONNECT_TIMEOUT):
                    await self._send(frame)
            except (LocalProtocolError, WebsocketClosed):
                self.closed = True
        if self.scope is not None and not self.closed:
            deadline = trio.current_time() + DISCONNECT_TIMEOUT
            self.scope.deadline = min(self.scope.deadline, deadline)

    async def aclose(self, code: int = 1000, reason: str | None = None) -> None:
        """Close as trio-websocket's ``aclose`` does: a close frame, then wait (at most
        :data:`DISCONNECT_TIMEOUT` seconds) for the peer's answer; the stream is closed
        when the handler returns. From the handler's own task the answer is read here;
        from another task the handler reads it (its scope gets the deadline)."""
        if self._ended:
            return
        with trio.CancelScope(shield=True):
            await self._close_frame(code, reason)
            if self._owner is None or trio.lowlevel.current_task() is self._owner:
                await self._drain_close()
                self.closed = True
                await trio.aclose_forcefully(self._stream)
                return
        if self._done is None:
            self._done = trio.Event()
        await self._done.wait()

    async def _drain_close(self) -> None:
        """In the handler's task: read until the peer's close (or the deadline)."""
        with trio.move_on_after(DISCONNECT_TIMEOUT):
            while not self.closed:
                try:
                    await self.get_message()
                except WebsocketClosed:
                    return

    def _finished(self) -> None:
        self.closed = True
        self._ended = True
        if self._done is not None:
            self._done.set()


def _as_tw(exc: WebsocketClosed) -> tw.ConnectionClosed:
    code = exc.code
    return tw.ConnectionClosed(None if code is None else tw.CloseReason(code, exc.reason))


class AppServerWebsocket(ServerWebsocket):
    """A :class:`ServerWebsocket` that quacks like trio-websocket's ``WebSocketConnection``
    as far as :class:`provd.transport.AppWebsocket` needs (issue 14): text messages in and
    out, closes raised as ``trio_websocket.ConnectionClosed`` with the close code.

    Serves the Devices API (its reader is the handler's task, its writer another task)
    and, as :class:`~.wsclient.ClientWebsocket`, the simulator's client sessions.
    """

    __slots__ = ()

    @property
    def remote(self) -> str:
        return self.peer

    async def get_message(self) -> bytes | str:
        try:
            return await super().get_message()
        except WebsocketClosed as exc:
            raise _as_tw(exc) from None

    async def _drain_close(self) -> None:
        with contextlib.suppress(tw.ConnectionClosed):
            await super()._drain_close()

    async def send_message(self, data: bytes | str) -> None:  # type: ignore[override]
        """Send one message: text for ``str``, binary for ``bytes``.

        Raises:
            trio_websocket.ConnectionClosed: the connection is closed or broke.
        """
        try:
            if isinstance(data, bytes):
                await super().send_message(data)
                return
            if self.closed or self._ws.state is not ConnectionState.OPEN:
                raise WebsocketClosed(self.close_code, "closed")
            await self._send(self._ws.send(TextMessage(data=data)))
        except WebsocketClosed as exc:
            raise _as_tw(exc) from None

    async def aclose(self, code: int = 1000, reason: str | None = None) -> None:
        """As :meth:`ServerWebsocket.aclose`; but another task of the handler's own (the
        Devices API's writer, inside the handler's nursery) must not wait for the handler
        to end: it sends the close frame, gives the handler its deadline and returns."""
        owner = self._owner
        if owner is None or self._ended or trio.lowlevel.current_task() is owner:
            await super().aclose(code, reason)
            return
        with trio.CancelScope(shield=True):
            await self._close_frame(code, reason)


#: RFC 6455 section 1.3: appended to Sec-WebSocket-Key before hashing.
_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


async def _read_head(stream: trio.abc.Stream) -> bytes:
    """What the client sent up to the end of its request head (or EOF, or more than
    :data:`MAX_HEAD` bytes); anything after the head is included."""
    raw = b""
    while b"\r\n\r\n" not in raw and len(raw) <= MAX_HEAD:
        data = await stream.receive_some(RECEIVE_BYTES)
        if not data:
            break
        raw += data
    return raw


def _plain_upgrade(raw: bytes) -> tuple[str, bytes, bytes] | None:
    """``(target, Sec-WebSocket-Accept value, bytes after the head)`` of a plain websocket
    upgrade request (RFC 6455 section 4.2.1), parsed without h11; None for anything less
    plain (duplicate or folded headers, extensions, ...): wsproto decides those."""
    head, sep, rest = raw.partition(b"\r\n\r\n")
    if not sep:
        return None
    lines = head.split(b"\r\n")
    request = lines[0].split(b" ")
    if len(request) != 3 or request[0] != b"GET" or request[2] != b"HTTP/1.1":
        return None
    headers: dict[bytes, bytes] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not name or name.strip() != name or name in headers:
            return None
        headers[name.lower()] = value.strip(b" \t")
    if len(headers) != len(lines) - 1 or b"sec-websocket-extensions" in headers:
        return None
    tokens = [t.strip().lower() for t in headers.get(b"connection", b"").split(b",")]
    key = headers.get(b"sec-websocket-key", b"")
    try:
        plain = (
            b"host" in headers
            and headers.get(b"upgrade", b"").lower() == b"websocket"
            and b"upgrade" in tokens
            and headers.get(b"sec-websocket-version") == b"13"
            and len(base64.b64decode(key, validate=True)) == 16
        )
        target = request[1].decode("ascii")
    except (ValueError, binascii.Error):
        return None
    if not plain or not target.startswith("/"):
        return None
    accept = base64.b64encode(hashlib.sha1(key + _WS_GUID).digest())  # noqa: S324 (RFC 6455)
    return target, accept, rest


def _accepted(accept: bytes) -> bytes:
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
    )


def _slow_upgrade(raw: bytes) -> tuple[H11Handshake, Request] | None:
    """wsproto's verdict on a request :func:`_plain_upgrade` left alone."""
    handshake = H11Handshake(ConnectionType.SERVER)
    try:
        handshake.receive_data(raw)
        for event in handshake.events():
            if isinstance(event, Request):
                return handshake, event
    except RemoteProtocolError:
        pass
    return None


def _peer(stream: trio.abc.Stream) -> str:
    inner = getattr(stream, "transport_stream", stream)
    try:
        host, port = inner.socket.getpeername()[:2]
    except (AttributeError, OSError):
        return "?"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class _Listener(trio.abc.Listener[trio.SocketStream]):
    """A TCP listener that skips accept errors concerning one connection only."""

    _IGNORABLE = {errno.ECONNABORTED, errno.EPERM, errno.EPROTO}

    def __init__(self, inner: trio.SocketListener) -> None:
        self.inner = inner

    async def accept(self) -> trio.SocketStream:
        while True:
            try:
                sock, _ = await self.inner.socket.accept()
            except OSError as exc:
                if exc.errno in (errno.EBADF, errno.ENOTSOCK):
                    raise trio.ClosedResourceError from None
                if exc.errno not in self._IGNORABLE:
                    raise
            else:
                return trio.SocketStream(sock)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def serve(
    lean: Callable[[ServerWebsocket], Awaitable[None]],
    other: Callable[[tw.WebSocketConnection], Awaitable[None]],
    listen: str,
    *,
    lean_path: str,
    app_paths: Collection[str] = (),
    ssl_context: ssl.SSLContext | None = None,
    max_message_size: int = MAX_MESSAGE_SIZE,
    max_connections: int = 1024,
    handshake_timeout: float = 10.0,
    task_status: trio.TaskStatus[tw.WebSocketServer] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve websockets on ``listen``: upgrades for ``lean_path`` (query ignored) go to
    ``lean`` with a :class:`ServerWebsocket`, all others to ``other`` through
    trio-websocket. Reports the trio-websocket server (``.port``) through ``nursery.start``.

    A plain upgrade for one of ``app_paths`` (query ignored) goes to ``other`` too, but
    served by an :class:`AppServerWebsocket` instead of trio-websocket (issue 14: the
    Devices API session of the Users service, one request per phone).
    """
    host, port = parse_listen(listen)
    tcp = await trio.open_tcp_listeners(port, host=host)
    listeners: list[trio.abc.Listener[Any]] = [_Listener(t) for t in tcp]
    described: list[trio.abc.Listener[Any]] = list(tcp)
    if ssl_context is not None:
        listeners = [trio.SSLListener(t, ssl_context, https_compatible=True) for t in listeners]
        described = [trio.SSLListener(t, ssl_context, https_compatible=True) for t in tcp]

    async def on_request(request: tw.WebSocketRequest) -> None:
        try:
            ws = await request.accept()
        except (tw.ConnectionClosed, *_GONE):
            return
        try:
            await other(ws)
        except Exception:
            log.exception("connection.crashed")

    server = tw.WebSocketServer(
        on_request,
        described,
        max_message_size=max_message_size,
        connect_timeout=handshake_timeout,
        disconnect_timeout=DISCONNECT_TIMEOUT,
    )
    active = 0
    refused = 0
    refused_logged_at: float | None = None

    async def connection(stream: trio.abc.Stream) -> None:
        nonlocal active, refused, refused_logged_at
        if active >= max_connections:
            refused += 1  # one warning a minute, not one per refusal (as the App listener)
            now = trio.current_time()
            if refused_logged_at is None or now - refused_logged_at >= 60.0:
                log.warning(
                    "devices.connection_limit",
                    listen=listen,
                    limit=max_connections,
                    refused=refused,
                )
                refused, refused_logged_at = 0, now
            await trio.aclose_forcefully(stream)
            return
        active += 1
        peer = _peer(stream)
        try:
            raw = b""
            with trio.move_on_after(handshake_timeout):
                if isinstance(stream, trio.SSLStream):
                    await stream.do_handshake()
                raw = await _read_head(stream)
            if not raw:
                await trio.aclose_forcefully(stream)
                return
            plain = _plain_upgrade(raw)
            if plain is not None:
                target, accept, rest = plain
                if target.split("?", 1)[0] == lean_path:
                    await stream.send_all(_accepted(accept))
                    wsconn = Connection(ConnectionType.SERVER, trailing_data=rest)
                    ws = ServerWebsocket(stream, wsconn, target, peer, max_message_size)
                    await _run_lean(lean, ws)
                    return
                if target.split("?", 1)[0] in app_paths:
                    await stream.send_all(_accepted(accept))
                    wsconn = Connection(ConnectionType.SERVER, trailing_data=rest)
                    app = AppServerWebsocket(stream, wsconn, target, peer, max_message_size)
                    await _run_lean(other, app)  # type: ignore[arg-type]
                    return
                slow = None
            else:
                slow = _slow_upgrade(raw)
            if slow is None or slow[1].target.split("?", 1)[0] != lean_path:
                await server._handle_connection(ReplayStream(stream, raw, peer))
                return
            handshake, request = slow
            await stream.send_all(handshake.send(AcceptConnection()))
            assert handshake.connection is not None
            ws = ServerWebsocket(
                stream, handshake.connection, request.target, peer, max_message_size
            )
            await _run_lean(lean, ws)
        except Exception as exc:  # a peer must never end the listener
            leaves = exc.exceptions if isinstance(exc, BaseExceptionGroup) else [exc]
            if all(isinstance(e, (*_GONE, tw.ConnectionClosed)) for e in leaves):
                log.info("connection.aborted", peer=peer, error=type(exc).__name__)
            else:
                log.error("connection.failed", peer=peer, exc_info=exc)
            await trio.aclose_forcefully(stream)
        finally:
            active -= 1

    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, connection, listeners)
        task_status.started(server)


async def _run_lean(handler: Callable[[ServerWebsocket], Awaitable[None]], ws: ServerWebsocket):
    ws.scope = trio.CancelScope()
    ws._owner = trio.lowlevel.current_task()
    try:
        with ws.scope:
            await handler(ws)
            if not ws.closed:  # the handler returned with the connection open: close it
                await ws.aclose(1000)
    finally:
        with trio.CancelScope(shield=True):
            await trio.aclose_forcefully(ws._stream)
        ws._finished()

"""A lean client websocket for sysclient connections: wsproto over one trio stream.

A phone's sysclient connection lives for days and is idle nearly all the time, and provd
holds one per phone (tens of thousands). trio-websocket gives every connection its own
reader task, nursery, memory channel and close machinery (about 50 KB per phone with the
actor's own tasks, issue 14); this class holds only the stream, the wsproto
:class:`~wsproto.connection.Connection` and a few fields, and has **no task of its own**:
the phone actor's task receives (and answers Devices' pings while doing so), and the shared
keep-alive (:mod:`provd.actors.keepalive`) sends pings from its one task.

Sends are serialised without a lock: the keep-alive never waits (it skips a connection
whose owner is sending, see :meth:`ping_nowait`), and the owner waits only in the rare case a
ping is on the wire (a lazily created event).

wsproto does the protocol (RFC 6455 framing, masking, the HTTP/1.1 upgrade through h11);
errors are translated here: a closed or broken connection is :class:`ConnectionLost`,
an upgrade Devices refused is :class:`WebsocketRejected`, a text frame or an oversized
message is :class:`~provd.protocol.ProtocolError`.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import select
import socket
import ssl
import urllib.parse

import outcome
import structlog
import trio
from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import (
    BytesMessage,
    CloseConnection,
    Ping,
    Pong,
    TextMessage,
)
from wsproto.frame_protocol import CloseReason
from wsproto.utilities import (
    LocalProtocolError,
    generate_accept_token,
    generate_nonce,
)

from ..protocol import ProtocolError
from ..protocol.jsonwire import MAX_MESSAGE_SIZE
from .appws import ConnectionLost

#: Bytes asked of the stream per receive (a sysclient frame is small; a config set a few KB).
RECEIVE_BYTES = 16384
#: A client ping without payload: FIN + opcode 0x9, MASK + length 0, then the 4-byte
#: masking key (RFC 6455 section 5.2; clients mask every frame, section 5.3).
_PING_HEAD = b"\x89\x80"
#: Its size on the wire: the two header bytes and the key.
PING_SIZE = 6
#: The server's answer to it: FIN + opcode 0xA, no mask, length 0.
_PONG = b"\x8a\x00"
#: Ready sockets the shared poller takes from its epoll per round.
POLL_BATCH = 1024
#: Seconds the shared poller waits after a round that found only pongs, so that the rest
#: of a keep-alive batch's pongs is taken in one round (issue 14: idle CPU; one wake-up
#: per pong cost ~35 us of provd CPU against a server answering at ~10,000 pongs/s).
PONG_COALESCE = 0.002

log = structlog.get_logger("provd.sysws")


class Poller:
    """One task waits for every idle plain-TCP sysclient socket (issue 14: idle CPU).

    A phone's task waiting in :meth:`SysclientSocket.get_message` parks here instead of
    on its own socket: the socket joins a private level-triggered epoll whose one fd the
    poller task waits on. When sockets turn readable the poller reads them all in one
    wake-up; an empty pong between frames (the answer to the keep-alive's ping, ~667 a
    second for 10,000 phones at 15 s) is noted on the socket and the phone's task is not
    woken at all; anything else (a message, the end of the stream, an error) is handed to
    the parked task, which resumes with it. Waking the task per pong cost ~40 us (trio's
    epoll re-registration, the task switch, the read); here a pong is one ``recv`` in a
    batch. Linux (``select.epoll``) only; elsewhere each task waits on its own socket.
    """

    def __init__(self) -> None:
        self._ep = select.epoll()
        #: fd -> (socket, its parked task).
        self._parked: dict[int, tuple[SysclientSocket, trio.lowlevel.Task]] = {}
        #: Pongs taken without waking their phone's task, and wake-ups (tests, bench).
        self.pongs = 0
        self.rounds = 0

    async def wait(self, ws: SysclientSocket) -> bytes | None:
        """Park until ``ws`` has bytes other than a pong: as :meth:`SysclientSocket._read`."""
        fd = ws._fd
        task = trio.lowlevel.current_task()
        self._ep.register(fd, select.EPOLLIN)
        self._parked[fd] = (ws, task)

        def abort(_raise_cancel):
            self._forget(fd)
            return trio.lowlevel.Abort.SUCCEEDED

        return await trio.lowlevel.wait_task_rescheduled(abort)

    def _forget(self, fd: int) -> None:
        if self._parked.pop(fd, None) is not None:
            with contextlib.suppress(OSError):
                self._ep.unregister(fd)

    async def run(self) -> None:
        try:
            while True:
                await trio.lowlevel.wait_readable(self._ep.fileno())
                self.rounds += 1
                if self._round():
                    # Only pongs: more of the keep-alive batch's are on their way (a
                    # server answers them one by one); take them in one round a moment
                    # later instead of one wake-up each. A message meanwhile waits at
                    # most this long.
                    await trio.sleep(PONG_COALESCE)
        except Exception:  # a bug here must not take the daemon down with a system task
            log.exception("sysws.poller_crashed")
            for fd, (_, task) in list(self._parked.items()):
                self._forget(fd)
                trio.lowlevel.reschedule(task, outcome.Error(OSError("sysws poller ended")))
        finally:
            if _POLLER.get(None) is self:
                _POLLER.set(None)
            self._ep.close()

    def _round(self) -> bool:
        """Read the ready sockets; True if all it read were pongs (no task woken)."""
        parked = self._parked
        pongs = woken = 0
        for fd, _mask in self._ep.poll(0, POLL_BATCH):
            entry = parked.get(fd)
            if entry is None:  # not ours any more: never spin on it
                with contextlib.suppress(OSError):
                    self._ep.unregister(fd)
                continue
            ws, task = entry
            try:
                data = os.read(fd, RECEIVE_BYTES)
            except BlockingIOError:
                continue
            except OSError as exc:
                self._forget(fd)
                trio.lowlevel.reschedule(task, outcome.Error(exc))
                woken += 1
                continue
            if data == _PONG and ws._between_frames():
                ws.ping_sent = None
                pongs += 1
                continue
            self._forget(fd)
            trio.lowlevel.reschedule(task, outcome.Value(data))
            woken += 1
        self.pongs += pongs
        return pongs > 0 and not woken


_POLLER: trio.lowlevel.RunVar = trio.lowlevel.RunVar("provd.sysws.poller", default=None)


def poller() -> Poller | None:
    """This trio run's :class:`Poller` (started on first use), None without epoll."""
    if not hasattr(select, "epoll"):
        return None
    current = _POLLER.get()
    if current is None:
        current = Poller()
        _POLLER.set(current)
        trio.lowlevel.spawn_system_task(current.run, name="provd.sysws.poller")
    return current


def ping_frames(count: int) -> bytes:
    """``count`` empty client pings back to back (``PING_SIZE`` bytes each), every one
    with its own masking key: a client masks every frame with a fresh key that servers
    cannot predict, from a strong source of entropy (RFC 6455 sections 5.3 and 10.3).
    The keys of a whole keep-alive batch come from one ``os.urandom`` call (issue 14:
    one ``getrandom`` per ping was ~10 % of a ping's cost)."""
    frames = bytearray(PING_SIZE * count)
    frames[0::PING_SIZE] = _PING_HEAD[:1] * count
    frames[1::PING_SIZE] = _PING_HEAD[1:] * count
    keys = os.urandom(4 * count)
    for k in range(4):
        frames[2 + k :: PING_SIZE] = keys[k::4]
    return bytes(frames)


class WebsocketRejected(Exception):
    """The server answered the upgrade with something other than 101 (or garbage)."""


def _split(url: str) -> tuple[bool, str, int, str, str]:
    """(tls, host, port, Host header, target) of a ``ws://``/``wss://`` URL.

    Raises:
        ValueError: not a websocket URL, or no host.
    """
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("ws", "wss"):
        raise ValueError(f"not a websocket URL (scheme {parts.scheme!r})")
    host = parts.hostname
    if not host:
        raise ValueError("no host")
    tls = scheme == "wss"
    port = parts.port or (443 if tls else 80)  # .port raises ValueError when invalid
    shown = f"[{host}]" if ":" in host else host
    header = shown if port == (443 if tls else 80) else f"{shown}:{port}"
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return tls, host, port, header, target


async def _open_tcp(host: str, port: int) -> trio.SocketStream:
    """A TCP connection to ``host``: an address literal (the Devices URL the PBX announces
    names its address, mostly) is connected to directly; a name goes through trio's
    resolver and happy eyeballs. (issue 14: trio's general path, a nursery with an attempt
    task and a numeric ``getaddrinfo``, cost as much as the connect itself per phone.)

    Raises:
        OSError: the connection failed.
    """
    try:
        family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    except ValueError:
        return await trio.open_tcp_stream(host, port)
    sock = trio.socket.socket(family, socket.SOCK_STREAM)
    try:
        await sock.connect((host, port))
    except BaseException:
        sock.close()
        raise
    return trio.SocketStream(sock)


#: Longest upgrade answer read (status line and headers).
MAX_ANSWER_HEAD = 16384


def _upgrade_request(header: str, target: str, key: bytes) -> bytes:
    """The opening handshake (RFC 6455 section 4.1), as wsproto's client writes it, with
    no subprotocol and no extension offered."""
    return (
        b"GET " + target.encode("ascii") + b" HTTP/1.1\r\n"
        b"Host: " + header.encode("idna") + b"\r\n"
        b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )


async def _read_answer(stream: trio.abc.Stream) -> tuple[bytes, bytes]:
    """The upgrade answer's head (up to the blank line) and the bytes after it (frames
    Devices sent right behind it)."""
    data = b""
    while True:
        end = data.find(b"\r\n\r\n")
        if end >= 0:
            return data[:end], data[end + 4 :]
        if len(data) > MAX_ANSWER_HEAD:
            raise WebsocketRejected(f"bad upgrade answer: head over {MAX_ANSWER_HEAD} bytes")
        chunk = await stream.receive_some(RECEIVE_BYTES)
        if not chunk:
            raise WebsocketRejected("connection closed during the upgrade")
        data += chunk


def _check_answer(head: bytes, key: bytes) -> None:
    """Accept a ``101`` that completes the handshake (RFC 6455 section 4.1, the client's
    checks, as wsproto makes them): ``Upgrade: websocket``, ``Connection`` naming
    ``upgrade``, the accept token for ``key``, no extension or subprotocol (none was
    offered). Other headers are ignored. (issue 14: h11 and wsproto's handshake object
    were a tenth of each new sysclient connection's CPU, one per phone provisioned and
    per phone back after a restart; the frames stay wsproto's.)

    Raises:
        WebsocketRejected: another status (its code), or a 101 that fails a check.
    """
    status, _, fields = head.partition(b"\r\n")
    version, _, rest = status.partition(b" ")
    code = rest[:3]
    if not version.startswith(b"HTTP/1.") or not code.isdigit() or rest[3:4] not in (b"", b" "):
        raise WebsocketRejected(f"bad upgrade answer: status line {status[:80]!r}")
    if code != b"101":
        raise WebsocketRejected(f"upgrade refused with HTTP {int(code)}")
    headers: dict[bytes, list[bytes]] = {}
    for line in fields.split(b"\r\n") if fields else ():
        name, colon, value = line.partition(b":")
        if not colon or not name or name != name.strip():
            raise WebsocketRejected(f"bad upgrade answer: header line {line[:80]!r}")
        headers.setdefault(name.lower(), []).append(value.strip(b" \t"))
    connection = b",".join(headers.get(b"connection", []))
    if b"upgrade" not in (token.strip().lower() for token in connection.split(b",")):
        raise WebsocketRejected("bad upgrade answer: missing header 'Connection: Upgrade'")
    if [value.lower() for value in headers.get(b"upgrade", [])] != [b"websocket"]:
        raise WebsocketRejected("bad upgrade answer: missing header 'Upgrade: websocket'")
    if headers.get(b"sec-websocket-accept") != [generate_accept_token(key)]:
        raise WebsocketRejected("bad upgrade answer: bad accept token")
    for offered_none in (b"sec-websocket-extensions", b"sec-websocket-protocol"):
        if headers.get(offered_none):
            raise WebsocketRejected(f"bad upgrade answer: {offered_none.decode()} not offered")


async def open_sysclient(
    url: str,
    *,
    ssl_context: ssl.SSLContext | None = None,
    max_message_size: int = MAX_MESSAGE_SIZE,
) -> SysclientSocket:
    """Connect to ``url`` (TCP, TLS for ``wss://``, the websocket upgrade) and return the
    open connection. The caller bounds the time (a cancel scope around the call).

    Raises:
        ValueError: an invalid URL.
        OSError: the TCP connection failed.
        trio.BrokenResourceError: TLS failed (certificate, handshake) or the peer left.
        WebsocketRejected: the server refused the upgrade.
    """
    tls, host, port, header, target = _split(url)
    tcp = await _open_tcp(host, port)
    stream: trio.abc.Stream = tcp
    try:
        if tls:
            stream = trio.SSLStream(
                tcp, ssl_context or ssl.create_default_context(), server_hostname=host
            )
            await stream.do_handshake()
        key = generate_nonce()
        await stream.send_all(_upgrade_request(header, target, key))
        head, rest = await _read_answer(stream)
        _check_answer(head, key)
        ws = Connection(ConnectionType.CLIENT, extensions=[], trailing_data=rest)
        return SysclientSocket(stream, ws, max_message_size)
    except BaseException:
        await trio.aclose_forcefully(stream)
        raise


class SysclientSocket:
    """One open client websocket; binary messages in and out, pings answered on receive."""

    __slots__ = (
        "_decoder",
        "_fd",
        "_fresh",
        "_max",
        "_messages",
        "_parts",
        "_send_done",
        "_sending",
        "_size",
        "_stream",
        "_ws",
        "closed",
        "lost",
        "ping_due",
        "ping_sent",
        "scope",
        "watched",
    )

    def __init__(self, stream: trio.abc.Stream, ws: Connection, max_message_size: int) -> None:
        self._stream = stream
        self._ws = ws
        #: A plain TCP connection's socket, read and written directly (no TLS): -1 for TLS.
        self._fd = stream.socket.fileno() if isinstance(stream, trio.SocketStream) else -1
        #: wsproto may hold frames that came with the upgrade answer: handle them first.
        self._fresh = True
        #: wsproto's frame decoder, to see that no frame is half received (its ``header``
        #: and ``buffer``; wsproto 1.2-1.3): then a read of exactly an empty pong is that
        #: pong, noted without wsproto. Parsing it took ~40 us of the ~70 us per ping and
        #: pong (issue 14: idle CPU). None (no shortcut) if wsproto changes.
        decoder = getattr(getattr(ws, "_proto", None), "_frame_decoder", None)
        buffer = getattr(decoder, "buffer", None)
        usable = hasattr(decoder, "header") and hasattr(buffer, "buffer")
        self._decoder = decoder if usable else None
        self._max = max_message_size
        self._sending = False
        self._send_done: trio.Event | None = None
        #: Fragments of the message being received, and their size.
        self._parts: list[bytes] = []
        self._size = 0
        #: Whole messages received but not yet returned (several can come in one read).
        self._messages: list[bytes] = []
        self.closed = False
        #: The keep-alive's bookkeeping: watched by it; when the unanswered ping went out
        #: (None: no ping outstanding), when the next one is due.
        self.watched = False
        self.ping_sent: float | None = None
        self.ping_due = 0.0
        #: The owner's session scope, cancelled by :meth:`fail` (keep-alive timeout).
        self.scope: trio.CancelScope | None = None
        #: Why the connection was ended from outside (set with the scope's cancellation).
        self.lost = ""

    # --- sending ---------------------------------------------------------------------

    async def send_message(self, data: bytes) -> None:
        """Send one binary message.

        Raises:
            ConnectionLost: the connection is closed or broke.
        """
        while self._sending:  # a keep-alive ping is on the wire: wait for it
            if self._send_done is None:
                self._send_done = trio.Event()
            await self._send_done.wait()
        await self._send(self._ws.send(BytesMessage(data=data)))

    def ping_nowait(self, now: float, frame: bytes | None = None) -> bytes | None:
        """Write a ping without waiting, if the connection allows it. Returns None when
        the owner is sending (try again soon), ``b""`` when the ping is written, else the
        bytes of it still to send with :meth:`send_rest` (TLS, or a full socket buffer).
        ``frame`` is one of :func:`ping_frames` (the keep-alive builds a batch's at
        once); without it one is built here.

        The keep-alive's hot path (issue 14: idle CPU): no wsproto call, no trio
        checkpoint; the frame is built outside wsproto (which keeps no state about pings)
        and written with one ``write`` on the non-blocking socket.

        Raises:
            ConnectionLost: the connection is closed or broke.
        """
        if self._sending:
            return None
        if self.closed or self._ws.state is not ConnectionState.OPEN:
            return b""  # closing: its owner ends the session; nothing to ping
        if frame is None:
            frame = ping_frames(1)
        self.ping_sent = now
        if self._fd < 0:
            return frame
        try:
            written = os.write(self._fd, frame)
        except BlockingIOError:
            return frame
        except OSError:
            self.closed = True
            raise ConnectionLost("connection to Devices broke while sending") from None
        return b"" if written == PING_SIZE else frame[written:]

    async def send_rest(self, data: bytes) -> None:
        """Send what :meth:`ping_nowait` could not write (the owner is not sending: that
        call just checked, and nothing ran since)."""
        await self._send(data)

    async def _send(self, frame: bytes) -> None:
        if self.closed or self._ws.state is not ConnectionState.OPEN:
            raise ConnectionLost("connection to Devices already closed")
        self._sending = True
        try:
            await self._stream.send_all(frame)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self.closed = True
            raise ConnectionLost("connection to Devices broke while sending") from None
        except trio.Cancelled:
            self.closed = True  # a frame may be half written: the stream is unusable
            raise
        finally:
            self._sending = False
            if self._send_done is not None:
                self._send_done.set()
                self._send_done = None

    # --- receiving -------------------------------------------------------------------

    async def get_message(self) -> bytes:
        """The next binary message; pings are answered and pongs noted on the way.

        Raises:
            ConnectionLost: Devices closed the connection, or it broke.
            ProtocolError: a text message, a message over the size cap, bad framing.
        """
        while not self._messages:
            if self._fresh:
                self._fresh = False
                await self._handle_events()
                continue
            try:
                data = await self._read()
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                self.closed = True
                raise ConnectionLost("connection to Devices broke") from None
            if data is None:
                continue
            if data == _PONG and self._between_frames():
                self.ping_sent = None
                continue
            if not data:
                self.closed = True
                raise ConnectionLost("closed by Devices (1006)")
            self._ws.receive_data(data)
            await self._handle_events()
        return self._messages.pop(0)

    def take_ready(self) -> list[bytes]:
        """The whole messages already received and not yet returned, without waiting:
        the rest of a burst Devices sent in one segment, for the caller to handle
        together."""
        messages, self._messages = self._messages, []
        return messages

    async def _read(self) -> bytes | None:
        """The next bytes from Devices (``b""``: end of stream, None: nothing after all).

        A plain socket is waited on and read directly: one wake-up and one ``recv`` per
        frame (a pong, mostly), where the stream's ``receive_some`` first tries a ``recv``
        that fails, then waits, reads and yields once more.
        """
        if self._fd < 0:
            return await self._stream.receive_some(RECEIVE_BYTES)
        shared = poller()
        if shared is not None:
            return await shared.wait(self)
        await trio.lowlevel.wait_readable(self._fd)
        try:
            return os.read(self._fd, RECEIVE_BYTES)
        except BlockingIOError:
            return None

    def _between_frames(self) -> bool:
        """wsproto holds no part of a frame (so the next bytes begin one)."""
        decoder = self._decoder
        return decoder is not None and decoder.header is None and not decoder.buffer.buffer

    async def _handle_events(self) -> None:
        for event in self._ws.events():
            if isinstance(event, BytesMessage):
                self._size += len(event.data)
                if self._size > self._max:
                    await self._close_quietly(1009)
                    raise ProtocolError(f"message from Devices over {self._max} bytes")
                self._parts.append(event.data)
                if event.message_finished:
                    self._messages.append(b"".join(self._parts))
                    self._parts, self._size = [], 0
            elif isinstance(event, Pong):
                self.ping_sent = None
            elif isinstance(event, Ping):
                await self._send(self._ws.send(event.response()))
            elif isinstance(event, CloseConnection):
                code = event.code
                await self._close_quietly(None, event)
                raise ConnectionLost(f"closed by Devices ({code})")
            elif isinstance(event, TextMessage):
                await self._close_quietly(1003)
                raise ProtocolError("text frame on the sysclient connection")

    # --- ending ----------------------------------------------------------------------

    def fail(self, reason: str) -> None:
        """End the owner's session from outside (the keep-alive): ``reason`` is what the
        owner reports."""
        if not self.lost:
            self.lost = reason
        if self.scope is not None:
            self.scope.cancel()

    async def _close_quietly(self, code: int | None, received: CloseConnection | None = None):
        """Send a close frame (or the answer to ``received``) if possible; never raises."""
        try:
            if self._ws.state in (ConnectionState.OPEN, ConnectionState.REMOTE_CLOSING):
                if received is not None:
                    frame = self._ws.send(received.response())
                else:
                    frame = self._ws.send(CloseConnection(code=code or CloseReason.NORMAL_CLOSURE))
                if not self._sending:
                    self._sending = True  # the keep-alive keeps off (ping_nowait)
                    try:
                        with trio.move_on_after(1.0):
                            await self._stream.send_all(frame)
                    finally:
                        self._sending = False
        except (LocalProtocolError, trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # wsproto refusing a close in an odd state, or a broken stream: nothing to do
        self.closed = True

    async def aclose(self, code: int = 1000) -> None:
        """Close (a close frame when the connection is still open, then the stream)."""
        with trio.CancelScope(shield=True):
            if not self.closed:
                await self._close_quietly(code)
            self.closed = True
            await trio.aclose_forcefully(self._stream)

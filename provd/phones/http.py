"""The phones' HTTP/1.1 server: a lean loop on trio, no ASGI.

Why not hypercorn: in the boot storm (issue 14) about two thirds of the CPU went to
hypercorn's ASGI plumbing (a task group, events and an h11 state machine per request)
around a reply that is, for a phone fetching its file again, a dict lookup. Here one task
per connection reads bytes straight off the non-blocking socket, feeds them to
``httptools`` (the llhttp parser, a C library), hands each complete request head to the
handler and writes the answers of pipelined requests in order, in one send.

The handler (:class:`provd.phones.server.PhonesApp`, or the access log around it) answers
a :class:`Request` with a :class:`Response`: status line, headers and body pre-encoded, so
a response the handler keeps can be sent again with only the ``Date`` line spliced in.

Limits, against slow or hostile clients (``slowloris``, junk):

- a request head (request line and headers) is at most :data:`MAX_HEAD` bytes and
  :data:`MAX_HEADERS` fields; beyond that 431 and the connection is closed;
- it must arrive within ``header_timeout`` seconds of its first byte (and the first one
  within ``header_timeout`` of the connection); then the connection is closed;
- an idle keep-alive connection is closed after ``keepalive_timeout``;
- a client must take a response within ``send_timeout``;
- provd's requests have no body: a request that announces one is answered and the
  connection closed after it, the body is never read; anything that is not HTTP gets 400
  and is closed.

Timeouts are enforced by one reaper task per server that looks at every connection's
deadline a few times per timeout, so a request costs no timer of its own.

With TLS each connection is a :class:`trio.SSLStream` (the handshake counts against
``header_timeout``).
"""

from __future__ import annotations

import contextlib
import email.utils
import errno
import http
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol
from urllib.parse import unquote

import attrs
import httptools
import structlog
import trio

from provd.phones import firmware

log = structlog.get_logger("provd.phones")

#: Largest request head accepted, bytes (hypercorn/h11 used 16 KiB too).
MAX_HEAD = 16 << 10
#: Most header fields in one request.
MAX_HEADERS = 100
#: Bytes read from the socket at once.
RECEIVE_SIZE = 64 << 10

GET = b"GET"
HEAD = b"HEAD"


@attrs.frozen
class Limits:
    """Timeouts of the phones server, seconds (see the module doc)."""

    header_timeout: float = 10.0
    keepalive_timeout: float = 5.0
    send_timeout: float = 10.0


class Request:
    """One request head as it arrived.

    Attributes:
        method: as sent (``b"GET"``).
        target: the request target as sent (path and query, percent-encoded).
        headers: lower-case name to value (trimmed); the first of repeated fields, except
            ``x-forwarded-for``, whose values are joined with ``,`` in order.
        peer: the connection's client address (no port).
        keep_alive: whether the connection may carry another request after this one.
        path: the decoded path, when the caller has it already (tests); else from target.
    """

    __slots__ = ("_path", "headers", "keep_alive", "method", "peer", "target")

    def __init__(
        self,
        method: bytes,
        target: bytes,
        headers: dict[bytes, bytes],
        peer: str,
        keep_alive: bool = True,
        *,
        path: str | None = None,
    ) -> None:
        self.method = method
        self.target = target
        self.headers = headers
        self.peer = peer
        self.keep_alive = keep_alive
        self._path = path  # None: decoded from target when first asked for

    @property
    def path(self) -> str:
        """The path, percent-decoded, without the query (as ASGI servers decode it)."""
        if self._path is None:
            raw = self.target.partition(b"?")[0]
            self._path = unquote(raw.decode("latin-1"))
        return self._path

    def header(self, name: bytes) -> str:
        """A header's value (``name`` in lower case), ``""`` when absent."""
        value = self.headers.get(name)
        return value.decode("latin-1") if value is not None else ""


class Response:
    """A response, its head pre-encoded; immutable once built, so it may be sent again.

    Args:
        status: the status code.
        headers: ``(name, value)`` pairs, lower-case names; ``content-length`` is added.
        body: the body, or an open firmware file to stream.
        log_fields: ``(vendor, mac, file)`` for the access log when the handler knows them.
    """

    __slots__ = (
        "_date",
        "_encoded",
        "_rest_head",
        "_status_line",
        "body",
        "headers",
        "length",
        "log_fields",
        "status",
        "streamed",
    )

    def __init__(
        self,
        status: int,
        headers: list[tuple[bytes, bytes]] | tuple[tuple[bytes, bytes], ...],
        body: bytes | firmware.FirmwareFile = b"",
        log_fields: tuple[str, str, str] | None = None,
    ) -> None:
        self.status = status
        self.body = body
        self.length = body.size if isinstance(body, firmware.FirmwareFile) else len(body)
        self.log_fields = log_fields
        self.headers = [*headers, (b"content-length", b"%d" % self.length)]
        self._status_line = b"HTTP/1.1 %d %s\r\n" % (status, _phrase(status))
        fields = b"".join(name + b": " + value + b"\r\n" for name, value in self.headers)
        self._rest_head = fields + b"\r\n"
        #: Whether the body is a file streamed after the head.
        self.streamed = streamed = isinstance(body, firmware.FirmwareFile)
        rest = self._rest_head if streamed else self._rest_head + body  # type: ignore[operator]
        # The whole keep-alive answer; only its Date line changes (once a second, in place).
        self._date = date = date_line()
        self._encoded = b"".join((self._status_line, date, rest))

    def encode(self, *, head_only: bool = False, close: bool = False) -> bytes:
        """The bytes to send: status line, ``Date``, headers and (unless ``head_only`` or
        streamed) the body; ``close`` adds ``Connection: close``.

        The usual answer (whole, keep-alive) is kept until the ``Date`` line changes: a
        phone server answers the same bytes many times a second in a boot storm."""
        date = date_line()
        if date is not self._date:
            start = len(self._status_line)
            encoded = self._encoded
            self._encoded = b"".join((self._status_line, date, encoded[start + len(self._date) :]))
            self._date = date
        if head_only:
            rest = self._rest_head
        elif close:
            rest = self._encoded[len(self._status_line) + len(date) :]
        else:
            return self._encoded
        return b"".join(
            (self._status_line, date, _CLOSE, rest) if close else (self._status_line, date, rest)
        )


_CLOSE = b"connection: close\r\n"


def _phrase(status: int) -> bytes:
    try:
        return http.HTTPStatus(status).phrase.encode()
    except ValueError:
        return b"Unknown"


_date = [0, b""]


def date_line() -> bytes:
    """``date: <now>`` as RFC 9110 section 6.6.1 wants it, built once per second."""
    now = int(time.time())
    if now != _date[0]:
        _date[0] = now
        _date[1] = b"date: " + email.utils.formatdate(now, usegmt=True).encode() + b"\r\n"
    return _date[1]  # type: ignore[return-value]


def plain(status: int, text: bytes, headers: tuple[tuple[bytes, bytes], ...] = ()) -> Response:
    """A short ``text/plain`` answer (errors)."""
    return Response(
        status,
        [
            *headers,
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"cache-control", b"no-store"),
        ],
        text,
    )


class Handler(Protocol):
    """What the server calls: ``respond`` for each request, then ``finished`` once the
    response went out (``times``: received, responded, sent; ``time.perf_counter``)."""

    async def respond(self, request: Request) -> Response: ...

    def finished(
        self, request: Request, response: Response, times: tuple[float, float, float]
    ) -> None: ...


class _Closed(Exception):
    """The peer is gone (reset, broken pipe, TLS error)."""


class _SocketIO:
    """Plain TCP straight on the non-blocking socket: a read or write that can go ahead
    costs one system call (and a read one turn of the scheduler, for fairness)."""

    __slots__ = ("conn", "sock")

    def __init__(self, sock: socket.socket, conn: _Connection) -> None:
        self.sock = sock
        self.conn = conn

    async def receive(self, answered: bool = False) -> bytes:
        """The next bytes from the client, b"" when it is gone. ``answered``: we just sent
        a response; a client that waits for it (wrk, a phone) has sent nothing since, so
        don't try a read that would fail (a system call and an exception per request):
        wait until the socket is readable."""
        sock = self.sock
        if not answered:
            try:
                data = sock.recv(RECEIVE_SIZE)
            except BlockingIOError:
                pass
            except OSError:
                return b""
            else:
                # Data was waiting: let the other connections go first all the same (round
                # robin), or a busy client would be served again and again while others
                # wait (with wrk under load: p99 360-580 ms instead of 140-170 ms).
                await trio.lowlevel.checkpoint()
                return data
        # Waiting is a turn of the scheduler too, so this is round robin as well.
        while True:
            await trio.lowlevel.wait_readable(sock)
            try:
                return sock.recv(RECEIVE_SIZE)
            except BlockingIOError:
                continue
            except OSError:
                return b""

    async def send(self, data: bytes) -> None:
        sock = self.sock
        try:  # the usual case: the whole answer fits the socket buffer at once
            sent = sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            raise _Closed(str(exc)) from None
        if sent == len(data):
            return
        view = memoryview(data)[sent:]
        waited = False
        while view:
            try:
                sent = sock.send(view)
            except BlockingIOError:
                if not waited:
                    waited = True
                    self.conn.deadline = trio.current_time() + self.conn.server.limits.send_timeout
                await trio.lowlevel.wait_writable(sock)
                continue
            except OSError as exc:
                raise _Closed(str(exc)) from None
            view = view[sent:]

    async def close(self) -> None:
        with trio.CancelScope(shield=True):
            self.sock.close()
            await trio.lowlevel.checkpoint()


class _StreamIO:
    """Any trio stream (TLS, or a memory stream in tests)."""

    __slots__ = ("conn", "stream")

    def __init__(self, stream: trio.abc.Stream, conn: _Connection) -> None:
        self.stream = stream
        self.conn = conn

    async def receive(self, answered: bool = False) -> bytes:
        try:
            return bytes(await self.stream.receive_some(RECEIVE_SIZE))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return b""

    async def send(self, data: bytes) -> None:
        self.conn.deadline = trio.current_time() + self.conn.server.limits.send_timeout
        try:
            await self.stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise _Closed(str(exc)) from None

    async def close(self) -> None:
        await trio.aclose_forcefully(self.stream)


class _Connection:
    """One client connection: httptools' callbacks fill :attr:`ready` with request heads."""

    __slots__ = (
        "begun",
        "count",
        "deadline",
        "headers",
        "in_head",
        "parser",
        "peer",
        "ready",
        "scope",
        "server",
        "size",
        "too_large",
        "url",
    )

    def __init__(self, server: HttpServer, peer: str) -> None:
        self.server = server
        self.peer = peer
        self.ready: list[Request] = []
        self.url = b""
        self.headers: dict[bytes, bytes] = {}
        self.size = 0
        self.count = 0
        self.in_head = False
        self.begun = False
        self.too_large = False
        self.deadline = trio.current_time() + server.limits.header_timeout
        self.scope = trio.CancelScope()
        self.parser = httptools.HttpRequestParser(self)

    # --- httptools callbacks ------------------------------------------------------------

    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = {}
        self.size = self.count = 0
        self.in_head = self.begun = True  # the header deadline is set after this feed

    def on_url(self, url: bytes) -> None:
        self.size += len(url)
        if self.size > MAX_HEAD:
            self.too_large = True
        else:
            self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.size += len(name) + len(value) + 4
        self.count += 1
        if self.size > MAX_HEAD or self.count > MAX_HEADERS:
            self.too_large = True
            return
        key = name.lower()
        value = value.strip(b" \t")
        old = self.headers.get(key)
        if old is None:
            self.headers[key] = value
        elif key == b"x-forwarded-for":  # proxies may add a second one: keep all, in order
            self.headers[key] = old + b"," + value

    def on_headers_complete(self) -> None:
        self.in_head = False
        if self.too_large:
            return
        parser = self.parser
        headers = self.headers
        keep_alive = parser.should_keep_alive()
        if headers.get(b"content-length", b"0") != b"0" or b"transfer-encoding" in headers:
            keep_alive = False  # a body we won't read: answer, then close
        self.ready.append(Request(parser.get_method(), self.url, headers, self.peer, keep_alive))

    # --- the loop -----------------------------------------------------------------------

    async def serve(self, io: _SocketIO | _StreamIO) -> None:
        server = self.server
        handler = server.handler
        limits = server.limits
        parser = self.parser
        ready = self.ready
        clock = time.perf_counter
        answered = False
        with self.scope:
            while True:
                data = await io.receive(answered)
                answered = False
                if not data:
                    return
                failure: Response | None = None
                try:
                    parser.feed_data(data)
                except httptools.HttpParserUpgrade:
                    failure = _UPGRADE  # answered below if it was the only request
                except httptools.HttpParserError:
                    failure = _BAD_REQUEST
                if self.too_large:
                    failure = _TOO_LARGE
                if self.begun:
                    self.begun = False
                    if self.in_head:  # a head began and is not complete: it has a deadline
                        self.deadline = trio.current_time() + limits.header_timeout
                if not ready:
                    if failure is not None:
                        await self._send_final(io, failure)
                        return
                    continue
                received = clock()
                batch: list[bytes] = []
                done: list[tuple[Request, Response, float]] = []
                close = False
                for request in ready:
                    close = not request.keep_alive
                    try:
                        response = await handler.respond(request)
                    except Exception as exc:  # a bug in the handler: 500, keep serving others
                        server.failed("phones.handler_failed", exc)
                        response = _SERVER_ERROR
                        close = True
                    done.append((request, response, clock()))
                    head_only = request.method == HEAD
                    batch.append(response.encode(head_only=head_only, close=close))
                    if response.streamed:
                        await io.send(b"".join(batch))
                        batch.clear()
                        if head_only:
                            response.body.file.close()  # type: ignore[union-attr]
                        elif not await firmware.stream(response.body, self._send_chunk(io)):  # type: ignore[arg-type]
                            close = True
                    if close:
                        break
                ready.clear()
                if failure is not None and not close:
                    close = True  # what followed the good requests was no HTTP
                    if failure is not _UPGRADE:
                        batch.append(failure.encode(close=True))
                if batch:
                    await io.send(batch[0] if len(batch) == 1 else b"".join(batch))
                    answered = True
                sent = clock()
                for request, response, responded in done:
                    try:
                        handler.finished(request, response, (received, responded, sent))
                    except Exception as exc:  # a bug in the access log: keep serving
                        server.failed("phones.handler_failed", exc)
                if close:
                    return
                if not self.in_head:
                    self.deadline = trio.current_time() + limits.keepalive_timeout

    def _send_chunk(self, io: _SocketIO | _StreamIO) -> Callable[[bytes], Awaitable[None]]:
        """``io.send`` for a streamed body: each chunk gets ``send_timeout`` afresh."""
        timeout = self.server.limits.send_timeout

        async def send(chunk: bytes) -> None:
            self.deadline = trio.current_time() + timeout
            await io.send(chunk)

        return send

    async def _send_final(self, io: _SocketIO | _StreamIO, response: Response) -> None:
        with contextlib.suppress(_Closed):
            await io.send(response.encode(close=True))


_BAD_REQUEST = plain(400, b"bad request\n")
_TOO_LARGE = plain(431, b"request header fields too large\n")
_UPGRADE = plain(400, b"protocol upgrade not supported\n")
_SERVER_ERROR = plain(500, b"internal server error\n")


class HttpServer:
    """Serves ``handler`` on listening sockets; see the module doc.

    Args:
        handler: answers requests (:class:`Handler`).
        limits: timeouts.
        ssl_context: serve HTTPS with it; None: plain HTTP.
    """

    def __init__(
        self,
        handler: Handler,
        limits: Limits | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.handler = handler
        self.limits = limits or Limits()
        self.ssl_context = ssl_context
        self.connections: set[_Connection] = set()
        self._failures = 0
        self._failure_logged = -1e9

    def failed(self, event: str, exc: Exception) -> None:
        """A bug showed (an exception escaped the handler or a connection): one error line
        a minute, with the count; the traceback at debug level."""
        self._failures += 1
        now = time.monotonic()
        if now - self._failure_logged >= 60.0:
            log.error(event, error=f"{type(exc).__name__}: {exc}"[:300], failures=self._failures)
            log.debug(event + "_traceback", exc_info=exc)
            self._failure_logged = now
            self._failures = 0

    async def serve_connection(self, stream: trio.abc.Stream | socket.socket, peer: str) -> None:
        """Serve one connection until it closes, times out or fails; closes it.

        ``stream`` is a connected non-blocking socket (plain HTTP, the fast path) or any
        trio stream (wrapped in TLS when the server has a context).
        """
        conn = _Connection(self, peer)
        io: _SocketIO | _StreamIO
        if isinstance(stream, socket.socket):
            if self.ssl_context is not None:
                raw = trio.SocketStream(trio.socket.from_stdlib_socket(stream))
                tls = trio.SSLStream(raw, self.ssl_context, server_side=True, https_compatible=True)
                io = _StreamIO(tls, conn)
            else:
                io = _SocketIO(stream, conn)
        else:
            if self.ssl_context is not None:
                stream = trio.SSLStream(
                    stream, self.ssl_context, server_side=True, https_compatible=True
                )
            io = _StreamIO(stream, conn)
        self.connections.add(conn)
        try:
            await conn.serve(io)
        except _Closed:
            pass
        except Exception as exc:  # nothing one connection does ends the server
            self.failed("phones.connection_failed", exc)
        finally:
            self.connections.discard(conn)
            await io.close()

    async def reap(self) -> None:
        """Cancel connections past their deadline, for ever (one task per server)."""
        limits = self.limits
        tick = min(1.0, max(0.05, min(attrs.astuple(limits)) / 4))
        while True:
            await trio.sleep(tick)
            now = trio.current_time()
            for conn in list(self.connections):
                if conn.deadline <= now:
                    conn.scope.cancel()

    async def accept(self, listener: socket.socket, nursery: trio.Nursery) -> None:
        """Accept connections on a listening non-blocking socket, for ever."""
        while True:
            try:
                sock, address = listener.accept()
            except BlockingIOError:
                await trio.lowlevel.wait_readable(listener)
                continue
            except OSError as exc:
                if exc.errno in _ACCEPT_RESOURCE_ERRORS:  # out of file descriptors or memory
                    log.error("phones.accept_failed", error=exc.strerror or str(exc))
                    await trio.sleep(0.1)
                    continue
                if exc.errno in _ACCEPT_GONE:  # the client gave up before we accepted
                    continue
                raise
            sock.setblocking(False)
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            peer = address[0] if isinstance(address, tuple) else "unknown"
            nursery.start_soon(self.serve_connection, sock, peer)


_ACCEPT_RESOURCE_ERRORS = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}
_ACCEPT_GONE = {errno.ECONNABORTED, errno.EPROTO, errno.EPERM}


async def open_listeners(host: str, port: int) -> list[socket.socket]:
    """Bound, listening, non-blocking sockets for ``host:port`` (every address it names)."""
    listeners = await trio.open_tcp_listeners(port, host=host or None)
    sockets = []
    for listener in listeners:
        fd = listener.socket.detach()
        sock = socket.socket(fileno=fd)
        sock.setblocking(False)
        sockets.append(sock)
    return sockets


def url_of(sock: socket.socket, tls: bool) -> str:
    """``http://127.0.0.1:8091`` for a listening socket (IPv6 hosts bracketed)."""
    host, port = sock.getsockname()[:2]
    if ":" in host:
        host = f"[{host}]"
    return f"{'https' if tls else 'http'}://{host}:{port}"


async def serve(
    server: HttpServer,
    listeners: list[socket.socket],
    *,
    shutdown_trigger: Callable[[], Awaitable[Any]] | None = None,
) -> None:
    """Run ``server`` on ``listeners`` until cancelled or ``shutdown_trigger`` returns."""
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server.reap)
            for listener in listeners:
                nursery.start_soon(server.accept, listener, nursery)
            if shutdown_trigger is not None:
                await shutdown_trigger()
                nursery.cancel_scope.cancel()
    finally:
        for listener in listeners:
            listener.close()

"""A small HTTP front on the AppWebsocket listener: plain GETs here, upgrades to trio-websocket.

An innovaphone App Service serves its App's files under the same base URL as its
websocket (myApps loads ``https://host/.../provd-admin.htm`` in an iframe and the App then
opens the websocket next to it). trio-websocket's server only does websocket upgrades: a
request without ``Upgrade: websocket`` is refused by wsproto with a 400 before any handler
sees it. So each new connection first goes through this front: it reads the request head
with h11 (bounded in size and time); an upgrade request is handed to trio-websocket
together with the bytes already read (:class:`ReplayStream`); any other request is
answered here by the ``http`` handler, one request per connection (``Connection: close``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import attrs
import h11
import trio

#: Largest request head the front reads, bytes (a browser's GET is well under 8 KiB).
MAX_HEAD = 16 << 10


@attrs.frozen
class HttpRequest:
    method: str
    target: str
    headers: dict[str, str]


@attrs.frozen
class HttpResponse:
    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()


HttpHandler = Callable[[HttpRequest], Awaitable[HttpResponse]]


class ReplayStream(trio.abc.Stream):
    """``inner`` with ``head`` put back in front of what it receives next.

    ``peer`` is the client's ``address:port`` (trio-websocket can only ask a raw socket
    stream for it, which this wrapper is not).
    """

    def __init__(self, inner: trio.abc.Stream, head: bytes, peer: str) -> None:
        self.inner = inner
        self._head = head
        self.peer = peer

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._head:
            n = len(self._head) if max_bytes is None else max_bytes
            data, self._head = self._head[:n], self._head[n:]
            return data
        return await self.inner.receive_some(max_bytes)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        send_eof = getattr(self.inner, "send_eof", None)
        if send_eof is not None:
            await send_eof()

    async def aclose(self) -> None:
        await self.inner.aclose()


class BadRequest(Exception):
    """The head could not be read as HTTP/1.1 (or was too large); answered with 400."""


async def read_head(stream: trio.abc.Stream) -> tuple[h11.Request | None, bytes]:
    """Read one request head. Returns ``(request, raw bytes read)``; ``None`` on EOF.

    Raises:
        BadRequest: not HTTP, or a head larger than :data:`MAX_HEAD`.
    """
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
    raw = bytearray()
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as exc:
            raise BadRequest(str(exc)) from None
        if isinstance(event, h11.Request):
            return event, bytes(raw)
        if event is h11.NEED_DATA:
            data = await stream.receive_some(4096)
            if not data:
                return None, bytes(raw)
            raw += data
            conn.receive_data(data)
        else:
            return None, bytes(raw)


def is_upgrade(request: h11.Request) -> bool:
    for name, value in request.headers:
        if name == b"upgrade" and value.lower() == b"websocket":
            return True
    return False


def to_request(request: h11.Request) -> HttpRequest:
    headers = {n.decode("latin-1"): v.decode("latin-1") for n, v in request.headers}
    return HttpRequest(
        method=request.method.decode("ascii", "replace"),
        target=request.target.decode("latin-1"),
        headers=headers,
    )


async def answer(stream: trio.abc.Stream, response: HttpResponse, *, head_only: bool) -> None:
    """Send ``response`` (HTTP/1.1, ``Connection: close``) and close the stream."""
    conn = h11.Connection(h11.SERVER)
    # h11 needs to have seen a request before it writes a response (HEAD: no body).
    method = b"HEAD" if head_only else b"GET"
    conn.receive_data(method + b" / HTTP/1.1\r\nHost: x\r\n\r\n")
    conn.next_event()
    headers = [
        *response.headers,
        ("content-length", str(len(response.body))),
        ("connection", "close"),
    ]
    out = conn.send(h11.Response(status_code=response.status, headers=headers))
    if not head_only and response.body:
        out += conn.send(h11.Data(data=response.body))
    out += conn.send(h11.EndOfMessage())
    await stream.send_all(out)
    await trio.aclose_forcefully(stream)

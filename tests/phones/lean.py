"""An httpx transport that serves each request through the phones server's real HTTP/1.1
loop (:class:`provd.phones.http.HttpServer`) over a socket pair, in-process, with the
client address a test chooses: tests of :class:`~provd.phones.PhonesApp` see exactly the
bytes a phone would, parser and response encoding included."""

from __future__ import annotations

import socket

import h11
import httpx
import trio

from provd.phones.http import HttpServer, Limits


class LeanTransport(httpx.AsyncBaseTransport):
    def __init__(self, app, client: tuple[str, int], limits: Limits | None = None) -> None:
        self.app = app
        self.client = client
        self.limits = limits

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        conn = h11.Connection(h11.CLIENT)
        headers = list(request.headers.raw)
        if body and not any(k.lower() == b"content-length" for k, _ in headers):
            headers.append((b"content-length", str(len(body)).encode()))
        data = conn.send(
            h11.Request(method=request.method, target=request.url.raw_path, headers=headers)
        )
        if body:
            data += conn.send(h11.Data(data=body))
        data += conn.send(h11.EndOfMessage())
        server = HttpServer(self.app, self.limits)
        ours, theirs = socket.socketpair()
        ours.setblocking(False)
        status, reply_headers, content = 0, [], b""
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(server.serve_connection, ours, self.client[0])
                async with trio.SocketStream(trio.socket.from_stdlib_socket(theirs)) as stream:
                    await stream.send_all(data)
                    while True:
                        event = conn.next_event()
                        if event is h11.NEED_DATA:
                            conn.receive_data(await stream.receive_some(65536))
                        elif isinstance(event, h11.Response):
                            status, reply_headers = event.status_code, event.headers
                        elif isinstance(event, h11.Data):
                            content += bytes(event.data)
                        elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                            break
        return httpx.Response(status, headers=list(reply_headers), content=content)

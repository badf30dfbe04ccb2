"""How the sysclient websocket reaches Devices: an address literal is connected to
directly (no resolver, no happy-eyeballs nursery, issue 14), a name through trio's
resolver; both end up at the same upgrade."""

import functools
import socket

import pytest
import trio

from provd.sim.wsserver import serve
from provd.transport.sysws import open_sysclient


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


async def _devices(nursery, listen: str) -> tuple[int, list[bytes]]:
    received: list[bytes] = []

    async def lean(ws):
        received.append(await ws.get_message())
        await ws.aclose()

    async def other(ws):
        await ws.aclose()

    server = await nursery.start(
        lambda task_status: serve(
            lean, other, listen, lean_path="/d/sysclients", task_status=task_status
        )
    )
    return server.port, received


@pytest.mark.parametrize(
    ("listen", "host"),
    [("127.0.0.1:0", "127.0.0.1"), ("[::1]:0", "[::1]"), ("127.0.0.1:0", "localhost")],
)
async def test_connects_by_address_or_name(nursery, listen, host):
    if ":" in host and not _has_ipv6_loopback():
        host, listen = "127.0.0.1", "127.0.0.1:0"  # no IPv6 here: the literal path still runs
    port, received = await _devices(nursery, listen)
    with trio.fail_after(5):
        ws = await open_sysclient(f"ws://{host}:{port}/d/sysclients")
        await ws.send_message(b"\x00hello")
        while not received:
            await trio.testing.wait_all_tasks_blocked()
        await ws.aclose()
    assert received == [b"\x00hello"]


async def test_a_refused_connection_is_an_oserror():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with trio.fail_after(5), pytest.raises(OSError):
        await open_sysclient(f"ws://127.0.0.1:{port}/d/sysclients")


async def _answering(nursery, answer) -> tuple[int, list[bytes]]:
    """A raw TCP server: reads the upgrade request's head, writes ``answer(head)``."""
    heads: list[bytes] = []

    async def handler(stream):
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = await stream.receive_some(4096)
            if not chunk:
                return
            data += chunk
        heads.append(data)
        reply = answer(data)
        if not reply:
            return  # closes the connection
        await stream.send_all(reply)
        await stream.receive_some(4096)  # until the client closes

    listeners = await nursery.start(functools.partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
    return listeners[0].socket.getsockname()[1], heads


def _accept_of(head: bytes) -> bytes:
    from wsproto.utilities import generate_accept_token

    (key,) = [
        line.split(b":", 1)[1].strip()
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"sec-websocket-key:")
    ]
    return generate_accept_token(key)


async def test_the_upgrade_request_is_what_wsproto_servers_accept_and_extra_headers_pass(nursery):
    """provd writes the opening handshake itself (issue 14): a wsproto server end takes it
    as a valid websocket request; an answer with headers in another case, a connection
    token list, headers provd does not know and a frame right behind it is accepted."""
    from wsproto.connection import ConnectionType
    from wsproto.events import Request
    from wsproto.handshake import H11Handshake

    def answer(head: bytes) -> bytes:
        server = H11Handshake(ConnectionType.SERVER)
        server.receive_data(head)
        (request,) = list(server.events())
        assert isinstance(request, Request)
        assert (request.host, request.target) == (f"127.0.0.1:{port}", "/d/sysclients?x=1")
        return (
            b"HTTP/1.1 101 Switching Protocols\r\nserver: devices\r\nUPGRADE: WebSocket\r\n"
            b"connection: keep-alive, Upgrade\r\nsec-websocket-accept: "
            + _accept_of(head)
            + b"\r\nDate: Mon, 23 Nov 2026 09:00:00 GMT\r\n\r\n\x82\x05hello"
        )

    port, heads = await _answering(nursery, answer)
    with trio.fail_after(5):
        ws = await open_sysclient(f"ws://127.0.0.1:{port}/d/sysclients?x=1")
        assert await ws.get_message() == b"hello"
        await ws.aclose()
    assert len(heads) == 1


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (lambda head: b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n", "HTTP 403"),
        (
            lambda head: (
                b"HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n"
            ),
            "bad accept token",
        ),
        (
            lambda head: (
                b"HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Accept: " + _accept_of(head) + b"\r\n"
                b"Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n"
            ),
            "sec-websocket-extensions not offered",
        ),
        (
            lambda head: (
                b"HTTP/1.1 101 OK\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Accept: " + _accept_of(head) + b"\r\n\r\n"
            ),
            "Upgrade: websocket",
        ),
        (lambda head: b"SSH-2.0-OpenSSH\r\n\r\n", "status line"),
        (lambda head: b"", "closed during the upgrade"),
    ],
)
async def test_an_answer_that_is_no_upgrade_is_refused_with_its_reason(nursery, reply, reason):
    from provd.transport.sysws import WebsocketRejected

    port, _ = await _answering(nursery, reply)
    with trio.fail_after(5), pytest.raises(WebsocketRejected, match=reason):
        ws = await open_sysclient(f"ws://127.0.0.1:{port}/d/sysclients")
        await ws.aclose()

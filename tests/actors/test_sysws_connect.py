"""How the sysclient websocket reaches Devices: an address literal is connected to
directly (no resolver, no happy-eyeballs nursery, issue 14), a name through trio's
resolver; both end up at the same upgrade."""

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

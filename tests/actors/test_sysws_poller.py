"""The shared poller of provd.transport.sysws (issue 14: idle CPU): over a real socket
pair, a pong to the keep-alive's ping is taken without waking the phone's task, while
messages, the end of the stream and cancellation still reach it."""

import select
import socket

import pytest
import trio
import trio.testing
from wsproto.connection import Connection, ConnectionType
from wsproto.events import BytesMessage

from provd.actors.keepalive import KeepAlive
from provd.transport import ConnectionLost
from provd.transport.sysws import SysclientSocket, poller

pytestmark = pytest.mark.skipif(not hasattr(select, "epoll"), reason="needs epoll (Linux)")


def real_pair() -> tuple[SysclientSocket, trio.SocketStream, Connection]:
    a, b = socket.socketpair()
    ours = trio.SocketStream(trio.socket.from_stdlib_socket(a))
    theirs = trio.SocketStream(trio.socket.from_stdlib_socket(b))
    ws = SysclientSocket(ours, Connection(ConnectionType.CLIENT), 1 << 20)
    return ws, theirs, Connection(ConnectionType.SERVER)


async def until(predicate) -> None:
    """Wait for the poller's work on real sockets (state, not time: bounded by fail_after)."""
    with trio.fail_after(5):
        while not predicate():  # noqa: ASYNC110 (socket I/O: no event to wait on)
            await trio.sleep(0.001)


async def test_pong_does_not_wake_the_owner():
    ws, peer, server = real_pair()
    wakes = 0
    received: list[bytes] = []

    async def owner() -> None:
        nonlocal wakes
        while True:
            received.append(await ws.get_message())
            wakes += 1

    async with trio.open_nursery() as nursery:
        nursery.start_soon(owner)
        await trio.testing.wait_all_tasks_blocked()
        shared = poller()
        assert ws.ping_nowait(1.0) == b""
        assert await peer.receive_some(64)  # the ping
        await peer.send_all(b"\x8a\x00")  # its pong
        await until(lambda: ws.ping_sent is None)
        assert shared.pongs == 1 and wakes == 0 and received == []
        # A message still reaches the parked owner.
        await peer.send_all(server.send(BytesMessage(data=b"\x00\x01hello")))
        await until(lambda: received)
        assert received == [b"\x00\x01hello"] and shared.pongs == 1
        # A pong glued to a message is parsed by the owner (wsproto), not dropped.
        ws.ping_nowait(2.0)
        await peer.receive_some(64)
        await peer.send_all(b"\x8a\x00" + server.send(BytesMessage(data=b"x")))
        await until(lambda: len(received) == 2)
        assert received[1] == b"x" and ws.ping_sent is None and shared.pongs == 1
        nursery.cancel_scope.cancel()
    await ws.aclose()
    await peer.aclose()


async def test_end_of_stream_and_cancel_reach_the_parked_owner():
    ws, peer, _ = real_pair()
    ws2, peer2, _ = real_pair()
    with trio.CancelScope() as scope:
        scope.deadline = trio.current_time() + 0.05
        await ws2.get_message()  # parked in the poller, then cancelled: it lets go
    assert scope.cancelled_caught and ws2._fd not in poller()._parked
    await peer.aclose()
    with pytest.raises(ConnectionLost, match="1006"):
        await ws.get_message()
    await ws.aclose()
    await ws2.aclose()
    await peer2.aclose()


async def test_silent_peer_still_ended_by_keepalive():
    """Half-open detection is unchanged: no pong, the keep-alive ends the session."""
    keepalive = KeepAlive(interval=0.05, timeout=0.05)
    ws, peer, _ = real_pair()
    ws.scope = trio.CancelScope()
    with trio.fail_after(5):
        keepalive.watch(ws)
        with ws.scope:
            while True:
                await ws.get_message()
    assert "no pong" in ws.lost and keepalive.timeouts == 1
    keepalive.unwatch(ws)
    await ws.aclose()
    await peer.aclose()

"""The cheap keep-alive ping (issue 14: idle CPU): a batch's ping frames come from one
``os.urandom`` call yet each carries its own masking key, one waiting entry per batch
still ends exactly the connections that did not answer, and the pong shortcut of the
shared poller hands everything that is not a bare pong (a split pong, a pong with a
payload) to wsproto unchanged."""

import select
import socket

import pytest
import trio
import trio.testing
from wsproto.connection import Connection, ConnectionType
from wsproto.events import BytesMessage, Ping, Pong
from wsproto.frame_protocol import FrameProtocol, Opcode

from provd.actors.keepalive import KeepAlive
from provd.transport.sysws import PING_SIZE, SysclientSocket, ping_frames, poller

from .test_sysclient_socket import owner, pair


def test_ping_frames_are_masked_empty_pings_with_fresh_keys():
    count = 1000
    frames = ping_frames(count)
    assert len(frames) == count * PING_SIZE
    server = FrameProtocol(client=False, extensions=[])  # refuses unmasked client frames
    server.receive_bytes(frames)
    parsed = list(server.received_frames())
    assert len(parsed) == count
    assert all(f.opcode is Opcode.PING and f.payload == b"" for f in parsed)
    keys = {frames[i + 2 : i + 6] for i in range(0, len(frames), PING_SIZE)}
    assert len(keys) > count - 5  # 32 random bits each: a few collisions at most
    assert ping_frames(1) != ping_frames(1)


async def test_a_batch_ends_only_its_silent_connections(autojump_clock):
    """Many connections pinged in one batch (one waiting entry): the silent ones are
    ended once their pong is late, the answering ones stay, and a pong that came after a
    later ping went out does not save a connection whose first ping went unanswered."""
    keepalive = KeepAlive(interval=10.0, timeout=5.0)
    pairs = [pair(answer_pings=i % 3 != 0) for i in range(9)]
    ended: dict[str, tuple[str, float]] = {}
    async with trio.open_nursery() as nursery:
        for i, (ws, peer) in enumerate(pairs):
            nursery.start_soon(peer.serve)
            keepalive.watch(ws)
            nursery.start_soon(owner, ws, ended, str(i))
        await trio.sleep(45)  # virtual time: four rounds
        assert sorted(ended, key=int) == ["0", "3", "6"]
        for i in (0, 3, 6):
            reason, when = ended[str(i)]
            assert reason == "no pong from Devices within 5 s" and 15 <= when <= 16
            assert pairs[i][1].pings == 1
        for i in (1, 2, 4, 5, 7, 8):
            assert pairs[i][1].pings == 4 and pairs[i][1].pongs == 0
        assert keepalive.timeouts == 3 and keepalive.pings == 3 + 6 * 4
        assert len(keepalive._waiting) <= 2  # entries per batch, not per ping
        for ws, _ in pairs:
            keepalive.unwatch(ws)
        nursery.cancel_scope.cancel()


async def test_a_late_pong_after_the_deadline_does_not_count(autojump_clock):
    """A pong that arrives only after the deadline is too late: the connection ends."""
    keepalive = KeepAlive(interval=10.0, timeout=5.0)
    ws, peer = pair(answer_pings=False)
    ended: dict[str, tuple[str, float]] = {}
    async with trio.open_nursery() as nursery:
        nursery.start_soon(peer.serve)
        keepalive.watch(ws)
        nursery.start_soon(owner, ws, ended, "ws")
        await peer.wait_until(lambda: peer.pings == 1)
        await trio.sleep(6)
        assert ended["ws"][0] == "no pong from Devices within 5 s"
        await peer.send(Pong())  # nothing left to save
        keepalive.unwatch(ws)
        nursery.cancel_scope.cancel()


needs_epoll = pytest.mark.skipif(not hasattr(select, "epoll"), reason="needs epoll (Linux)")


def real_pair() -> tuple[SysclientSocket, socket.socket]:
    a, b = socket.socketpair()
    ours = trio.SocketStream(trio.socket.from_stdlib_socket(a))
    return SysclientSocket(ours, Connection(ConnectionType.CLIENT), 1 << 20), b


async def until(predicate) -> None:
    """Wait for the poller's work on real sockets (state, not time: bounded by fail_after)."""
    with trio.fail_after(5):
        while not predicate():  # noqa: ASYNC110 (socket I/O: no event to wait on)
            await trio.sleep(0.001)


@needs_epoll
async def test_split_pong_and_pong_with_payload_go_through_wsproto():
    """Only a read of exactly a bare pong between frames is taken by the shortcut: a pong
    arriving in two reads, or one with a payload, is parsed by wsproto in the owner's task
    (and still answers the ping); a message after them arrives intact."""
    ws, peer = real_pair()
    server = Connection(ConnectionType.SERVER)
    received: list[bytes] = []

    async def receive() -> None:
        while True:
            received.append(await ws.get_message())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(receive)
        await trio.testing.wait_all_tasks_blocked()
        shared = poller()
        pongs = shared.pongs
        assert ws.ping_nowait(1.0, ping_frames(1)) == b""
        server.receive_data(peer.recv(64))
        assert [type(e) for e in server.events()] == [Ping]
        peer.send(b"\x8a")  # half a pong: wsproto keeps it
        await until(lambda: not ws._between_frames())
        assert ws.ping_sent == 1.0
        peer.send(b"\x00")  # the rest: now it is a pong
        await until(lambda: ws.ping_sent is None)
        ws.ping_nowait(2.0)
        peer.recv(64)
        peer.send(server.send(Pong(payload=b"odd")))  # a payload: not the shortcut's
        await until(lambda: ws.ping_sent is None)
        peer.send(server.send(BytesMessage(data=b"\x00\x01after")))
        await until(lambda: received)
        assert received == [b"\x00\x01after"] and shared.pongs == pongs
        nursery.cancel_scope.cancel()
    await ws.aclose()
    peer.close()


@needs_epoll
async def test_pongs_answered_one_by_one_are_taken_in_few_rounds():
    """A server answers a batch's pings one by one: after a round of only pongs the
    poller waits a moment (PONG_COALESCE), so the rest comes in one round instead of a
    wake-up each; a message that arrives meanwhile still reaches its parked owner."""
    count = 20
    pairs = [real_pair() for _ in range(count)]
    received: list[bytes] = []

    async def receive(ws: SysclientSocket) -> None:
        while True:
            received.append(await ws.get_message())

    async with trio.open_nursery() as nursery:
        for ws, _ in pairs:
            nursery.start_soon(receive, ws)
        await trio.testing.wait_all_tasks_blocked()
        shared = poller()
        frames = ping_frames(count)
        for i, (ws, peer) in enumerate(pairs):
            assert ws.ping_nowait(1.0, frames[i * PING_SIZE : (i + 1) * PING_SIZE]) == b""
            assert peer.recv(64)
        rounds, pongs = shared.rounds, shared.pongs
        for _, peer in pairs:
            peer.send(b"\x8a\x00")
            await trio.lowlevel.checkpoint()  # the poller may run between two pongs
        await until(lambda: all(ws.ping_sent is None for ws, _ in pairs))
        assert shared.pongs - pongs == count
        assert shared.rounds - rounds <= count // 2  # one per pong without the pause
        # A pong, then (while the poller pauses) a message: the message is delivered.
        ws, peer = pairs[0]
        ws.ping_nowait(2.0)
        peer.recv(64)
        peer.send(b"\x8a\x00")
        await until(lambda: ws.ping_sent is None)
        peer.send(Connection(ConnectionType.SERVER).send(BytesMessage(data=b"\x00\x01m")))
        await until(lambda: received)
        assert received == [b"\x00\x01m"]
        nursery.cancel_scope.cancel()
    for ws, peer in pairs:
        await ws.aclose()
        peer.close()

"""The lean sysclient websocket (provd.transport.sysws) and the shared keep-alive
(provd.actors.keepalive), against a wsproto server end over an in-memory stream, on
trio's autojump clock."""

import pytest
import trio
import trio.testing
from wsproto.connection import Connection, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Message, Ping, Pong, TextMessage

from provd.actors.keepalive import KeepAlive
from provd.protocol import ProtocolError
from provd.transport import ConnectionLost
from provd.transport.sysws import SysclientSocket


class Peer:
    """The Devices end: a wsproto server connection on the other end of the stream."""

    def __init__(self, stream, *, answer_pings=True):
        self.stream = stream
        self.ws = Connection(ConnectionType.SERVER)
        self.answer_pings = answer_pings
        self.pings = 0
        self.pongs = 0
        self.received: list[bytes] = []
        self._changed = trio.Event()

    async def wait_until(self, predicate) -> None:
        while not predicate():
            await self._changed.wait()

    async def send(self, event) -> None:
        await self.stream.send_all(self.ws.send(event))

    async def serve(self) -> None:
        while True:
            data = await self.stream.receive_some(65536)
            if not data:
                return
            self.ws.receive_data(data)
            for event in self.ws.events():
                if isinstance(event, Ping):
                    self.pings += 1
                    if self.answer_pings:
                        await self.send(event.response())
                elif isinstance(event, Pong):
                    self.pongs += 1
                elif isinstance(event, Message):
                    self.received.append(event.data)
                self._changed.set()
                self._changed = trio.Event()


def pair(*, answer_pings=True, max_message_size=1 << 20) -> tuple[SysclientSocket, Peer]:
    ours, theirs = trio.testing.memory_stream_pair()
    ws = SysclientSocket(ours, Connection(ConnectionType.CLIENT), max_message_size)
    return ws, Peer(theirs, answer_pings=answer_pings)


async def owner(ws: SysclientSocket, ended: dict, key: str, done: trio.Event | None = None):
    """A phone actor's loop in short: receive until the keep-alive ends the session."""
    ws.scope = trio.CancelScope()
    with ws.scope:
        while True:
            await ws.get_message()
    ended[key] = (ws.lost, trio.current_time())
    if done is not None:
        done.set()


async def test_keepalive_ends_the_silent_connection_only(autojump_clock):
    """One keep-alive pings every connection each interval; the one whose peer stops
    answering is ended with the reason once its pong is timeout late, the other stays
    (issue 8.13's half-open Devices, now without a task per phone)."""
    keepalive = KeepAlive(interval=10.0, timeout=5.0)
    live, live_peer = pair()
    dead, dead_peer = pair(answer_pings=False)
    ended: dict[str, tuple[str, float]] = {}
    dead_ended = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(live_peer.serve)
        nursery.start_soon(dead_peer.serve)
        keepalive.watch(live)
        nursery.start_soon(owner, live, ended, "live")
        keepalive.watch(dead)
        nursery.start_soon(owner, dead, ended, "dead", dead_ended)
        with trio.fail_after(200):
            await dead_ended.wait()
        await trio.sleep(100)  # virtual time: ten more ping rounds
        assert "live" not in ended
        reason, when = ended["dead"]
        assert reason == "no pong from Devices within 5 s"
        assert 15 <= when <= 16  # first ping at 10 s (+ batch slack), 5 s for the pong
        assert dead_peer.pings == 1  # no second ping while one is unanswered
        assert live_peer.pings >= 10 and live_peer.pings == keepalive.pings - 1
        assert keepalive.timeouts == 1
        keepalive.unwatch(live)
        keepalive.unwatch(dead)
        nursery.cancel_scope.cancel()
    assert keepalive.watched == 0


async def test_keepalive_task_ends_when_nothing_is_watched(autojump_clock):
    keepalive = KeepAlive(interval=1.0, timeout=1.0)
    ws, peer = pair()
    ended: dict[str, tuple[str, float]] = {}
    async with trio.open_nursery() as nursery:
        nursery.start_soon(peer.serve)
        nursery.start_soon(owner, ws, ended, "ws")
        keepalive.watch(ws)
        await trio.sleep(3.5)
        assert keepalive._running and peer.pings >= 2
        keepalive.unwatch(ws)
        await trio.sleep(3)
        assert not keepalive._running  # no timer left behind
        pings = peer.pings
        keepalive.watch(ws)  # starts again
        await trio.sleep(1.6)
        assert keepalive._running and peer.pings == pings + 1
        assert not ended
        keepalive.unwatch(ws)
        nursery.cancel_scope.cancel()


async def test_keepalive_off_with_interval_zero(autojump_clock):
    keepalive = KeepAlive(interval=0.0, timeout=1.0)
    ws, peer = pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(peer.serve)
        keepalive.watch(ws)
        await trio.sleep(100)
        assert peer.pings == 0 and not keepalive._running
        nursery.cancel_scope.cancel()


async def test_messages_pings_and_close():
    """Binary messages both ways (fragments joined), Devices' pings answered while
    receiving, a close frame is ConnectionLost naming the code."""
    ws, peer = pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(peer.serve)
        await ws.send_message(b"\x00\x01identify")
        await peer.send(Ping(payload=b"p"))
        await peer.send(BytesMessage(data=b"ab", message_finished=False))
        await peer.send(BytesMessage(data=b"cd", message_finished=True))
        await peer.send(BytesMessage(data=b"ef"))
        assert await ws.get_message() == b"abcd"
        assert await ws.get_message() == b"ef"
        with trio.fail_after(5):
            await peer.wait_until(lambda: peer.pongs >= 1 and peer.received)
        assert peer.received == [b"\x00\x01identify"]
        await peer.send(CloseConnection(code=1008, reason="refused"))
        with pytest.raises(ConnectionLost, match=r"closed by Devices \(1008\)"):
            await ws.get_message()
        await ws.aclose()
        nursery.cancel_scope.cancel()


async def test_pong_shortcut_only_between_frames():
    """An empty pong read on its own is noted without wsproto; the same two bytes as the
    payload of a frame whose header came in an earlier read are that frame's payload."""
    ws, peer = pair()
    ws.ping_sent = 1.0
    async with trio.open_nursery() as nursery:
        received: list[bytes] = []

        async def receive() -> None:
            received.append(await ws.get_message())

        nursery.start_soon(receive)
        await peer.stream.send_all(b"\x8a\x00")  # a pong
        await trio.testing.wait_all_tasks_blocked()
        assert ws.ping_sent is None
        await peer.stream.send_all(b"\x82\x02")  # a binary frame's header, length 2
        await trio.testing.wait_all_tasks_blocked()
        ws.ping_sent = 2.0
        await peer.stream.send_all(b"\x8a\x00")  # ... and its payload
        await trio.testing.wait_all_tasks_blocked()
        assert received == [b"\x8a\x00"] and ws.ping_sent == 2.0
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize(
    ("event", "error"),
    [
        (TextMessage(data="hello"), "text frame"),
        (BytesMessage(data=b"x" * 100), "over 64 bytes"),
    ],
)
async def test_peer_mistakes_are_protocol_errors(event, error):
    ws, peer = pair(max_message_size=64)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(peer.serve)
        await peer.send(event)
        with pytest.raises(ProtocolError, match=error):
            await ws.get_message()
        await ws.aclose()
        nursery.cancel_scope.cancel()


async def test_end_of_stream_is_connection_lost():
    ws, peer = pair()
    await peer.stream.aclose()
    with pytest.raises(ConnectionLost, match="1006"):
        await ws.get_message()
    with pytest.raises(ConnectionLost):
        await ws.send_message(b"late")
    await ws.aclose()

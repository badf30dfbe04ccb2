"""The Devices listener's lean sysclient websocket server (issue 14: the simulator's CPU).

A raw wsproto client over loopback plays the device side, so every frame is visible:
pings are answered by the connection's own task, a sysclient connection costs exactly one
task (trio-websocket spent a reader task and a nursery besides), closes follow RFC 6455.
"""

import contextlib
import urllib.parse

import pytest
import trio
import trio.testing
from trio_websocket import ConnectionClosed
from wsproto.connection import Connection, ConnectionType
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    Pong,
    Request,
    TextMessage,
)
from wsproto.handshake import H11Handshake

from provd.protocol.messages import GetProvisioningCode
from provd.protocol.sysclient import Identify, PasswordAssigned, SysclientDevice
from provd.sim import Direction, Party, Simulator, wsserver
from provd.transport.sysws import open_sysclient

from .helpers import devices_client, sim_config, sysclient_connect

MAC = "001565aabb01"


class RawClient:
    """A websocket client over one loopback TCP stream, frames sent and read by hand."""

    def __init__(self, stream: trio.SocketStream, ws: Connection) -> None:
        self.stream = stream
        self.ws = ws

    @classmethod
    async def open(cls, url: str) -> "RawClient":
        parts = urllib.parse.urlsplit(url)
        stream = await trio.open_tcp_stream(parts.hostname, parts.port)
        handshake = H11Handshake(ConnectionType.CLIENT)
        await stream.send_all(handshake.send(Request(host="x", target=parts.path)))
        while handshake.connection is None:
            handshake.receive_data(await stream.receive_some(4096))
            events = list(handshake.events())
            assert not events or isinstance(events[0], AcceptConnection), events
        return cls(stream, handshake.connection)

    async def send(self, event) -> None:
        await self.stream.send_all(self.ws.send(event))

    async def next_event(self):
        """The next websocket event, or None at the end of the stream."""
        while True:
            for event in self.ws.events():
                return event
            data = await self.stream.receive_some(4096)
            if not data:
                return None
            self.ws.receive_data(data)


def count_tasks() -> int:
    def below(task) -> int:
        return sum(1 + below(t) for n in task.child_nurseries for t in n.child_tasks)

    return below(trio.lowlevel.current_root_task())


async def test_a_sysclient_connection_costs_one_task(sim):
    """Connections held open, idle: the listener adds one task each and nothing else (no
    reader task, nursery or channel per connection as with trio-websocket)."""
    await trio.testing.wait_all_tasks_blocked()
    before = count_tasks()
    sockets = []
    with trio.fail_after(10):
        for _ in range(5):
            sockets.append(await open_sysclient(sim.addresses.sysclients_url))
        await sim.watch.wait_until(lambda: len(sim.devices_app._live) == 5)
        await trio.testing.wait_all_tasks_blocked()
        assert count_tasks() - before == 5
        for sock in sockets:
            await sock.aclose()
        await sim.watch.wait_until(lambda: not sim.devices_app._live)


async def test_pings_are_answered_with_their_payload(sim):
    """provd's keep-alive pings (empty) and any other ping are answered in order, and the
    connection goes on serving sysclient frames."""
    client = await RawClient.open(sim.addresses.sysclients_url)
    with trio.fail_after(10):
        for payload in (b"", b"abc", b""):
            await client.send(Ping(payload))
            event = await client.next_event()
            assert isinstance(event, Pong) and event.payload == payload
        device = SysclientDevice(Identify(id=MAC, product="provd", version="1"), password="x")
        await client.send(BytesMessage(device.start()))
        event = await client.next_event()  # unknown device: refused with a close
        assert isinstance(event, CloseConnection) and event.code == 1008


async def test_text_frame_refused(sim):
    client = await RawClient.open(sim.addresses.sysclients_url)
    with trio.fail_after(10):
        await client.send(TextMessage("{}"))
        event = await client.next_event()
        assert isinstance(event, CloseConnection) and event.code == 1008
        await client.send(event.response())
        assert await client.next_event() is None  # then the stream ends
        await sim.watch.wait_until(lambda: not sim.devices_app._live)


async def test_bad_framing_closes_with_protocol_error(sim):
    """An unmasked client frame breaks RFC 6455 section 5.1: close 1002."""
    client = await RawClient.open(sim.addresses.sysclients_url)
    with trio.fail_after(10):
        await client.stream.send_all(b"\x82\x01x")  # binary, FIN, not masked
        event = await client.next_event()
        assert isinstance(event, CloseConnection) and event.code == 1002
        await sim.watch.wait_until(lambda: not sim.devices_app._live)


async def test_oversized_message_closes_with_1009(sim, nursery):
    """A message over the 1 MiB cap: close 1009 (the server stops reading, so the rest of
    the sending may break)."""
    client = await RawClient.open(sim.addresses.sysclients_url)

    async def send_big():
        with contextlib.suppress(trio.BrokenResourceError):
            await client.send(BytesMessage(b"x" * (2 << 20)))

    nursery.start_soon(send_big)
    with trio.fail_after(10):
        event = await client.next_event()
        assert isinstance(event, CloseConnection) and event.code == 1009


async def test_restart_ends_a_peer_that_never_answers_the_close(sim, monkeypatch):
    """A restarting Devices sends close 1012 to every connection; one whose peer never
    answers is cut after the disconnect timeout, and restart() returns."""
    monkeypatch.setattr(wsserver, "DISCONNECT_TIMEOUT", 0.2)
    silent = await RawClient.open(sim.addresses.sysclients_url)
    with trio.fail_after(10):
        await sim.watch.wait_until(lambda: len(sim.devices_app._live) == 1)
        await sim.devices_app.restart()
        assert not sim.devices_app._live
        event = await silent.next_event()
        assert isinstance(event, CloseConnection) and event.code == 1012
        assert await silent.next_event() is None  # cut without our answer


@pytest.mark.parametrize("target", ["/nowhere", "/example.com/devices/sysclientsX"])
async def test_other_paths_still_reach_the_api_server(sim, target):
    """Anything but the sysclients path goes to trio-websocket, which answers an unknown
    path with 1008 as before."""
    parts = urllib.parse.urlsplit(sim.addresses.sysclients_url)
    client = await RawClient.open(f"ws://{parts.hostname}:{parts.port}{target}")
    with trio.fail_after(10):
        event = await client.next_event()
        assert isinstance(event, CloseConnection) and event.code == 1008


async def raw_upgrade(sim, head: bytes) -> bytes:
    """Send a request head by hand; the answer's head."""
    parts = urllib.parse.urlsplit(sim.addresses.sysclients_url)
    stream = await trio.open_tcp_stream(parts.hostname, parts.port)
    await stream.send_all(head)
    answer = b""
    while b"\r\n\r\n" not in answer:
        data = await stream.receive_some(4096)
        if not data:
            break
        answer += data
    await stream.aclose()
    return answer


KEY = b"dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 section 1.3's example


@pytest.mark.parametrize(
    "extra",
    [b"", b"Sec-WebSocket-Extensions: permessage-deflate\r\n", b"X-A: 1\r\nx-a: 2\r\n"],
)
async def test_upgrade_accepted_plain_or_through_wsproto(sim, extra):
    """A plain request (parsed directly) and others (wsproto's handshake) are accepted alike,
    with the RFC's accept token and no extension agreed."""
    head = (
        b"GET /example.com/devices/sysclients HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        b"Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: " + KEY + b"\r\n"
        b"Sec-WebSocket-Version: 13\r\n" + extra + b"\r\n"
    )
    with trio.fail_after(10):
        answer = await raw_upgrade(sim, head)
    assert answer.startswith(b"HTTP/1.1 101 ")
    assert b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in answer  # RFC 6455 section 1.3
    assert b"permessage-deflate" not in answer.lower()


async def test_bad_upgrade_refused_as_before(sim):
    """No Sec-WebSocket-Key: not parsed here, refused by the handshake as before."""
    head = (
        b"GET /example.com/devices/sysclients HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    with trio.fail_after(10):
        answer = await raw_upgrade(sim, head)
    assert answer.startswith(b"HTTP/1.1 400 ")


async def test_drop_after_a_sent_frame_cuts_what_follows(sim, nursery):
    """A fault dropping the connection after the sent PASSWORD: the device gets that frame,
    none of the configuration queued behind it (all of it one write otherwise), then 1001."""
    sim.faults.drop_after(Party.SYSCLIENT, "PASSWORD", direction=Direction.SENT)
    async with devices_client(sim) as conn:
        await conn.send(GetProvisioningCode(category="Phones", src="c"))
        result = await conn.receive()
    ident = Identify(id=MAC, product="provd", version="1")
    ws, device = await sysclient_connect(sim, nursery, ident, code=result.code)
    with trio.fail_after(10):
        events = device.receive(await ws.get_message())
        assert [type(e) for e in events] == [PasswordAssigned]
        with pytest.raises(ConnectionClosed) as closed:
            await ws.get_message()
    assert closed.value.reason.code == 1001
    assert sim.faults.dropped == [(Party.SYSCLIENT, "PASSWORD", Direction.SENT)]


async def test_connections_over_the_limit_are_closed(nursery, fake_provd, capsys):
    """devices.max_connections holds for the lean listener too: one over it is closed
    before its upgrade, with one warning; the held ones keep working."""
    sim = Simulator(sim_config(devices={"max_connections": 2}))
    sim.set_provd(fake_provd.url)
    await nursery.start(sim.run)
    with trio.fail_after(10):
        held = [await RawClient.open(sim.addresses.sysclients_url) for _ in range(2)]
        await sim.watch.wait_until(lambda: len(sim.devices_app._live) == 2)
        head = (
            b"GET /example.com/devices/sysclients HTTP/1.1\r\nHost: x\r\nUpgrade: websocket"
            b"\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + KEY + b"\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n"
        )
        assert await raw_upgrade(sim, head) == b""  # no answer: the stream just ends
        await held[0].send(Ping(b"x"))
        assert isinstance(await held[0].next_event(), Pong)
    assert capsys.readouterr().out.count("devices.connection_limit") == 1

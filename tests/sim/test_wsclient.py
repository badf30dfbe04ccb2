"""The simulator's lean AppWebsocket connections (issue 14): the Users service's client
sessions (wsclient) and the Devices API sessions (wsserver.AppServerWebsocket).

A trio-websocket server on loopback plays provd/Devices: text messages both ways, its pings
answered while the client reads, its close code reported as trio-websocket reports it, and
the connection costs the caller no task of its own.
"""

import trio
import trio.testing
import trio_websocket as tw

from provd.protocol.messages import (
    AppChallenge,
    AppChallengeResult,
    GetProvisioningCode,
    GetProvisioningCodeResult,
)
from provd.sim import Direction, Party, wsclient, wsserver
from provd.transport import AppWebsocket, ConnectionLost
from provd.transport import connect as transport_connect

from .helpers import devices_client


def count_tasks() -> int:
    def below(task) -> int:
        return 1 + sum(below(t) for n in task.child_nurseries for t in n.child_tasks)

    return below(trio.lowlevel.current_root_task())


async def start_server(nursery, handler) -> str:
    async def on_request(request: tw.WebSocketRequest) -> None:
        await handler(await request.accept())

    server = await nursery.start(tw.serve_websocket, on_request, "127.0.0.1", 0, None)
    return f"ws://127.0.0.1:{server.port}/app/path?x=1"


async def test_messages_pings_and_close_code(nursery):
    """Text both ways (path and query reach the server), a server ping is answered while
    the client reads, and the server's close code reaches the caller as ConnectionLost."""
    seen: dict[str, object] = {}

    async def handler(ws: tw.WebSocketConnection) -> None:
        seen["path"] = ws.path
        seen["first"] = await ws.get_message()
        with trio.fail_after(5):
            await ws.ping(b"p1")  # returns only once the pong came back
        seen["pinged"] = True
        await ws.send_message('{"mt":"AppChallengeResult","challenge":"c1"}')
        await ws.aclose(4001, "bye")

    url = await start_server(nursery, handler)
    with trio.fail_after(10):
        async with wsclient.connect(url) as ws:
            assert isinstance(ws, wsclient.ClientWebsocket)
            conn = AppWebsocket(ws)
            await conn.send(AppChallenge())
            answer = await conn.receive()
            assert isinstance(answer, AppChallengeResult) and answer.challenge == "c1"
            try:
                await conn.receive()
            except ConnectionLost as exc:
                assert exc.reason == "closed (4001)"
            else:
                raise AssertionError("no close")
    assert seen["path"] == "/app/path?x=1"
    assert seen["first"] == '{"mt":"AppChallenge"}'
    assert seen["pinged"] is True


async def test_a_client_connection_costs_no_task(nursery):
    """Connected and idle, the lean client adds no task (trio-websocket adds a reader task
    and a nursery per connection); closing from our side ends the server's session."""
    closed = trio.Event()

    async def handler(ws: tw.WebSocketConnection) -> None:
        try:
            while True:
                await ws.get_message()
        except tw.ConnectionClosed as exc:
            seen.append(exc.reason.code)
            closed.set()

    seen: list[int] = []
    url = await start_server(nursery, handler)

    async def added_tasks(connect) -> int:
        await trio.testing.wait_all_tasks_blocked()
        before = count_tasks()
        async with connect(url) as ws:
            await ws.send_message("hello")
            await trio.testing.wait_all_tasks_blocked()
            added = count_tasks() - before
        await trio.testing.wait_all_tasks_blocked()
        return added

    with trio.fail_after(10):
        lean = await added_tasks(wsclient.connect)
        await closed.wait()
        closed = trio.Event()
        heavy = await added_tasks(transport_connect)
        await closed.wait()
    # the server's tasks are the same both times; trio-websocket's client adds its reader
    assert lean < heavy
    assert seen == [1000, 1000]


async def test_refused_upgrade_and_dead_port(nursery):
    """A server that answers anything but 101, or no server: the error trio-websocket
    gives (the Users service reports either as 'cannot reach')."""

    async def http(stream: trio.SocketStream) -> None:
        await stream.receive_some(4096)
        await stream.send_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
        await stream.aclose()

    listeners = await nursery.start(trio.serve_tcp, http, 0)
    port = listeners[0].socket.getsockname()[1]
    with trio.fail_after(10):
        try:
            async with wsclient.connect(f"ws://127.0.0.1:{port}/x"):
                raise AssertionError("connected")
        except tw.ConnectionRejected as exc:
            assert exc.status_code == 404
        try:
            async with wsclient.connect("ws://127.0.0.1:1/gone"):
                raise AssertionError("connected")
        except OSError:
            pass


async def test_the_devices_api_is_served_lean(sim):
    """A Devices API session is an AppServerWebsocket (no trio-websocket reader task and
    channel): requests answered, a client ping answered, a client close ends the session."""
    with trio.fail_after(10):
        async with devices_client(sim) as conn:
            (api,) = sim.devices_app._live
            assert isinstance(api, wsserver.AppServerWebsocket)
            await conn.send(GetProvisioningCode(category="Phones", src="a"))
            answer = await conn.receive()
            assert isinstance(answer, GetProvisioningCodeResult) and answer.src == "a"
            await conn.ws.ping(b"k")  # returns once the pong came
        await sim.watch.wait_until(lambda: not sim.devices_app._live)
    assert api.close_code == 1000


async def test_devices_api_drop_after_sent_ends_the_session_at_once(sim):
    """A drop after a sent answer closes from the writer task (not the reader): the client
    gets the answer, then 1001, and the session ends without waiting out the server's
    close deadline (the writer must not wait for its own handler to end)."""
    sim.faults.drop_after(Party.DEVICES_API, "GetProvisioningCodeResult", direction=Direction.SENT)
    async with devices_client(sim) as conn:
        with trio.fail_after(10):
            await conn.send(GetProvisioningCode(category="Phones", src="b"))
            assert isinstance(await conn.receive(), GetProvisioningCodeResult)
            try:
                await conn.receive()
            except ConnectionLost as exc:
                assert exc.reason == "closed (1001)"
            else:
                raise AssertionError("not closed")
        with trio.fail_after(wsserver.DISCONNECT_TIMEOUT * 0.9):
            await sim.watch.wait_until(lambda: not sim.devices_app._live)

"""Helpers that play provd's side against the simulator, over real loopback sockets.

Each test plays the counterpart with the protocol core's own pieces: :class:`FakeProvd` is
an AppWebsocket server built from ``transport.serve`` + ``accept_login``; sysclient tests
drive ``SysclientDevice``; Devices API tests log in with ``login_with_password`` or
``login_as_service``. No test sleeps: waits are on events, ``Watch`` predicates or the
peer's next message, under a ``fail_after`` hang guard.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import attrs
import trio

from provd.protocol import LoginRefused, ProtocolError
from provd.protocol.login import Identity, ServerLogin
from provd.protocol.messages import AppInfo, Message, app_info_result
from provd.protocol.sysclient import Identify, SysclientDevice
from provd.sim import SimConfig, Simulator
from provd.transport import AppWebsocket, ConnectionLost, accept_login, connect, serve

PROVD_PASSWORD = "provd-test-pw"
DEVICES_PASSWORD = "devices-test-pw"
ADMIN_PASSWORD = "admin-Pwd-42"
TURN_PASSWORD = "turn-Secret-1"

HANG = 10  # seconds: a hang guard, never a synchronisation device


def sim_config(**overrides) -> SimConfig:
    """A small installation: two domains, three categories in the first."""
    data = {
        "provd": {"url": None, "password": PROVD_PASSWORD},
        "pbx": {
            "reconnect_initial": 0.01,
            "reconnect_cap": 0.04,
            "users": [
                {"sip": "alice", "num": "201", "dn": "Alice", "email": "a@x.org", "guid": "g-alice"}
            ],
            "node": {"name": "node-a", "country_code": "49", "prefix_intl": "00"},
        },
        "devices": {
            "password": DEVICES_PASSWORD,
            "categories_per_result": 2,
            "tunnel_chunk": 7,
            "domains": [
                {
                    "name": "example.com",
                    "admin_password": ADMIN_PASSWORD,
                    "categories": [
                        {
                            "name": "Phones",
                            "stun_server": "stun.example.com",
                            "turn_server": "turn.example.com",
                            "turn_user": "tu",
                            "turn_password": TURN_PASSWORD,
                            "extra": [{"type": "VENDOR_X", "value": 1}],
                        },
                        {"name": "Rollout", "coder": "G711A"},
                        {"name": "Gateways", "type": "GW"},
                    ],
                },
                {"name": "other.org", "categories": [{"name": "Phones"}]},
            ],
        },
    }
    for section, values in overrides.items():
        if isinstance(values, dict):
            data.setdefault(section, {}).update(values)
        else:
            data[section] = values
    return SimConfig.from_mapping(data)


class FakeClock:
    """UNIX time the test moves by hand."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@attrs.define(eq=False)
class Peer:
    """One accepted connection to the fake provd; the handler keeps it open until released."""

    conn: AppWebsocket
    login: ServerLogin
    released: trio.Event = attrs.field(factory=trio.Event)

    @property
    def session_key(self) -> str:
        assert self.login.session_key is not None
        return self.login.session_key

    async def next(self, *, skip: tuple[type, ...] = ()) -> Message:
        """The next message, skipping the given kinds."""
        while True:
            msg = await self.conn.receive()
            if not isinstance(msg, skip):
                return msg


class FakeProvd:
    """provd's app-service endpoint as a test double: accepts logins with ``password``."""

    def __init__(self, password: str = PROVD_PASSWORD) -> None:
        self.password = password
        self.refused = 0
        self.url = ""
        self._send, self._receive = trio.open_memory_channel[Peer](32)

    async def handler(self, ws) -> None:
        conn = AppWebsocket(ws)
        try:
            login = await accept_login(conn, self.password)
        except (LoginRefused, ProtocolError, ConnectionLost):
            self.refused += 1
            await conn.close(1008)
            return
        peer = Peer(conn, login)
        await self._send.send(peer)
        await peer.released.wait()

    async def next_peer(self) -> Peer:
        return await self._receive.receive()

    async def start(self, nursery: trio.Nursery) -> FakeProvd:
        server = await nursery.start(serve, self.handler, "127.0.0.1:0")
        self.url = f"ws://127.0.0.1:{server.port}/provd"
        return self


async def pbx_handshake(peer: Peer, *, title: str = "provd") -> None:
    """Play provd's part after the PBX logged in: PbxInfo arrives, AppInfo is answered."""
    await peer.next()  # PbxInfo
    app_info = await peer.next()
    assert isinstance(app_info, AppInfo)
    await peer.conn.send(app_info_result(app_info, title=title))


@contextlib.asynccontextmanager
async def devices_client(
    sim: Simulator, *, domain: str = "example.com", password: str = DEVICES_PASSWORD
) -> AsyncIterator[AppWebsocket]:
    """A Devices API session logged in with the instance password."""
    from provd.transport import login_with_password

    assert sim.addresses is not None
    async with connect(sim.addresses.devices_url) as ws:
        conn = AppWebsocket(ws)
        await login_with_password(
            conn, Identity(app="devices-api", domain=domain, sip="provd", dn="provd"), password
        )
        yield conn


async def sysclient_connect(
    sim: Simulator,
    nursery: trio.Nursery,
    ident: Identify,
    *,
    code: str | None = None,
    password: str | None = None,
):
    """Open a sysclient connection and send the first identify; return ``(ws, device)``."""
    device = SysclientDevice(ident, code=code, password=password)
    assert sim.addresses is not None
    ws = await _open_ws(nursery, sim.addresses.sysclients_url)
    await ws.send_message(device.start())
    return ws, device


async def _open_ws(nursery: trio.Nursery, url: str):
    """A raw client websocket kept open by a task in ``nursery``."""

    async def hold(task_status=trio.TASK_STATUS_IGNORED):
        async with connect(url) as ws:
            task_status.started(ws)
            await trio.sleep_forever()

    return await nursery.start(hold)


async def device_events(ws, device: SysclientDevice, until) -> list:
    """Receive frames, feeding ``device`` and sending its answers, until ``until(events)``."""
    events: list = []
    while not until(events):
        data = await ws.get_message()
        events += device.receive(data)
        for out in device.outgoing():
            await ws.send_message(out)
    return events

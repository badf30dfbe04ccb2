"""Issue 14: the frames Devices sends in one segment are handled together.

A first registration's password and initial configuration items come in one burst; each
item was its own store call and commit (four commits per phone in the bench). A raw Devices
on loopback (the simulator's websocket server, one write for several frames) sends such
bursts to an in-process daemon whose store connection is traced.
"""

import trio

from provd.actors.daemon import Daemon
from provd.protocol.sysclient import AdminFrame, AdminType, decode_frame, encode_frame
from provd.sim.wsserver import serve
from provd.store.database import Database

from ..actors.conftest import make_config

MAC = "0004f2000001"
DEVICE_PASSWORD = "Device-Pa55word-0001"


def _password() -> bytes:
    return encode_frame(AdminFrame(AdminType.PASSWORD, {"password": DEVICE_PASSWORD}))


def _items() -> list[bytes]:
    bodies = [
        {"config": {"type": "PHONE", "name": "x"}},
        {"config": {"type": "NTP", "server": "pool.ntp.org"}},
        {"config": {"type": "MEDIA", "codecs": "G722"}, "last": True},
    ]
    return [encode_frame(AdminFrame(AdminType.CONFIG, body)) for body in bodies]


async def _run(tmp_path, nursery, burst: list[bytes]) -> tuple[Daemon, list[str]]:
    """A pending phone identifies with its code; Devices answers with ``burst`` in one
    write, then waits for provd to close. Returns the daemon and the traced statements."""
    db = Database(str(tmp_path / "provd.db"))
    db.upsert_phone(
        mac=MAC, code="123456", hwid=MAC, usename="u", cn="c", password="p", domain="d", dns="x"
    )
    db.close()
    traced = trio.Event()

    async def devices(ws):
        frame = decode_frame(await ws.get_message())  # the identify with the code
        assert isinstance(frame, AdminFrame) and frame.type == AdminType.IDENTIFY
        await traced.wait()
        await ws.send_messages(burst)  # one write: the frames arrive in one read
        while True:
            await ws.get_message()  # until provd closes (the simulator's errors end it)

    async def nothing(ws):
        await ws.aclose()

    server = await nursery.start(
        lambda task_status: serve(
            devices,
            nothing,
            "127.0.0.1:0",
            lean_path="/example.com/devices/sysclients",
            task_status=task_status,
        )
    )
    url = f"ws://127.0.0.1:{server.port}/example.com/devices/"
    config = make_config(
        tmp_path,
        provisioning={"devices_url": url, "ping_interval": 300.0, "admit_quiet": 30.0},
    )
    daemon = Daemon(config)
    statements: list[str] = []
    await nursery.start(daemon.run)
    daemon.store._db.db.conn.set_trace_callback(statements.append)
    traced.set()
    return daemon, statements


async def test_a_burst_of_items_is_one_commit(tmp_path, nursery):
    """Password and three items in one segment: the items are stored in one transaction
    (before: one each), and the phone is provisioned with all three."""
    daemon, statements = await _run(tmp_path, nursery, [_password(), *_items()])
    with trio.fail_after(10):
        while (record := daemon.directory.get(MAC)) is None or record.state != "provisioned":
            await trio.testing.wait_all_tasks_blocked()
    assert set(record.config) == {"PHONE", "NTP", "MEDIA"}
    assert record.sysclient_password == DEVICE_PASSWORD
    transactions: list[list[str]] = []
    for sql in statements:
        if sql.startswith("BEGIN"):
            transactions.append([])
        elif transactions:
            transactions[-1].append(sql)
    with_items = [t for t in transactions if any("INTO config_items" in s for s in t)]
    assert len(with_items) == 1, with_items
    assert sum("INTO config_items" in s for s in with_items[0]) == 3
    daemon.shutdown()


async def test_a_bad_frame_in_a_burst_loses_nothing_before_it(tmp_path, nursery):
    """The frames before a malformed one in the same burst are handled as if they had
    come alone: the device password Devices assigned is committed, then the connection
    ends over the bad frame (the code is answered: the next connection uses the password)."""
    bad = b"\x09garbage"  # no such frame kind
    daemon, _ = await _run(
        tmp_path,
        nursery,
        [_password(), bad],
    )
    with trio.fail_after(10):
        while (record := daemon.directory.get(MAC)) is None or not record.sysclient_password:
            await trio.testing.wait_all_tasks_blocked()
    assert record.sysclient_password == DEVICE_PASSWORD
    assert not record.code_pending
    daemon.shutdown()

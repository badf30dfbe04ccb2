"""The handshake cap: a restart with many phones opens at most max_handshakes at once."""

import trio

from provd.actors.daemon import Daemon
from provd.store.database import Database
from provd.transport import serve

from .conftest import make_config


async def test_at_most_max_handshakes_in_flight(tmp_path, nursery):
    """With 10 stored phones and a cap of 3, a silent Devices sees 3 connections, then more."""
    db = Database(str(tmp_path / "provd.db"))
    for i in range(10):
        mac = f"0004f2{i:06x}"
        db.upsert_phone(
            mac=mac, code="1", hwid=mac, usename="u", cn="c", password="p", domain="d", dns="x"
        )
        db.set_sysclient_password(mac, f"{i:032d}", "1")  # code "1" answered
    db.close()

    open_now: list = []
    release = trio.Event()

    async def silent_devices(ws):
        open_now.append(ws)
        await ws.get_message()  # the identify; then say nothing, like a stuck Devices
        await release.wait()
        await ws.aclose()

    server = await nursery.start(serve, silent_devices, "127.0.0.1:0")
    url = f"ws://127.0.0.1:{server.port}/example.com/devices/"
    config = make_config(
        tmp_path, provisioning={"max_handshakes": 3, "devices_url": url, "handshake_timeout": 30.0}
    )
    daemon = Daemon(config)
    await nursery.start(daemon.run)
    with trio.fail_after(10):
        while len(open_now) < 3:
            await trio.testing.wait_all_tasks_blocked()
        await trio.testing.wait_all_tasks_blocked(cushion=0.05)
        assert len(open_now) == 3
        release.set()
        while len(open_now) < 6:
            await trio.testing.wait_all_tasks_blocked()
    daemon.shutdown()

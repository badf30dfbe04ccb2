"""When the PBX announces a new Devices URL, connected phones move to it."""

import trio

from provd.actors.daemon import Daemon
from provd.store.database import Database
from provd.transport import serve

from .conftest import make_config


async def test_phone_reconnects_to_the_new_devices_url(tmp_path, nursery):
    """A phone connected to Devices A leaves it and identifies at B once B is announced."""
    db = Database(str(tmp_path / "provd.db"))
    db.upsert_phone(
        mac="0004f2000001",
        code="1",
        hwid="h",
        usename="u",
        cn="c",
        password="p",
        domain="d",
        dns="x",
    )
    db.set_sysclient_password("0004f2000001", "0" * 32)
    db.close()

    seen = {"a": [], "b": []}
    arrived = {"a": trio.Event(), "b": trio.Event()}
    closed_a = trio.Event()

    def devices(name):
        async def handler(ws):
            seen[name].append(await ws.get_message())  # the identify
            arrived[name].set()
            try:
                await ws.get_message()
            except Exception:
                if name == "a":
                    closed_a.set()

        return handler

    server_a = await nursery.start(serve, devices("a"), "127.0.0.1:0")
    server_b = await nursery.start(serve, devices("b"), "127.0.0.1:0")
    url_a = f"ws://127.0.0.1:{server_a.port}/a/devices/"
    url_b = f"ws://127.0.0.1:{server_b.port}/b/devices/"
    daemon = Daemon(
        make_config(tmp_path, provisioning={"devices_url": url_a, "handshake_timeout": 30.0})
    )
    await nursery.start(daemon.run)
    with trio.fail_after(10):
        await arrived["a"].wait()
        daemon.locator.set(url_b, "devices-b")
        await closed_a.wait()
        await arrived["b"].wait()
    assert len(seen["a"]) == 1 and len(seen["b"]) == 1
    assert seen["b"][0][:3] == b"\x01\x00\x00"  # an identify frame
    daemon.shutdown()

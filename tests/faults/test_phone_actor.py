"""Issue 8 hardening of the phone actor, each finding reproduced against the real
``provd run`` process: the daemon stays up, the stored data stays intact, nothing leaks
(one actor per phone, file descriptors back to where they were), and the phone comes back
once the fault is gone."""

import functools
import sqlite3

import httpx
import trio

from provd.phones import Vendor
from provd.phones.examples import phone_request
from provd.sim import Direction, Party, Phone

from ..e2e.harness import cli, sim_config
from ..e2e.sysclient_install import (
    FAST,
    healthy,
    install,
    items,
    open_fds,
    rows,
    status,
    wait_lines,
)

ALICE = Phone(mac="00:15:65:00:00:41", user="alice", cn="Alice", password="Alice-Pwd-f1")
#: More failures in a row than the old supervisor's limit (5 restarts within 60 s).
MANY = 8


async def provisioned(sim, provd, phone=ALICE):
    (result,) = await sim.provision([phone])
    assert result.ok, result
    await sim.wait_online(phone.mac)
    return rows(provd)[phone.mac]


async def back_online(sim, provd, mac, before):
    """The phone is connected again with its credential intact; nothing leaked."""
    await sim.wait_online(mac)
    await provd.wait_for(f"event=sysclient.authenticated .*mac={mac}")
    row = rows(provd)[mac]
    assert row["sysclient_password"] == before["sysclient_password"] == sim.sysclient_password(mac)
    assert row["state"] == "provisioned" and row["password"] == before["password"]
    await healthy(provd, phones=1)


async def test_invalid_devices_url_never_ends_the_actor(tmp_path, nursery):
    """Found 8.4: a ServicesInfo with an http:// Devices URL is refused before any actor
    sees it (the phone stays online on the good URL); a ws:// URL nobody answers is a
    connection failure, retried with back-off and shown by `phones show`/`status`; the
    right URL brings the phone back at once."""
    with trio.fail_after(90):
        sim, provd = await install(nursery, tmp_path)
        before = await provisioned(sim, provd)
        fds = open_fds(provd)
        mark = len(provd.lines)
        sim.move_devices("http://127.0.0.1:1/example.com/devices/")
        await provd.wait_for("event=pbx.devices_url_refused", after=mark)
        answer = await status(provd, "actor", mac=ALICE.mac)
        assert answer["state"] == "connected", answer
        assert rows(provd)[ALICE.mac]["online"] == 1
        sim.move_devices("ws://127.0.0.1:1/example.com/devices/")  # nobody listens there
        # One outage warning (each retry is then logged at debug), and the actor retries.
        await provd.wait_for("event=devices.unreachable", after=mark)
        answer = await status(provd, "actor", mac=ALICE.mac)
        assert answer["state"] in ("backoff", "connecting", "handshake") and answer["error"]
        shown = await trio.to_thread.run_sync(
            functools.partial(cli, "phones", "show", ALICE.mac, provd=provd)
        )
        assert shown.returncode == 0 and "127.0.0.1:1" in shown.stdout, shown
        overview = await trio.to_thread.run_sync(functools.partial(cli, "status", provd=provd))
        assert f"{ALICE.mac.replace(':', '')}" in overview.stdout, overview.stdout
        sim.move_devices(sim.addresses.devices_url)
        await back_online(sim, provd, ALICE.mac, before)
        assert open_fds(provd) <= fds + 2
        assert await provd.stop() == 0


async def test_long_seeds_are_protocol_errors_not_crashes(tmp_path, nursery):
    """Found 8.4: a 0x0003 seed or MEDIA turnSeed making the RC4 key longer than 256
    bytes: the connection is dropped (0x0003) or the TURN password left out (MEDIA); the
    actor keeps trying and the phone's file is still served."""
    with trio.fail_after(90):
        sim, provd = await install(nursery, tmp_path, devices={"after_digest": "resend"})
        before = await provisioned(sim, provd)
        sim.faults.seed_length(300)
        mark = len(provd.lines)
        await sim.faults.change_category("Phones", turn_password="Turn-New-f2")
        await provd.wait_for("event=sysclient.config_item type=MEDIA", after=mark)
        request = phone_request(Vendor.YEALINK, ALICE.mac)
        async with httpx.AsyncClient(base_url=provd.phones_url) as client:
            response = await client.get(request.path, headers={"User-Agent": request.user_agent})
        assert response.status_code == 200 and ALICE.password in response.text
        assert "Turn-New-f2" not in response.text
        await provd.wait_for("event=phone.turn_password_undecryptable")
        await sim.faults.restart_devices()  # every reconnect now gets a long 0x0003 seed
        await wait_lines(provd, "event=sysclient.disconnected reason=.RC4 key of", MANY)
        sim.faults.seed_length(None)
        await back_online(sim, provd, ALICE.mac, before)
        assert rows(provd)[ALICE.mac]["admin_password"] == "Admin-Pwd-e2e-42"
        assert await provd.stop() == 0


async def test_devices_closing_while_provd_sends(tmp_path, nursery):
    """Found 8.4: Devices closes right after its challenge, so provd's answer meets a
    closed websocket (trio-websocket's ConnectionClosed): a lost connection, not a crash."""
    with trio.fail_after(90):
        sim, provd = await install(nursery, tmp_path)
        before = await provisioned(sim, provd)
        sim.faults.drop_after(Party.SYSCLIENT, "CHALLENGE", times=MANY, direction=Direction.SENT)
        await sim.faults.restart_devices()
        await wait_lines(provd, "event=sysclient.disconnected reason=.closed", MANY)
        await back_online(sim, provd, ALICE.mac, before)
        assert len(sim.faults.dropped) == MANY
        assert await provd.stop() == 0


async def test_store_error_is_not_a_crash(tmp_path, nursery):
    """Found 8.4: a failing store write (here: a trigger refusing the phone's "online"
    update, which the store writes in batches since issue 14) is logged with the path and
    tried again; the connection and the actor stay, and the flag is right once the store
    takes writes again."""
    with trio.fail_after(90):
        sim, provd = await install(nursery, tmp_path)
        before = await provisioned(sim, provd)
        conn = sqlite3.connect(provd.workdir / "provd.db", timeout=10)
        conn.execute(
            "CREATE TRIGGER refuse_online BEFORE UPDATE OF online ON phones"
            " WHEN NEW.online = 1 BEGIN SELECT RAISE(ABORT, 'disk trouble'); END"
        )
        conn.commit()
        await sim.faults.restart_devices()
        await wait_lines(provd, "event=store.operation_failed .*disk trouble", 2)  # retried
        await sim.wait_online(ALICE.mac)
        assert "sysclient.store_error" not in provd.output()
        conn.execute("DROP TRIGGER refuse_online")
        conn.commit()
        conn.close()
        await provd.wait_for("event=store.online_flags_written")  # the next retry
        assert rows(provd)[ALICE.mac]["online"] == 1
        await back_online(sim, provd, ALICE.mac, before)
        assert await provd.stop() == 0


class FreezableProxy:
    """A TCP relay in front of Devices; :meth:`freeze` stops forwarding on every open
    connection (a half-open peer: the host lost power), new connections still pass."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.listen_port = 0
        self.frozen: list[trio.Event] = []

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.listen_port = listeners[0].socket.getsockname()[1]
        task_status.started()
        await trio.serve_listeners(self._handle, listeners)

    def freeze(self) -> None:
        for event in self.frozen:
            event.set()

    async def _handle(self, client: trio.SocketStream) -> None:
        frozen = trio.Event()
        self.frozen.append(frozen)
        upstream = await trio.open_tcp_stream("127.0.0.1", self.port)
        async with client, upstream, trio.open_nursery() as nursery:
            nursery.start_soon(self._pump, client, upstream, frozen, nursery)
            nursery.start_soon(self._pump, upstream, client, frozen, nursery)

    async def _pump(self, src, dst, frozen: trio.Event, nursery) -> None:
        try:
            async for chunk in src:
                if frozen.is_set():
                    await trio.sleep_forever()  # swallowed: no pong, no close
                await dst.send_all(chunk)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        nursery.cancel_scope.cancel()


async def test_half_open_devices_noticed_by_ping(tmp_path, nursery):
    """Found 8.13: Devices stops answering (half-open TCP); provd's websocket ping gets
    no pong within ping_timeout, the connection ends and the phone reconnects."""
    with trio.fail_after(90):
        sim, provd = await install(
            nursery, tmp_path, provisioning=FAST + "ping_interval = 0.3\nping_timeout = 0.5\n"
        )
        devices_port = int(sim.addresses.devices_url.split(":")[2].split("/")[0])
        proxy = FreezableProxy(devices_port)
        await nursery.start(proxy.run)
        sim.move_devices(f"ws://127.0.0.1:{proxy.listen_port}/example.com/devices/")
        before = await provisioned(sim, provd)
        await provd.wait_for("event=sysclient.authenticated|event=phone.provisioned")
        mark = len(provd.lines)
        proxy.freeze()
        await provd.wait_for("no pong from Devices within 0.5 s", after=mark)
        await provd.wait_for("event=sysclient.authenticated", after=mark)
        await back_online(sim, provd, ALICE.mac, before)
        assert await provd.stop() == 0


async def test_reprovisioning_replaces_items_refusal_keeps_password(tmp_path, nursery):
    """Found 8.14 and 9.2: a new code's password replaces the old registration's items
    (an item the new category lacks is gone); a refused new code keeps the working
    password, so after a restart the phone still gets in through the challenge."""
    config = sim_config(
        devices={
            "domains": [
                {
                    "name": "example.com",
                    "categories": [
                        {
                            "name": "Phones",
                            "stun_server": "stun.old.example.com:3478",
                            "extra": [{"type": "DIRECTORY", "url": "ldap://old.example.com"}],
                        },
                        {"name": "Phones-B", "stun_server": "stun.new.example.com:3478"},
                    ],
                }
            ]
        }
    )
    with trio.fail_after(90):
        sim, provd = await install(nursery, tmp_path, config=config)
        first = await provisioned(sim, provd)
        assert "DIRECTORY" in items(provd, ALICE.mac)
        moved = Phone(
            mac=ALICE.mac, user="alice", cn="Alice", password="Alice-Pwd-f2", category="Phones-B"
        )
        (result,) = await sim.provision([moved])
        assert result.ok, result
        now = items(provd, ALICE.mac)
        assert "DIRECTORY" not in now, now
        assert now["MEDIA"]["stunServer"] == "stun.new.example.com:3478"
        second = rows(provd)[ALICE.mac]
        assert second["sysclient_password"] != first["sysclient_password"]
        assert second["sysclient_password"] == sim.sysclient_password(ALICE.mac)

        refused = Phone(
            mac=ALICE.mac, user="alice", cn="Alice", password="Alice-Pwd-f2", code="999999999999"
        )
        (result,) = await sim.provision([refused])
        assert result.outcome == "error", result
        row = rows(provd)[ALICE.mac]
        assert row["sysclient_password"] == second["sysclient_password"]
        assert row["state"] == "failed" and "provisioning code" in row["error"]
        assert await provd.stop() == 0
        await sim.wait_online(ALICE.mac, online=False)
        mark = len(provd.lines)
        await provd.start(nursery)
        await sim.wait_online(ALICE.mac)
        await provd.wait_for(f"event=sysclient.authenticated .*mac={ALICE.mac}", after=mark)
        assert len(sim.passwords_issued(ALICE.mac)) == 2  # no third: the old one still works
        assert await provd.stop() == 0


async def test_first_provisioning_ahead_of_a_reconnect_storm(tmp_path, nursery):
    """Found 8.14: after a restart, 20 phones queue for one handshake slot against a slow
    Devices; a phone provisioned now goes ahead of the queue instead of waiting it out."""
    storm = [
        Phone(mac=f"00:15:65:00:01:{i:02x}", user=f"u{i}", password=f"Pwd-storm-{i}")
        for i in range(20)
    ]
    with trio.fail_after(120):
        sim, provd = await install(nursery, tmp_path)
        results = await sim.provision(storm)
        assert all(r.ok for r in results), results
        assert await provd.stop() == 0
        for phone in storm:
            await sim.wait_online(phone.mac, online=False)
        provd.provisioning = FAST + "max_handshakes = 1\ncode_handshakes = 0\n"
        sim.faults.delay(Party.SYSCLIENT, 0.3)  # each Devices answer takes 0.3 s
        await provd.start(nursery)
        await provd.wait_for("event=sysclient.authenticated")  # the storm is under way
        (result,) = await sim.provision([ALICE])
        assert result.ok, result
        back = sum(1 for phone in storm if phone.mac.replace(":", "") in sim.online())
        assert back <= 10, f"{back} of 20 reconnects went first"
        sim.faults.delay(Party.SYSCLIENT, 0)
        for phone in storm:
            await sim.wait_online(phone.mac)
        await healthy(provd, phones=21)
        assert await provd.stop() == 0

"""The simulated Users service against a test playing provd (spec section 4), over loopback."""

import contextlib

import structlog.testing
import trio
import trio.testing

from provd.protocol import crypto
from provd.protocol.messages import ProvisioningPhone, ProvisioningPhoneResult
from provd.protocol.sysclient import ConfigReceived, Identify
from provd.sim import Direction, Party, Phone
from provd.transport import ConnectionLost

from .helpers import HANG, device_events, pbx_handshake, sysclient_connect

PHONES = [
    Phone(mac="00:15:65:00:00:01", user="alice", cn="Alice", password="Pä-1"),
    Phone(mac="00:15:65:00:00:02", user="bob", cn="Bob", password="pw-2", category="Rollout"),
    Phone(mac="00:15:65:00:00:03", user="carol", password="pw-3"),
]


async def start(sim, fake_provd, nursery, phones, **kwargs):
    """PBX handshake, then run ``sim.provision`` in the background; returns (peer, box)."""
    pbx = await fake_provd.next_peer()
    await pbx_handshake(pbx)
    box: dict = {}
    done = trio.Event()

    async def provision():
        box["results"] = await sim.provision(phones, **kwargs)
        done.set()

    nursery.start_soon(provision)
    box["done"] = done
    return await fake_provd.next_peer(), box


async def test_one_phone_at_a_time(sim, fake_provd, nursery):
    """The next ProvisioningPhone is not sent before the previous result arrived."""
    order: list[tuple[str, str]] = []
    inbox_send, inbox = trio.open_memory_channel(10)
    with trio.fail_after(HANG):
        users, box = await start(sim, fake_provd, nursery, PHONES)

        async def reader():
            with contextlib.suppress(ConnectionLost):  # the Users service closes at the end
                while True:
                    msg = await users.next()
                    order.append(("received", msg.mac))
                    await inbox_send.send(msg)

        nursery.start_soon(reader)
        for _ in PHONES:
            msg = await inbox.receive()
            # Everything that could run has run: a second phone would be in `order` now.
            await trio.testing.wait_all_tasks_blocked(cushion=0.02)
            order.append(("answered", msg.mac))
            await users.conn.send(msg.reply(ProvisioningPhoneResult, result="ok"))
        await box["done"].wait()
    macs = [p.mac for p in PHONES]
    assert order == [(kind, mac) for mac in macs for kind in ("received", "answered")]
    assert [r.outcome for r in box["results"]] == ["ok"] * 3
    assert all(r.latency > 0 for r in box["results"])


async def test_phone_message_contents(sim, fake_provd, nursery):
    """Fields as on the wire: fresh numeric seed1, password decrypts with this connection's
    session key, src set, hwid from the MAC, domain/dns from the PBX, code from Devices."""
    with trio.fail_after(HANG):
        users, box = await start(sim, fake_provd, nursery, PHONES[:1])
        msg = await users.next()
        await users.conn.send(msg.reply(ProvisioningPhoneResult, result="ok"))
        await box["done"].wait()
    login = users.login.login
    assert (login.app, login.sip) == ("provd@example.com", "users")
    assert isinstance(msg, ProvisioningPhone) and msg.src
    assert msg.seed1.isdigit() and len(msg.seed1) == 23
    assert crypto.app_decrypt(msg.seed1, users.session_key, msg.password) == "Pä-1"
    assert (msg.mac, msg.hwid, msg.usename, msg.cn) == (
        "001565000001",
        "001565000001",
        "alice",
        "Alice",
    )
    assert (msg.domain, msg.dns) == ("example.com", "pbx.example.com")
    (code,) = sim.codes()
    assert msg.code == code.code and code.sip == "alice"


async def test_errors_and_timeouts_reported_per_phone(sim, fake_provd, nursery):
    """An error answer and a missing answer are reported; the run goes on."""
    with trio.fail_after(HANG):
        users, box = await start(sim, fake_provd, nursery, PHONES[:3], phone_timeout=0.2)
        first = await users.next()
        await users.conn.send(
            first.reply(ProvisioningPhoneResult, result="error", error="bad code")
        )
        await users.next()  # second: never answered
        third = await users.next()
        await users.conn.send(third.reply(ProvisioningPhoneResult, result="ok"))
        await box["done"].wait()
    outcomes = [(r.outcome, r.error) for r in box["results"]]
    assert outcomes[0] == ("error", "bad code")
    assert outcomes[1][0] == "timeout"
    assert outcomes[2] == ("ok", None)


async def test_given_code_sent_verbatim(sim, fake_provd, nursery):
    """A phone with its own code (e.g. an invalid one) skips Devices and sends that code."""
    phone = Phone(mac="001565000009", user="eve", password="x", code="000000000000")
    with trio.fail_after(HANG):
        users, box = await start(sim, fake_provd, nursery, [phone])
        msg = await users.next()
        await users.conn.send(
            msg.reply(ProvisioningPhoneResult, result="error", error="code refused")
        )
        await box["done"].wait()
    assert msg.code == "000000000000" and sim.codes() == []
    assert box["results"][0].outcome == "error"


async def test_devices_error_reported_without_asking_provd(sim, fake_provd, nursery):
    """An unknown category fails at Devices; provd only sees the next phone."""
    phones = [Phone(mac="001565000007", user="x", category="Nope"), PHONES[0]]
    with trio.fail_after(HANG):
        users, box = await start(sim, fake_provd, nursery, phones)
        msg = await users.next()
        await users.conn.send(msg.reply(ProvisioningPhoneResult, result="ok"))
        await box["done"].wait()
    assert msg.mac == PHONES[0].mac
    assert box["results"][0].outcome == "error" and "unknown category" in box["results"][0].error


async def test_drop_fault_reconnects_for_next_phone(sim, fake_provd, nursery):
    """Dropping the Users connection after a ProvisioningPhone fails that phone only."""
    sim.faults.drop_after(Party.USERS, "ProvisioningPhone", direction=Direction.SENT)
    with trio.fail_after(HANG):
        _users, box = await start(sim, fake_provd, nursery, PHONES[:2])
        again = await fake_provd.next_peer()
        msg = await again.next()
        await again.conn.send(msg.reply(ProvisioningPhoneResult, result="ok"))
        await box["done"].wait()
    assert [r.outcome for r in box["results"]] == ["error", "ok"]
    assert msg.mac == PHONES[1].mac


async def test_end_to_end_with_a_device_playing_provd(sim, fake_provd, nursery):
    """A test provd that registers the phone at Devices with the code before answering ok:
    the device lands in the phone's category and shows online."""
    with trio.fail_after(HANG):
        users, box = await start(sim, fake_provd, nursery, PHONES[1:2])
        msg = await users.next()
        ws, device = await sysclient_connect(
            sim, nursery, Identify(id=msg.mac, product="provd", version="1"), code=msg.code
        )
        events = await device_events(
            ws,
            device,
            lambda ev: any(isinstance(e, ConfigReceived) and e.completes_initial for e in ev),
        )
        await users.conn.send(msg.reply(ProvisioningPhoneResult, result="ok"))
        await box["done"].wait()
    assert box["results"][0].ok
    phone = next(e.item for e in events if isinstance(e, ConfigReceived))
    assert phone.item["coder"] == "G711A"  # the Rollout category
    assert sim.device(msg.mac).online


async def test_no_secret_in_logs(sim, fake_provd, nursery):
    """A full run (phone, device, passthrough-free) logs no password, key or digest."""
    with structlog.testing.capture_logs() as logs, trio.fail_after(HANG):
        users, box = await start(sim, fake_provd, nursery, PHONES[:1])
        msg = await users.next()
        ws, device = await sysclient_connect(
            sim, nursery, Identify(id=msg.mac, product="provd", version="1"), code=msg.code
        )
        await device_events(
            ws,
            device,
            lambda ev: any(isinstance(e, ConfigReceived) and e.completes_initial for e in ev),
        )
        await users.conn.send(msg.reply(ProvisioningPhoneResult, result="ok"))
        await box["done"].wait()
    secrets = [
        PHONES[0].password,
        msg.password,
        users.session_key,
        device.password,
        sim.config.provd.password,
        sim.config.devices.password,
        sim.config.devices.domains[0].admin_password,
    ]
    text = repr(logs)
    assert logs and not [s for s in secrets if s in text]


async def test_devices_unreachable_reported_per_phone(sim, fake_provd, nursery):
    """With Devices listed at a dead URL, phones needing a code fail; given codes still go."""
    sim.move_devices("ws://127.0.0.1:1/gone/devices/")
    given = Phone(mac="001565000008", user="g", code="123456789012")
    with trio.fail_after(HANG):
        users, box = await start(sim, fake_provd, nursery, [PHONES[0], given])
        msg = await users.next()
        await users.conn.send(msg.reply(ProvisioningPhoneResult, result="ok"))
        await box["done"].wait()
    first, second = box["results"]
    assert first.outcome == "error" and first.error.startswith("Devices: unreachable")
    assert second.ok and msg.code == "123456789012"

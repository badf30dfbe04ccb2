"""The simulated Devices' sysclient variants (spec section 8.2) against provd's own device
core over loopback."""

import trio

from provd.protocol.sysclient import (
    ConfigReceived,
    Identify,
    Ignored,
    PasswordAssigned,
    SysclientDevice,
    TunnelEvent,
    TunnelFrame,
    TunnelReceived,
)
from provd.sim import Simulator
from provd.sim.tunnel import TunnelError, TunnelRelay

from .helpers import HANG, device_events, devices_client, sim_config, sysclient_connect
from .test_devices import closed, initial_done, issue_code

MAC = "001565aabbdd"
IDENT = Identify(id=MAC, product="Yealink T54W", version="96.86.0.70", name="Desk")


async def started(nursery, **devices) -> Simulator:
    sim = Simulator(sim_config(devices=devices))
    await nursery.start(sim.run)
    return sim


async def provision(sim, nursery):
    async with devices_client(sim) as api:
        code = (await issue_code(api)).code
    ws, device = await sysclient_connect(sim, nursery, IDENT, code=code)
    events = await device_events(ws, device, initial_done)
    return ws, device, events


async def test_refused_kept_open_and_silent(nursery):
    """refused = "keep": a wrong digest is not closed; Devices just says nothing."""
    sim = await started(nursery, refused="keep")
    with trio.fail_after(HANG):
        ws, device, _ = await provision(sim, nursery)
        await ws.aclose()
        ws, device = await sysclient_connect(sim, nursery, IDENT, password="w" * 32)
        device.receive(await ws.get_message())  # the challenge
        for out in device.outgoing():
            await ws.send_message(out)
        await sim.devices_app.watch.wait_until(lambda: sim.devices_app.kept_refused == [MAC])
    assert ws.closed is None and MAC not in sim.online()


async def test_unknown_messages_and_password_mid_session(nursery):
    """unknown_messages: an unknown admin type and tunnel event after admission; the
    device core ignores both. assign_password: a fresh 0x0001 during the session."""
    sim = await started(nursery, unknown_messages=True)
    with trio.fail_after(HANG):
        ws, device, events = await provision(sim, nursery)
        more = await device_events(ws, device, lambda ev: len(ev) >= 2)
        assert isinstance(more[0], Ignored) and "0x0007" in more[0].what
        assert more[1] == TunnelReceived(TunnelFrame(0, 9, b"\x00\x00\x00\x00"))
        new = await sim.faults.assign_password(MAC)
        (event,) = await device_events(ws, device, lambda ev: ev)
    assert event == PasswordAssigned(new, with_code=False)
    assert sim.sysclient_password(MAC) == new == device.password
    assert [e for e in events if isinstance(e, ConfigReceived)][-1].item is None


async def test_second_identify_must_match_the_first(nursery):
    """The digest is checked over the connection's first identify: a second identify
    with another product is refused, even with a digest right for that product."""
    sim = await started(nursery)
    with trio.fail_after(HANG):
        ws, device, _ = await provision(sim, nursery)
        await ws.aclose()
        await sim.wait_online(MAC, False)
        ws, _first = await sysclient_connect(sim, nursery, IDENT, password=device.password)
        challenge = await ws.get_message()
        liar = SysclientDevice(
            Identify(id=MAC, product="Other", version="1"), password=device.password
        )
        liar.start()
        liar.receive(challenge)
        for out in liar.outgoing():
            await ws.send_message(out)
        assert await closed(ws)
    assert MAC not in sim.online()


def test_send_result_with_payload_is_a_violation():
    """strict_frames: a SEND_RESULT with payload breaks the SDK layout."""
    relay = TunnelRelay(1, strict=True)
    relay.start("GET", "/", [], b"")
    try:
        relay.on_frame(TunnelFrame(1, TunnelEvent.SEND_RESULT, b"\x00\x00\x00\x05"))
    except TunnelError as exc:
        assert "SEND_RESULT with 4 bytes" in str(exc)
    else:
        raise AssertionError("strict relay accepted a SEND_RESULT payload")
    tolerant = TunnelRelay(2, strict=False)
    tolerant.start("GET", "/", [], b"")
    assert tolerant.on_frame(TunnelFrame(2, TunnelEvent.SEND_RESULT, b"\x00")) == []
    assert tolerant.violations == ["SEND_RESULT with 1 bytes of payload"]
    assert tolerant.on_frame(TunnelFrame(2, TunnelEvent.SEND_RESULT)) == []
    assert len(tolerant.violations) == 1

"""The full sysclient path of the real daemon against each way Devices may behave (spec
section 8.2, the simulator's ``[devices]`` variant knobs): a phone is provisioned, comes
back through the challenge after a provd restart, and receives a configuration change."""

import httpx
import pytest
import trio

from provd.phones import Vendor
from provd.phones.examples import phone_request
from provd.sim import Phone

from .sysclient_install import healthy, install, items, rows

ALICE = Phone(mac="00:15:65:00:00:51", user="alice", cn="Alice Variant", password="Alice-Pwd-v1")

VARIANTS = {
    "default": {},  # silent after the digest, bare {"last":true}, close refused devices
    "resend-item-last": {"after_digest": "resend", "last_frame": "item"},
    "last-inside-config": {"last_inside_config": True, "last_frame": "item"},
    "password-mid-session": {"password_mid_session": 0.3},
    "challenge-after-code": {"code_when_known": "challenge"},
    "unknown-messages": {"unknown_messages": True, "after_digest": "resend"},
    "keep-refused": {"refused": "keep"},
    "tolerant-frames": {"strict_frames": False},
}


async def full_path(sim, provd, nursery, variant: dict) -> None:
    (result,) = await sim.provision([ALICE])
    assert result.ok, result
    await sim.wait_online(ALICE.mac)
    mid_session = variant.get("password_mid_session")
    if mid_session:
        # Devices assigned a fresh password during the session: provd committed it.
        await provd.wait_for(f"event=sysclient.password_assigned during_session=true .*{ALICE.mac}")
        assert len(sim.passwords_issued(ALICE.mac)) == 2
    stored = rows(provd)[ALICE.mac]
    assert stored["state"] == "provisioned"
    assert stored["sysclient_password"] == sim.sysclient_password(ALICE.mac)
    issued = len(sim.passwords_issued(ALICE.mac))

    # The phone fetches its file; the next connection describes it from that fetch.
    request = phone_request(Vendor.YEALINK, ALICE.mac)
    async with httpx.AsyncClient(base_url=provd.phones_url) as client:
        response = await client.get(request.path, headers={"User-Agent": request.user_agent})
    assert response.status_code == 200

    assert await provd.stop() == 0
    await sim.wait_online(ALICE.mac, online=False)
    mark = restart_mark = len(provd.lines)
    await provd.start(nursery)
    await sim.wait_online(ALICE.mac)
    await provd.wait_for(f"event=sysclient.authenticated .*mac={ALICE.mac}", after=mark)
    await provd.wait_for(f"event=phone.config_current .*mac={ALICE.mac}", after=mark)
    if not mid_session:
        assert len(sim.passwords_issued(ALICE.mac)) == issued  # in through the challenge
    device = sim.device(ALICE.mac)
    assert device.product.startswith("Yealink ") and device.product != "Yealink phone"
    assert device.version and device.name == "Alice Variant"

    mark = len(provd.lines)
    changed = await sim.faults.change_category("Phones", coder="G711A,G722")
    assert changed == {"PHONE"}
    await provd.wait_for("event=sysclient.config_item type=PHONE", after=mark)
    assert items(provd, ALICE.mac)["PHONE"]["coder"] == "G711A,G722"
    if mid_session:  # again in the new session: the newest password is the stored one
        await provd.wait_for("during_session=true", after=restart_mark)
        assert rows(provd)[ALICE.mac]["sysclient_password"] == sim.sysclient_password(ALICE.mac)
    await healthy(provd, phones=1)


@pytest.mark.parametrize("name", list(VARIANTS))
async def test_full_path(name, tmp_path, nursery):
    variant = VARIANTS[name]
    with trio.fail_after(90):
        sim, provd = await install(nursery, tmp_path, devices=variant)
        await full_path(sim, provd, nursery, variant)
        if name == "challenge-after-code":
            # Already in the domain: a new code is challenged; the stored password answers.
            (result,) = await sim.provision([ALICE])
            assert result.ok, result
            await provd.wait_for("event=sysclient.code_answered_by_challenge")
            assert len(sim.passwords_issued(ALICE.mac)) == 1
            assert rows(provd)[ALICE.mac]["sysclient_password"] == sim.sysclient_password(ALICE.mac)
        if name in ("default", "tolerant-frames"):
            # The Devices UI's passthrough: tunnel frames byte-exact per the SDK.
            response = await sim.devices_app.relay_http(ALICE.mac, "GET", "/", [], b"")
            assert response.status == 200 and ALICE.mac.replace(":", "") in response.body.decode()
            assert sim.devices_app.violations == []
        if name == "unknown-messages":
            assert "sysclient.disconnected" not in provd.output()
        assert await provd.stop() == 0

"""End to end against each AppWebsocket variant of the innovaphone side (spec sections 8.1,
8.3): the real ``provd run`` process, the simulator playing the variant.

Per variant, the full path: a phone is provisioned, survives a provd restart through the
sysclient challenge, and receives a configuration change.
"""

import pytest
import trio
from structlog.testing import capture_logs

from provd.backoff import Backoff
from provd.sim import Phone, Simulator

from ..tlsutil import self_signed
from .harness import ProvdProcess, sim_config

PHONE = Phone(mac="00:15:65:0e:00:01", user="vera", cn="Vera", password="Vera-Pwd-e2e-1")

VARIANTS = {
    # what the SDK documents: the PBX lists the service info (AppWebsocketServiceInfo)
    "service-info": {},
    "app-info-apis": {"pbx": {"service_apis_from": "app_info"}},
    "numeric-errors": {"pbx": {"numeric_errors": True}},
    "wss-devices": {"devices": "tls"},
}


@pytest.mark.parametrize("variant", list(VARIANTS))
async def test_full_path_against_variant(tmp_path, nursery, variant):
    overrides = dict(VARIANTS[variant])
    extra = ""
    if overrides.get("devices") == "tls":
        cert, key = self_signed(tmp_path)
        overrides["devices"] = {"tls_cert": str(cert), "tls_key": str(key)}
        extra = f'[devices]\nca_file = "{cert}"\n'
    with trio.fail_after(90):
        sim = Simulator(sim_config(**overrides), backoff=Backoff(initial=0.05, cap=0.3))
        await nursery.start(sim.run)
        provd = ProvdProcess(tmp_path, extra=extra)
        await provd.start(nursery)
        sim.set_provd(provd.appservice_url + "provd")
        if variant == "wss-devices":
            assert sim.addresses.devices_url.startswith("wss://")

        (result,) = await sim.provision([PHONE])
        assert result.ok, result
        await sim.wait_online(PHONE.mac)

        assert await provd.stop() == 0
        await sim.wait_online(PHONE.mac, online=False)
        with capture_logs() as events:
            await provd.start(nursery)
            await sim.wait_online(PHONE.mac)
        admitted = [e for e in events if e["event"] == "sysclient.admitted"]
        assert [e["first_time"] for e in admitted] == [False]
        assert {e["mac"] for e in events if e["event"] == "sysclient.challenged"} == {
            PHONE.mac.replace(":", "")
        }
        assert len(sim.passwords_issued(PHONE.mac)) == 1

        mark = len(provd.lines)
        changed = await sim.faults.change_category("Phones", tz="Asia/Kolkata", coder="G711A")
        assert "NTP" in changed
        await provd.wait_for("event=sysclient.config_item type=NTP", after=mark)

        if variant == "numeric-errors":
            # A refused service login, as a number with errorText: provd's PBX session
            # stays up and the phone still gets its error text.
            await sim.pbx.wait_logged_in(2)  # the PBX is back after the restart
            await sim.pbx.wait_subscribed()
            logins = sim.pbx.status.logins
            sim.faults.refuse_service_logins(times=10)
            bad = Phone(mac="00:15:65:0e:00:09", user="m", password="m-Pwd-9", code="999999")
            (refused,) = await sim.provision([bad])
            assert refused.outcome == "error" and "provisioning code" in refused.error
            await provd.wait_for("event=devices_api.unavailable .*error 1", after=mark)
            assert sim.pbx.status.logins == logins and sim.pbx.status.connected
        assert await provd.stop() == 0

"""Issue 11, item 2: provd's kept Devices API session and the control commands on it.

An in-process daemon with the simulator around it; the control handlers are called as the
control socket calls them. No sleeps: waits are on the simulator's Watch, on answers, or
on the session's own state, under ``fail_after`` hang guards.
"""

import time
from contextlib import asynccontextmanager

import trio
from structlog.testing import capture_logs

from provd.actors.daemon import Daemon
from provd.protocol.messages import AppInfo, AppInfoResult, PbxInfo
from provd.protocol.sysclient import ConfigReceived, Identify

from ..actors.conftest import make_config
from ..sim.helpers import device_events, sysclient_connect
from .test_appws_fidelity import installation, logged_in, running

DOMAINS = {
    "categories_per_result": 1,
    "domains": [
        {
            "name": "example.com",
            "categories": [
                {"name": "Phones"},
                {"name": "Desk"},
                {"name": "Lobby"},
                {"name": "Gateways", "type": "GW"},
            ],
        }
    ],
}
MAC = "001565dd0001"


@asynccontextmanager
async def installed(tmp_path, **overrides):
    """An in-process daemon and the simulator around it, once the PBX session told provd
    where Devices is. The simulator stops first, so no close handshake waits for it."""
    async with trio.open_nursery() as nursery:
        daemon = Daemon(make_config(tmp_path))
        bound = await nursery.start(daemon.run)
        with trio.CancelScope() as sim_scope:
            async with trio.open_nursery() as sim_nursery:
                sim = await installation(sim_nursery, bound, **overrides)
                with trio.fail_after(10):
                    await daemon.locator.wait_url()
                try:
                    yield daemon, sim
                finally:
                    sim_scope.cancel()
        daemon.shutdown()


def handler(daemon, cmd):
    return daemon._control_handlers()[cmd]


async def ask(daemon, cmd, **fields):
    return await handler(daemon, cmd)({"cmd": cmd, **fields})


class TestRequests:
    async def test_categories_read_until_last_and_filtered(self, tmp_path, nursery):
        """Categories split one per result are all read (until ``last``); type filters."""
        async with installed(tmp_path, devices=DOMAINS) as (daemon, _sim):
            with trio.fail_after(15):
                every = await ask(daemon, "devices_categories")
                phones = await ask(daemon, "devices_categories", type="PHONE")
        assert every["ok"] and len(every["categories"]) == 4
        names = [c["name"] for c in phones["categories"]]
        assert names == ["Phones", "Desk", "Lobby"]

    async def test_code_validity_and_sip(self, tmp_path, nursery):
        """A code is valid 15 minutes, 7 days with rollout; the SIP name reaches Devices."""
        async with installed(tmp_path) as (daemon, sim):
            with trio.fail_after(15):
                short = await ask(daemon, "devices_code", category="Phones", sip="alice")
                long = await ask(daemon, "devices_code", category="Phones", rollout=True)
        now = time.time()
        assert short["ok"] and long["ok"] and short["code"] != long["code"]
        assert abs(short["valid_until"] - (now + 15 * 60)) < 60
        assert abs(long["valid_until"] - (now + 7 * 24 * 3600)) < 60
        issued = {c.code: c for c in sim.codes()}
        assert issued[short["code"]].sip == "alice"

    async def test_device_provisioned_stored_and_logged(self, tmp_path, nursery):
        """A device using provd's code: DeviceProvisioned arrives on provd's session, is
        logged at info and stored; ``devices provisioned CODE`` shows both."""
        async with installed(tmp_path) as (daemon, sim):
            with trio.fail_after(15), capture_logs() as logs:
                code = (await ask(daemon, "devices_code", category="Phones"))["code"]
                ident = Identify(id=MAC, product="Desk phone", version="1")
                ws, device = await sysclient_connect(sim, nursery, ident, code=code)
                await device_events(
                    ws,
                    device,
                    lambda ev: any(
                        isinstance(e, ConfigReceived) and e.completes_initial for e in ev
                    ),
                )
                await sim.wait_online(MAC)  # DeviceProvisioned is queued by now
                answer = await ask(daemon, "devices_provisioned", code=code)
        assert answer["ok"] and answer["device"]["hw_id"] == MAC
        assert answer["event"]["hw_id"] == MAC and answer["event"]["device"]["product"]
        seen = [e for e in logs if e["event"] == "devices_api.device_provisioned"]
        assert seen and seen[0]["code"] == code and seen[0]["log_level"] == "info"
        assert daemon.devices_session.status.provisioned == 1

    async def test_devices_error_reply_named(self, tmp_path, nursery):
        """An error answer from Devices (the simulator's api_errors knob, or an unknown
        code) is passed on with the request it refused."""
        async with installed(tmp_path) as (daemon, sim):
            sim.faults.devices_api_error("GetProvisioningCode", "no licence left")
            with trio.fail_after(15):
                answer = await ask(daemon, "devices_code", category="Phones")
                unknown = await ask(daemon, "devices_provisioned", code="000000")
        assert not answer["ok"]
        assert answer["error"] == "Devices refused GetProvisioningCode: no licence left"
        assert unknown == {
            "ok": False,
            "error": "Devices refused GetProvisionedDevice: unknown code",
        }


class TestSession:
    async def test_reconnects_after_devices_restart(self, tmp_path, nursery):
        """Devices restarts: the session is logged in again (back-off) and answers; one
        warning says it went down."""
        async with installed(tmp_path) as (daemon, sim):
            with trio.fail_after(20), capture_logs() as logs:
                assert (await ask(daemon, "devices_categories"))["ok"]
                await sim.faults.restart_devices()
                again = await ask(daemon, "devices_code", category="Phones")
            assert daemon.devices_session.status.state == "up"
        assert again["ok"], again
        down = [e for e in logs if e["event"] == "devices_api.session_down"]
        ups = [e for e in logs if e["event"] == "devices_api.session_up"]
        assert len(ups) == 2 and [e["log_level"] for e in down] == ["warning"]

    async def test_no_session_until_asked(self, tmp_path, nursery):
        """A daemon nobody asks opens no Devices API session."""
        async with installed(tmp_path) as (daemon, sim):
            with trio.fail_after(15):
                await trio.testing.wait_all_tasks_blocked()
            assert daemon.devices_session.status.state == "idle"
            assert not sim.devices_app._api_sessions


class TestMissing:
    async def test_no_pbx_session_named(self, tmp_path, nursery):
        """Without a PBX session the error says so, at once."""
        async with running(tmp_path, nursery) as (daemon, _bound):
            with trio.fail_after(2):
                answer = await ask(daemon, "devices_categories")
        assert not answer["ok"] and answer["error"].startswith("no PBX session")

    async def test_devices_not_found_named(self, tmp_path, nursery):
        """A PBX session that never listed Devices: the error names Devices and the key."""
        async with (
            running(tmp_path, nursery) as (daemon, bound),
            logged_in(bound.appservice_url) as conn,
        ):
            with trio.fail_after(5):
                await conn.send(PbxInfo(domain="example.com", pbx="master", apis=("PbxApi",)))
                await conn.send(AppInfo(app="provd", src="i"))
                # PbxInfo was handled before the answer; provd may ask PbxApi things
                # (SubscribeProfile, GetNodeInfo) in between: skip them.
                while not isinstance(await conn.receive(), AppInfoResult):
                    pass
                answer = await ask(daemon, "devices_code", category="Phones")
        assert not answer["ok"]
        assert "Devices not found" in answer["error"]
        assert "provisioning.devices_url" in answer["error"]

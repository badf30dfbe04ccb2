"""The simulated PBX's PbxAdminApi: objects, registrations, knobs (spec 8.4)."""

import attrs
import pytest
import trio

from provd.protocol.messages import (
    GetNodeInfo,
    GetNodeInfoResult,
    GetObject,
    GetObjectResult,
    GetRegs,
    GetRegsResult,
    PbxDevice,
    PbxInfo,
    ServicesInfo,
    UpdateObject,
    UpdateObjectResult,
    app_info_result,
)
from provd.sim import SimConfig, Simulator
from provd.sim.config import PbxConfig, PbxUser, PbxUserDevice, PhoneRegistration
from provd.sim.pbxadmin import PbxAdminState

from .helpers import HANG, pbx_handshake, sim_config

MAC = "0004f2aa0005"


def state(**pbx) -> PbxAdminState:
    users = (
        PbxUser(
            sip="bob",
            num="202",
            dn="Bob",
            guid="g-bob",
            devices=(PbxUserDevice(hw="00:04:F2:AA:00:09", text="desk"),),
        ),
    )
    return PbxAdminState(PbxConfig(users=users, **pbx))


def test_users_service_creates_object_and_device_with_tls_and_trusted():
    admin = state()
    obj = admin.ensure_user(mac=MAC, cn="Emil Eriksson", h323="emil", hw=MAC)
    (result,) = admin.handle(GetObject(cn="Emil Eriksson", src="o"))
    assert isinstance(result, GetObjectResult) and result.src == "o" and result.guid == obj.guid
    assert result.h323 == "emil"
    assert [(d.hw, d.tls, d.trusted) for d in result.devices] == [(MAC, True, True)]
    # the same user again: one object, one device entry
    admin.ensure_user(mac=MAC, cn="Emil Eriksson", h323="emil", hw=MAC)
    assert len(admin.objects) == 2 and len(admin.objects[obj.guid].devices) == 1


def test_phone_registers_after_fetch_unless_its_knob_says_never():
    admin = state(register_addr="192.0.2.1:5060")
    admin.ensure_user(mac=MAC, cn="Emil", h323="emil", hw="00:04:F2:AA:00:05")
    (empty,) = admin.handle(GetRegs(cn="Emil"))
    assert isinstance(empty, GetRegsResult) and empty.regs == ()
    admin.phone_fetched(MAC)
    (regs,) = admin.handle(GetRegs(cn="Emil", src="r"))
    assert regs.cn == "Emil" and regs.src == "r"
    assert [(r.hw, r.addr) for r in regs.regs] == [("00:04:F2:AA:00:05", "192.0.2.1:5060")]
    assert admin.unregister(MAC) and admin.handle(GetRegs(cn="Emil"))[0].regs == ()
    admin.set_rule(MAC, register=False)
    assert admin.phone_fetched(MAC) is None and admin.registration(MAC) is None
    admin.set_rule(MAC, addr="198.51.100.4:5061")
    assert admin.phone_fetched(MAC).addr == "198.51.100.4:5061"


def test_configured_knob_and_configured_user_device():
    admin = state(registrations=(PhoneRegistration(mac="00:04:f2:aa:00:09", register=False),))
    assert admin.phone_fetched("0004f2aa0009") is None
    reg = admin.register("0004f2aa0009")  # found through bob's configured device entry
    assert reg.hw == "00:04:F2:AA:00:09"
    assert admin.handle(GetRegs(guid="g-bob"))[0].regs == (reg,)
    assert admin.register("0004f2ffffff") is None  # nobody's device


def test_update_object_changes_only_what_is_present_and_replaces_devices():
    admin = state()
    (got,) = admin.handle(GetObject(h323="bob"))
    cleared = [attrs.evolve(d, tls=False, extra={"future": 1}) for d in got.devices]
    (done,) = admin.handle(UpdateObject(guid=got.guid, devices=cleared, src="u"))
    assert isinstance(done, UpdateObjectResult) and done.failure is None and done.src == "u"
    (after,) = admin.handle(GetObject(guid="g-bob"))
    assert (after.cn, after.e164) == ("Bob", "202")  # untouched
    assert after.devices == (
        PbxDevice(
            hw="00:04:F2:AA:00:09", text="desk", tls=False, trusted=True, extra={"future": 1}
        ),
    )
    admin.handle(UpdateObject(guid="*", cn="Bob", dn="Robert", extra={"hide": True}))
    (renamed,) = admin.handle(GetObject(e164="202"))
    assert renamed.dn == "Robert" and renamed.extra == {"hide": True}


@pytest.mark.parametrize(
    ("pbx", "failure"),
    [
        ({"admin_not_found": "empty"}, "no such object"),
        ({"admin_not_found": "error"}, "object not found"),
        ({"admin_not_found": "error", "numeric_errors": True}, "object not found (error 1)"),
    ],
)
def test_unknown_object_variants(pbx, failure):
    admin = state(**pbx)
    assert admin.handle(GetObject(cn="nobody"))[0].failure == failure
    regs = admin.handle(GetRegs(cn="nobody"))[0]
    assert regs.regs == () and (regs.failure is None) == (pbx["admin_not_found"] == "empty")
    upd = admin.handle(UpdateObject(guid="nope", dn="x"))[0]
    assert (upd.failure is None) == (pbx["admin_not_found"] == "empty")
    assert admin.handle(PbxInfo()) is None


def test_config_rejects_bad_knobs():
    from provd.sim import ConfigError

    with pytest.raises(ConfigError, match=r"pbx.registrations\[0\].mac"):
        SimConfig.from_mapping({"pbx": {"registrations": [{"mac": "zz"}]}})
    with pytest.raises(ConfigError, match=r"pbx\.admin_not_found"):
        SimConfig.from_mapping({"pbx": {"admin_not_found": "maybe"}})


class TestOnTheWire:
    async def test_served_on_the_app_object_connection(self, sim, fake_provd):
        """Listed in PbxInfo.apis and answered over the App-object session."""
        sim.pbxadmin.ensure_user(mac=MAC, cn="Emil", h323="emil", hw=MAC)
        sim.pbxadmin.register(MAC, addr="127.0.0.1:5062")
        with trio.fail_after(HANG):
            peer = await fake_provd.next_peer()
            await pbx_handshake(peer)
            await peer.conn.send(GetRegs(cn="Emil", src="r"))
            result = await peer.next(skip=(ServicesInfo,))
        assert isinstance(result, GetRegsResult) and result.src == "r"
        assert result.find(MAC).addr == "127.0.0.1:5062"

    async def test_admin_api_off_not_listed_nor_answered(self, nursery, fake_provd):
        sim = Simulator(sim_config(pbx={"admin_api": False, "reconnect_initial": 0.01}))
        sim.set_provd(fake_provd.url)
        await nursery.start(sim.run)
        with trio.fail_after(HANG):
            peer = await fake_provd.next_peer()
            info = await peer.next()
            app_info = await peer.next()
            await peer.conn.send(app_info_result(app_info, title="provd"))
            await peer.conn.send(GetObject(cn="Alice", src="o"))
            await peer.conn.send(GetRegs(cn="Alice", src="r"))
            await peer.conn.send(GetNodeInfo(src="n"))  # answered in order: nothing before it
            got = await peer.next(skip=(ServicesInfo,))
        assert isinstance(got, GetNodeInfoResult) and got.src == "n"
        assert isinstance(info, PbxInfo) and "PbxAdminApi" not in info.apis
        assert sim.pbxadmin.requests == []


async def test_sim_ctl_register_unregister_never_register():
    """`provd sim ctl register|unregister|never-register` drive the registrations table."""
    from provd.sim.control import handlers

    sim = Simulator(sim_config())
    sim.pbxadmin.ensure_user(mac=MAC, cn="Emil", h323="emil", hw=MAC)
    ctl = handlers(sim)
    assert await ctl["register"]({"mac": "00:04:F2:AA:00:05", "addr": "192.0.2.9:5060"}) == {
        "ok": True,
        "hw": MAC,
        "addr": "192.0.2.9:5060",
    }
    status = await ctl["status"]({})
    assert status["registrations"] == [{"cn": "Emil", "hw": MAC, "addr": "192.0.2.9:5060"}]
    assert await ctl["unregister"]({"mac": MAC}) == {"ok": True, "removed": True}
    assert await ctl["never-register"]({"mac": MAC}) == {"ok": True}
    assert sim.pbxadmin.phone_fetched(MAC) is None
    unknown = await ctl["register"]({"mac": "0004f2ffffff"})
    assert unknown["ok"] is False and "no PBX user object" in unknown["error"]
    assert (await ctl["register"]({}))["ok"] is False  # mac missing: an error answer

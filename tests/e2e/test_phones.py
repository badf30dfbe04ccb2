"""End to end, the phone side: after provisioning through the simulator, phones fetch."""

import functools

import httpx
import trio

from provd.phones import Vendor, parse_user_agent
from provd.phones.examples import phone_request
from provd.sim import Phone

from .harness import cli, start_installation

PHONES = {
    Vendor.YEALINK: Phone(mac="805ec0bb0001", user="yara", cn="Yara", password="Yara-Pwd-<&1"),
    Vendor.SNOM: Phone(mac="000413bb0002", user="sven", cn="Sven", password="Sven-Pwd-2"),
    Vendor.GRANDSTREAM: Phone(mac="000b82bb0003", user="gina", cn="Gina", password="Gina-Pwd-3"),
    Vendor.FANVIL: Phone(mac="0c383ebb0004", user="finn", cn="Finn", password="Finn-Pwd-4"),
    Vendor.POLY: Phone(mac="0004f2bb0005", user="pia", cn="Pia", password="Pia-Pwd-5"),
}


def escaped(password: str) -> tuple[str, str]:
    """The password as it appears in a text file and in an XML file."""
    xml = password.replace("&", "&amp;").replace("<", "&lt;")
    return password, xml


async def fetch(base: str, vendor: Vendor, mac: str, *, user_agent: str | None = None):
    request = phone_request(vendor, mac)
    agent = request.user_agent if user_agent is None else user_agent
    async with httpx.AsyncClient(base_url=base) as client:
        return await client.get(request.path, headers={"User-Agent": agent})


async def test_each_vendor_gets_its_file_then_sees_a_pushed_change(tmp_path, nursery):
    """Each vendor's phone gets its file with the password; a Devices change shows next fetch."""
    with trio.fail_after(60):
        sim, provd = await start_installation(nursery, tmp_path)
        results = await sim.provision(PHONES.values())
        assert all(r.ok for r in results), results
        for vendor, phone in PHONES.items():
            response = await fetch(provd.phones_url, vendor, phone.mac)
            assert response.status_code == 200, (vendor, response.text)
            assert any(p in response.text for p in escaped(phone.password)), vendor
            assert "pbx" in response.text  # the registrar from the PBX's dns
        before = await fetch(provd.phones_url, Vendor.YEALINK, PHONES[Vendor.YEALINK].mac)
        assert "local_time.time_zone = +1\n" in before.text  # Europe/Berlin
        mark = len(provd.lines)
        changed = await sim.faults.change_category("Phones", tz="Asia/Kolkata", coder="G711A")
        assert "NTP" in changed
        await provd.wait_for("event=sysclient.config_item type=NTP", after=mark)
        after = await fetch(provd.phones_url, Vendor.YEALINK, PHONES[Vendor.YEALINK].mac)
        assert after.status_code == 200 and after.text != before.text
        assert "local_time.time_zone = +5:30\n" in after.text
        assert "local_time.summer_time = 0\n" in after.text
        assert await provd.stop() == 0


async def test_unknown_or_mismatched_mac_gets_nothing_and_fetches_are_recorded(tmp_path, nursery):
    """Unknown MAC → 404, User-Agent MAC ≠ path MAC → 403; good fetches show in phones show."""
    with trio.fail_after(60):
        sim, provd = await start_installation(nursery, tmp_path)
        yealink = PHONES[Vendor.YEALINK]
        (result,) = await sim.provision([yealink])
        assert result.ok
        unknown = await fetch(provd.phones_url, Vendor.YEALINK, "805ec0ffff99")
        assert unknown.status_code == 404 and yealink.password not in unknown.text
        other_agent = phone_request(Vendor.YEALINK, "805ec0ffff99").user_agent
        mismatch = await fetch(
            provd.phones_url, Vendor.YEALINK, yealink.mac, user_agent=other_agent
        )
        assert mismatch.status_code == 403 and yealink.password not in mismatch.text
        good = await fetch(provd.phones_url, Vendor.YEALINK, yealink.mac)
        assert good.status_code == 200
        info = parse_user_agent(phone_request(Vendor.YEALINK, yealink.mac).user_agent)
        assert await provd.stop() == 0  # fetch records are committed on shutdown at the latest
        show = await trio.to_thread.run_sync(
            functools.partial(cli, "phones", "show", yealink.mac, provd=provd)
        )
        assert show.returncode == 0
        assert f"{yealink.mac}.cfg" in show.stdout
        assert info.model in show.stdout and info.firmware in show.stdout
        assert show.stdout.count(f"{yealink.mac}.cfg") == 1  # refused requests not recorded

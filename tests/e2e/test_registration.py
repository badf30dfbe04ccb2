"""End to end: each phone's lifecycle up to ``registered``, checked at the simulated PBX
through PbxAdminApi (spec 8.4); the warning for a phone that fetched but never registered;
``pbx.fix_device_flags`` clearing *TLS only* in the PBX's object. One daemon for all."""

import functools

import trio

from provd.actors import control
from provd.phones import Vendor
from provd.sim import Phone

from .harness import cli, start_installation

REGISTERS = Phone(mac="805ec0cc0001", user="rita", cn="Rita Reg", password="Rita-Pwd-1")
SILENT = Phone(mac="000413cc0002", user="sam", cn="Sam Silent", password="Sam-Pwd-2")

REGISTRATION = (
    "[registration]\nretry_interval = 0.2\nwarn_after = 1.5\ncheck_interval = 60.0\n"
    "max_per_second = 50.0\n[pbx]\nfix_device_flags = true\n"
)


async def test_registered_flagged_and_tls_only_cleared(tmp_path, nursery):
    with trio.fail_after(60):
        sim, provd = await start_installation(
            nursery, tmp_path, extra=REGISTRATION, phones='sip_transport = "tcp"'
        )
        sim.pbxadmin.set_rule(SILENT.mac, register=False)  # e.g. wrong credentials
        results = await sim.provision([REGISTERS, SILENT])
        assert all(r.ok for r in results), results
        # The Users service created both device entries with "TLS only" set.
        assert sim.pbxadmin.find(cn="Rita Reg").device(REGISTERS.mac).tls is True

        mark = len(provd.lines)
        ok = await sim.fetch_file(provd.phones_url, Vendor.YEALINK, REGISTERS.mac)
        assert ok.status_code == 200
        await provd.wait_for(
            f"event=phone.lifecycle mac={REGISTERS.mac} from=fetched to=registered", after=mark
        )
        # transport tcp + fix_device_flags: the PBX object's device lost "TLS only" only
        await provd.wait_for(f"event=pbx.device_tls_cleared .*mac={REGISTERS.mac}", after=mark)
        device = sim.pbxadmin.find(cn="Rita Reg").device(REGISTERS.mac)
        assert (device.tls, device.trusted) == (False, True)

        silent = await sim.fetch_file(provd.phones_url, Vendor.SNOM, SILENT.mac)
        assert silent.status_code == 200
        warning = await provd.wait_for(f"<4>event=phone.not_registered .*mac={SILENT.mac}")
        assert "user=sam" in warning.string and "credentials" in warning.string
        assert sum("event=phone.not_registered " in line for line in provd.lines) == 1

        status = await trio.to_thread.run_sync(control.request, provd.socket, "status")
        assert status["lifecycle"] == {"registered": 1, "fetched": 1}, status
        assert status["registration_checks"] is True
        (flagged,) = status["not_registered"]
        assert flagged["mac"] == SILENT.mac and "not registered" in flagged["error"]

        # It registers later (credentials fixed): the warning is cleared, at info.
        mark = len(provd.lines)
        sim.pbxadmin.register(SILENT.mac, addr="127.0.0.1:5070")
        await provd.wait_for(
            f"<6>event=phone.not_registered_cleared .*mac={SILENT.mac}", after=mark
        )
        assert await provd.stop() == 0
        show = await trio.to_thread.run_sync(
            functools.partial(cli, "phones", "show", REGISTERS.mac, provd=provd)
        )
        assert "lifecycle" in show.stdout and "registered since" in show.stdout, show.stdout
        assert "from 127.0.0.1:5060" in show.stdout
        listing = await trio.to_thread.run_sync(
            functools.partial(cli, "phones", "list", provd=provd)
        )
        assert listing.stdout.count("registered") >= 2, listing.stdout

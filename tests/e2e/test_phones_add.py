"""Issue 11, "Done when": a phone added with ``provd phones add`` reaches ``registered``.

The real daemon (a child process) with the simulator around it; the operator commands run
as subprocesses against the daemon's control socket. One daemon for the whole story: a
single add (password from a file), Devices' view of the code, the phone's file and its
registration at the simulated PBX, then a CSV with a good and a bad row.
"""

import functools

import trio

from provd.backoff import Backoff
from provd.phones import Vendor
from provd.sim import Simulator

from .harness import ProvdProcess, cli, sim_config

MAC = "805ec0ad0001"  # a Yealink OUI
SECOND = "805ec0ad0002"
PASSWORD = "Add-Sip-Pwd-<&9"
CSV_PASSWORD = "Csv-Sip-Pwd-8"
USERS = [
    {"sip": "alice", "cn": "Alice Example", "devices": [{"hw": MAC}]},
    {"sip": "bob", "cn": "Bob Example", "devices": [{"hw": SECOND}]},
]


async def run_cli(provd, *args):
    return await trio.to_thread.run_sync(functools.partial(cli, *args, provd=provd))


async def test_phone_added_from_the_cli_is_provisioned_and_served(tmp_path, nursery):
    """phones add: Devices sees the identify with provd's code (DeviceProvisioned stored),
    the phone's file is served with the password, the phone registers at the PBX and its
    lifecycle reaches registered; a CSV
    adds a second phone and reports its bad row by line and column. The password is in no
    log line and no output."""
    with trio.fail_after(90):
        sim = Simulator(sim_config(pbx={"users": USERS}), backoff=Backoff(initial=0.05, cap=0.3))
        await nursery.start(sim.run)
        provd = ProvdProcess(tmp_path, extra="[registration]\nretry_interval = 0.2\n")
        await provd.start(nursery)
        sim.set_provd(provd.appservice_url + "provd")
        await provd.wait_for("event=pbx.devices_service")

        (tmp_path / "pw").write_text(PASSWORD + "\n")
        (tmp_path / "pw").chmod(0o600)
        added = await run_cli(
            provd,
            "phones",
            "add",
            MAC,
            "--user",
            "alice",
            "--category",
            "Phones",
            "--password-file",
            str(tmp_path / "pw"),
        )
        assert added.returncode == 0, added.stderr
        assert f"{MAC}: provisioned for alice" in added.stdout and "UTC" in added.stdout
        (code,) = [c for c in sim.codes() if c.mac == MAC]  # Devices saw the identify
        assert code.sip == "alice" and code.code in added.stdout
        await provd.wait_for(f"event=devices_api.device_provisioned code={code.code}")

        mark = len(provd.lines)
        response = await sim.fetch_file(provd.phones_url, Vendor.YEALINK, MAC)
        assert response.status_code == 200
        assert PASSWORD in response.text or "Add-Sip-Pwd-&lt;&amp;9" in response.text
        await sim.wait_registered(MAC)  # the simulated phone registered at the PBX...
        await provd.wait_for(  # ...and provd saw it there (PbxAdminApi GetRegs)
            f"event=phone.lifecycle mac={MAC} from=fetched to=registered", after=mark
        )

        shown = await run_cli(provd, "devices", "provisioned", code.code)
        assert shown.returncode == 0, shown.stderr
        assert MAC in shown.stdout and "provisioned" in shown.stdout

        (tmp_path / "phones.csv").write_text(
            f"mac,user,category,password\n{SECOND},bob,Phones,{CSV_PASSWORD}\n"
            "805ec0ad0003,carol,,x\n"
        )
        (tmp_path / "phones.csv").chmod(0o600)
        bulk = await run_cli(provd, "phones", "add", "--csv", str(tmp_path / "phones.csv"))
        assert bulk.returncode == 1  # one row failed
        assert "line 3, column category: empty" in bulk.stderr
        assert bulk.stdout.splitlines()[-1] == "1 ok, 1 failed"
        assert any(
            line.split()[:4] == ["2", SECOND, "bob", "ok"] for line in bulk.stdout.splitlines()
        )

        outputs = added.stdout + added.stderr + bulk.stdout + bulk.stderr + shown.stdout
        for secret in (PASSWORD, CSV_PASSWORD):
            assert secret not in provd.output() and secret not in outputs
        assert await provd.stop() == 0

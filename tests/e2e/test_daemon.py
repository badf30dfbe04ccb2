"""End to end: the real ``provd run`` process against ``provd sim`` over loopback."""

import functools
import signal
import sqlite3

import attrs
import trio
from structlog.testing import capture_logs

from provd.sim import Party, Phone

from .harness import INSTANCE_PASSWORD, ProvdProcess, cli, start_installation

PHONES = [
    Phone(mac="00:15:65:00:00:01", user="alice", cn="Alice Ä", password="Alice-Pwd-e2e-1"),
    Phone(mac="00:04:13:00:00:02", user="bob", cn="Bob", password="Bob-Pwd-e2e-2"),
    Phone(mac="00:0b:82:00:00:03", user="carol", cn="Carol", password="Carol-Pwd-e2e-3"),
]


async def run_cli(provd: ProvdProcess, *args: str):
    return await trio.to_thread.run_sync(functools.partial(cli, *args, provd=provd))


def stored(provd: ProvdProcess) -> dict[str, dict]:
    conn = sqlite3.connect(provd.workdir / "provd.db")
    conn.row_factory = sqlite3.Row
    rows = {r["mac"]: dict(r) for r in conn.execute("SELECT * FROM phones")}
    conn.close()
    return rows


async def test_phones_provisioned_then_restart_reconnects_with_challenge(tmp_path, nursery):
    """Several phones provisioned; after a restart each reconnects through the challenge."""
    with trio.fail_after(60):
        sim, provd = await start_installation(nursery, tmp_path)
        results = await sim.provision(PHONES)
        assert [r.outcome for r in results] == ["ok"] * 3, results
        rows = stored(provd)
        for phone in PHONES:
            row = rows[phone.mac]
            assert row["state"] == "provisioned"
            assert row["password"] == phone.password  # decrypted with the session key
            assert row["sysclient_password"] == sim.sysclient_password(phone.mac)
            assert row["admin_password"] == "Admin-Pwd-e2e-42"
            await sim.wait_online(phone.mac)

        assert await provd.stop() == 0
        for phone in PHONES:
            await sim.wait_online(phone.mac, online=False)
        with capture_logs() as events:
            await provd.start(nursery)
            for phone in PHONES:
                await sim.wait_online(phone.mac)
        admitted = [e for e in events if e["event"] == "sysclient.admitted"]
        assert {e["mac"] for e in admitted} == {p.mac for p in PHONES}
        assert all(e["first_time"] is False for e in admitted)
        challenged = {e["mac"] for e in events if e["event"] == "sysclient.challenged"}
        assert challenged == {p.mac for p in PHONES}
        for phone in PHONES:
            assert len(sim.passwords_issued(phone.mac)) == 1  # no new password needed
        assert await provd.stop() == 0


async def test_wrong_instance_password_refused(tmp_path, nursery):
    """A PBX with the wrong App-object password is refused; provd says so in its log."""
    with trio.fail_after(30):
        sim, provd = await start_installation(nursery, tmp_path, password="not-the-pbx-one")
        await sim.pbx.watch.wait_until(lambda: sim.pbx.status.refusals >= 2)
        assert sim.pbx.status.logins == 0
        await provd.wait_for("event=appservice.login_refused")
        assert await provd.stop() == 0


async def test_devices_drops_mid_handshake_phone_still_provisioned(tmp_path, nursery):
    """Devices closes right after identify (before the password): provd retries and wins."""
    with trio.fail_after(60):
        sim, provd = await start_installation(nursery, tmp_path)
        sim.faults.drop_after(Party.SYSCLIENT, "IDENTIFY", times=2)
        (result,) = await sim.provision(PHONES[:1])
        assert result.ok, result
        assert len(sim.faults.dropped) == 2
        await provd.wait_for("event=sysclient.code_attempt_failed")
        assert stored(provd)[PHONES[0].mac]["state"] == "provisioned"
        assert await provd.stop() == 0


async def test_invalid_and_foreign_codes_answered_with_error(tmp_path, nursery):
    """A code Devices does not know is refused; the Users service gets an error text."""
    with trio.fail_after(60):
        sim, provd = await start_installation(nursery, tmp_path, extra="")
        bad = Phone(
            mac="00:15:65:00:00:09", user="mallory", password="x-Pwd-9", code="999999999999"
        )
        (result,) = await sim.provision([bad])
        assert result.outcome == "error"
        assert "provisioning code" in result.error
        assert stored(provd)[bad.mac]["state"] == "failed"
        assert await provd.stop() == 0


async def test_kill_9_during_provisioning_loses_nothing(tmp_path, nursery):
    """kill -9 mid-provisioning, restart: no stored phone lost, no half-written record."""
    with trio.fail_after(90):
        # debug: provisioning.stored (a debug line) says the phone is in the store
        sim, provd = await start_installation(nursery, tmp_path, level="debug")
        results = await sim.provision(PHONES[:2])
        assert all(r.ok for r in results)
        sim.faults.delay(Party.SYSCLIENT, 0.5)  # keep the next registration in flight
        async with trio.open_nursery() as inner:
            inner.start_soon(sim.provision, PHONES[2:])
            await provd.wait_for(f"event=provisioning.stored .*mac={PHONES[2].mac}")
            await provd.kill()
            inner.cancel_scope.cancel()
        conn = sqlite3.connect(provd.workdir / "provd.db")
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        conn.close()
        rows = stored(provd)
        assert {PHONES[0].mac, PHONES[1].mac, PHONES[2].mac} <= set(rows)
        for mac in (PHONES[0].mac, PHONES[1].mac):
            assert rows[mac]["state"] == "provisioned" and rows[mac]["sysclient_password"]
        assert rows[PHONES[2].mac]["code"] and rows[PHONES[2].mac]["password"]
        sim.faults.clear()
        await provd.start(nursery)
        (again,) = await sim.provision(PHONES[2:])
        (tmp_path / "provd.out").write_text(provd.output())
        assert again.ok, again
        for phone in PHONES:
            await sim.wait_online(phone.mac)
        assert await provd.stop() == 0


async def test_sighup_changes_log_level_and_keeps_pbx_session(tmp_path, nursery):
    """SIGHUP with log level debug: debug lines appear, the PBX session is not dropped."""
    with trio.fail_after(60):
        sim, provd = await start_installation(nursery, tmp_path)
        await sim.pbx.wait_logged_in()
        logins = sim.pbx.status.logins
        provd.level = "debug"
        provd.write_config()
        mark = len(provd.lines)
        provd.send_signal(signal.SIGHUP)
        await provd.wait_for("event=daemon.reloaded log_level=debug", after=mark)
        (result,) = await sim.provision(PHONES[:1])
        assert result.ok
        await provd.wait_for("<7>event=", after=mark)
        assert sim.pbx.status.logins == logins and sim.pbx.status.connected
        # A broken config is refused and the old one kept.
        provd.config_path.write_text("[log]\nlevel = 'shouting'\n")
        provd.send_signal(signal.SIGHUP)
        await provd.wait_for("event=daemon.reload_refused", after=mark)
        assert sim.pbx.status.logins == logins
        assert await provd.stop() == 0


async def test_operator_cli_and_no_secret_in_any_output(tmp_path, nursery):
    """phones list/show/status/remove work; no secret appears in any output of the run."""
    with trio.fail_after(90):
        sim, provd = await start_installation(nursery, tmp_path, level="debug")
        results = await sim.provision(PHONES)
        assert all(r.ok for r in results)
        outputs = []
        listing = await run_cli(provd, "phones", "list")
        assert listing.returncode == 0
        assert all(p.mac in listing.stdout for p in PHONES)
        show = await run_cli(provd, "phones", "show", PHONES[0].mac)
        assert show.returncode == 0 and "provisioned" in show.stdout and "********" in show.stdout
        status = await run_cli(provd, "status")
        assert status.returncode == 0 and "phones         3" in status.stdout
        render = await run_cli(provd, "render", PHONES[0].mac)
        assert render.returncode == 0 and "account.1.password" in render.stdout
        outputs += [
            listing.stdout,
            show.stdout,
            status.stdout,
            render.stdout,
            listing.stderr,
            show.stderr,
            status.stderr,
            render.stderr,
        ]
        removed = await run_cli(provd, "phones", "remove", PHONES[2].mac)
        assert removed.returncode == 0 and "removed" in removed.stdout
        await sim.wait_online(PHONES[2].mac, online=False)
        assert PHONES[2].mac not in stored(provd)
        assert await provd.stop() == 0
        outputs.append(provd.output())
        secrets = [
            INSTANCE_PASSWORD,
            "Admin-Pwd-e2e-42",
            "Turn-Secret-e2e",
            *(p.password for p in PHONES),
            *(sim.sysclient_password(p.mac) for p in PHONES),
        ]
        everything = "\n".join(outputs)
        assert "event=phone.provisioned" in everything  # the run was logged
        for secret in secrets:
            assert secret and secret not in everything, "a secret leaked into the output"


async def test_repeated_request_is_idempotent(tmp_path, nursery):
    """The same MAC and code again is answered ok at once, without a new registration."""
    with trio.fail_after(60):
        # debug: provisioning.ok (a debug line) marks the end of the repeated request
        sim, provd = await start_installation(nursery, tmp_path, level="debug")
        (first,) = await sim.provision(PHONES[:1])
        assert first.ok
        mark = len(provd.lines)
        (again,) = await sim.provision([attrs.evolve(PHONES[0], code=first.code)])
        assert again.ok, again
        await provd.wait_for("event=provisioning.ok", after=mark)
        assert len(sim.passwords_issued(PHONES[0].mac)) == 1
        assert not any("sysclient.password_assigned" in line for line in provd.lines[mark:])
        assert await provd.stop() == 0


async def test_render_masks_secrets_unless_asked(tmp_path, nursery):
    """provd render masks the SIP password; --show-secrets prints it."""
    with trio.fail_after(60):
        sim, provd = await start_installation(nursery, tmp_path)
        (result,) = await sim.provision(PHONES[:1])
        assert result.ok
        masked = await run_cli(provd, "render", PHONES[0].mac)
        clear = await run_cli(provd, "render", PHONES[0].mac, "--show-secrets")
        assert masked.returncode == clear.returncode == 0
        assert PHONES[0].password not in masked.stdout and "********" in masked.stdout
        assert PHONES[0].password in clear.stdout
        assert await provd.stop() == 0

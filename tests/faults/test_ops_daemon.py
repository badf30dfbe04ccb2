"""Issue 13 (operations) against the real daemon: findings 1 and 5 (and 9's start-up
warning)."""

from __future__ import annotations

import functools
import json
import re
import signal
from pathlib import Path

import trio

from provd import config as provd_config
from provd.backoff import Backoff
from provd.sim import SimConfig, Simulator

from ..e2e.harness import ProvdProcess, cli

ROOT = Path(__file__).resolve().parents[2]


class ExampleProvd(ProvdProcess):
    """provd on etc/provd.toml as shipped, but for what a test must move: listeners on free
    loopback ports and the state in the test's directory."""

    def write_config(self) -> None:
        text = (ROOT / "etc" / "provd.toml").read_text()
        moved = {
            'listen = "127.0.0.1:8090"': f'listen = "127.0.0.1:{self.port}"',
            'listen = "127.0.0.1:8091"': 'listen = "127.0.0.1:0"',
            'path = "/var/lib/provd/provd.db"': f'path = "{self.workdir / "provd.db"}"',
            'socket = ""': f'socket = "{self.socket}"',
            'listen = "127.0.0.1:9090"': 'listen = "127.0.0.1:0"',
        }
        for old, new in moved.items():
            assert text.count(old) == 1, old
            text = text.replace(old, new)
        self.config_path.write_text(text)


async def run_cli(provd: ProvdProcess, *args: str):
    return await trio.to_thread.run_sync(functools.partial(cli, *args, provd=provd))


async def test_example_files_provision_together_as_shipped(tmp_path, nursery):
    """Finding 1: etc/provd.toml and etc/sim.toml, unchanged but for ports and state paths,
    provision the sample phone; provd warns about the published example password."""
    sim_config = SimConfig.from_toml(ROOT / "etc" / "sim.toml")
    assert sim_config.provd.url == "ws://127.0.0.1:8090/provd"  # = provd's example listener
    with trio.fail_after(60):
        provd = ExampleProvd(tmp_path)
        await provd.start(nursery)
        warning = await provd.wait_for(r"^<4>event=daemon\.weak_password ")
        assert "published example password" in warning.string
        assert provd_config.EXAMPLE_PASSWORD not in provd.output()
        sim = Simulator(sim_config, backoff=Backoff(initial=0.05, cap=0.3))
        await nursery.start(sim.run)
        sim.set_provd(provd.appservice_url + "provd")  # the URL only: the password as shipped
        results = await sim.provision()
        assert [r.outcome for r in results] == ["ok"] * len(sim_config.phones), results
        for phone in sim_config.phones:
            await sim.wait_online(phone.mac)
        assert await provd.stop() == 0


async def test_refused_reload_is_reported(tmp_path, nursery):
    """Finding 5: `provd reload` exits non-zero naming the key when the daemon refuses the
    file, and `status --json` says ok false with the last reload; a good file clears it."""
    with trio.fail_after(60):
        provd = ProvdProcess(tmp_path)
        await provd.start(nursery)
        good = provd.config_path.read_text()
        provd.config_path.write_text(good.replace('format = "kv"', 'format = "loud"'))
        refused = await run_cli(provd, "reload")
        assert refused.returncode == 1, refused
        assert "log.format" in refused.stderr
        status = await run_cli(provd, "status", "--json")
        answer = json.loads(status.stdout)
        assert answer["ok"] is False
        assert answer["last_reload"]["ok"] is False
        assert "log.format" in answer["last_reload"]["error"]
        text = await run_cli(provd, "status")
        assert "REFUSED" in text.stdout

        # a file that is not even TOML: refused without reaching the daemon
        provd.config_path.write_text(good + "[[[")
        broken = await run_cli(provd, "reload")
        assert broken.returncode == 1 and "not valid TOML" in broken.stderr

        # SIGHUP (what `kill -HUP` did) is recorded the same way
        mark = len(provd.lines)
        provd.config_path.write_text(good)
        provd.send_signal(signal.SIGHUP)
        await provd.wait_for(re.compile(r"event=daemon\.reloaded"), after=mark)
        answer = json.loads((await run_cli(provd, "status", "--json")).stdout)
        assert answer["ok"] is True and answer["last_reload"]["ok"] is True
        ok = await run_cli(provd, "reload")
        assert ok.returncode == 0, ok
        assert await provd.stop() == 0
        gone = await run_cli(provd, "reload")
        assert gone.returncode == 3 and "not running" in gone.stderr

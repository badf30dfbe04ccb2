"""Issue 13 (operations), finding 8: the running simulator takes commands (add or remove a
phone, push a config change, restart Devices) through its control socket."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile

import attrs
import pytest
import trio

from provd.cli import sim as sim_cli

from ..e2e.harness import ROOT, ProvdProcess, sim_config

MAC = "805ec0dd0001"


def ctl(socket_path: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "provd", "sim", "ctl", "--socket", socket_path, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


async def run_ctl(socket_path: str, *args: str) -> tuple[int, dict]:
    proc = await trio.to_thread.run_sync(lambda: ctl(socket_path, *args))
    return proc.returncode, (json.loads(proc.stdout) if proc.stdout else {"stderr": proc.stderr})


@pytest.fixture
def socket_path():
    directory = tempfile.mkdtemp(prefix="provd-simctl-", dir="/tmp")  # AF_UNIX paths are short
    yield directory + "/sim.sock"
    shutil.rmtree(directory)


async def test_sim_ctl_add_push_restart_remove(tmp_path, nursery, socket_path):
    with trio.fail_after(120):
        provd = ProvdProcess(tmp_path)
        await provd.start(nursery)
        config = sim_config()
        config = attrs.evolve(
            config, provd=attrs.evolve(config.provd, url=provd.appservice_url + "provd")
        )
        sim = await nursery.start(
            lambda task_status: sim_cli.run(config, control=socket_path, task_status=task_status)
        )
        await sim.pbx.wait_logged_in()

        code, answer = await run_ctl(socket_path, "add", MAC, "dora", "--password", "Dora-Pwd-1")
        assert code == 0 and answer["outcome"] == "ok", answer
        await sim.wait_online(MAC)
        code, answer = await run_ctl(socket_path, "status")
        assert code == 0 and answer["provd_listed"] is True and MAC in answer["online"]

        mark = len(provd.lines)
        code, answer = await run_ctl(socket_path, "push", "Phones", "coder=G711A,G722")
        assert code == 0 and answer["changed"] == ["PHONE"], answer
        await provd.wait_for(rf"event=sysclient\.config_item type=PHONE .*mac={MAC}", after=mark)

        mark = len(provd.lines)
        code, answer = await run_ctl(socket_path, "restart-devices")
        assert code == 0, answer
        await provd.wait_for(rf"event=sysclient\.disconnected .*mac={MAC}", after=mark)
        await sim.wait_online(MAC)

        code, answer = await run_ctl(socket_path, "push", "Phones", "colour=red")
        assert code == 1 and "colour" in answer["error"]
        code, answer = await run_ctl(socket_path, "add", "not-a-mac", "x")
        assert code == 1 and "12 hex digits" in answer["error"], answer
        code, answer = await run_ctl(socket_path, "push", "NoSuchCategory", "tz=UTC")
        assert code == 1, answer
        code, answer = await run_ctl(socket_path, "remove", MAC)
        assert code == 0 and answer["removed"] is True
        assert sim.device(MAC) is None
        await sim.wait_online(MAC, online=False)

        code, answer = await run_ctl(socket_path + ".none", "status")
        assert code == 3 and "no simulator" in answer["stderr"]
        assert await provd.stop() == 0
    nursery.cancel_scope.cancel()

"""Helpers for sysclient tests against the real daemon: a simulator in a chosen variant,
a provd child with extra provisioning settings, and read-only views of what provd holds."""

from __future__ import annotations

import functools
import json
import os
import sqlite3
from pathlib import Path

import trio

from provd.actors import control
from provd.backoff import Backoff
from provd.sim import Simulator

from .harness import ProvdProcess, sim_config

#: Quick admission on silence and quick reconnects keep these tests short.
FAST = "admit_quiet = 0.5\n"


async def install(
    nursery: trio.Nursery,
    workdir: Path,
    *,
    devices: dict | None = None,
    provisioning: str = FAST,
    config=None,
) -> tuple[Simulator, ProvdProcess]:
    """The simulator (Devices in the given variant) and a provd child pointed at it."""
    sim = Simulator(
        config or sim_config(devices=devices or {}), backoff=Backoff(initial=0.05, cap=0.3)
    )
    await nursery.start(sim.run)
    provd = ProvdProcess(workdir, provisioning=provisioning)
    await provd.start(nursery)
    sim.set_provd(provd.appservice_url + "provd")
    return sim, provd


def rows(provd: ProvdProcess) -> dict[str, dict]:
    conn = sqlite3.connect(provd.workdir / "provd.db")
    conn.row_factory = sqlite3.Row
    found = {r["mac"]: dict(r) for r in conn.execute("SELECT * FROM phones")}
    conn.close()
    return found


def items(provd: ProvdProcess, mac: str) -> dict[str, dict]:
    conn = sqlite3.connect(provd.workdir / "provd.db")
    found = {
        t: json.loads(i)
        for t, i in conn.execute("SELECT type, item FROM config_items WHERE mac = ?", [mac])
    }
    conn.close()
    return found


async def status(provd: ProvdProcess, cmd: str = "status", **args) -> dict:
    answer = await trio.to_thread.run_sync(
        functools.partial(control.request, provd.socket, cmd, **args)
    )
    assert answer is not None and answer["ok"], answer
    return answer


def open_fds(provd: ProvdProcess) -> int:
    return len(os.listdir(f"/proc/{provd.pid}/fd"))


async def wait_lines(provd: ProvdProcess, pattern: str, count: int, after: int = 0) -> None:
    """Until ``pattern`` matched ``count`` output lines (from line ``after`` on)."""
    for _ in range(count):
        await provd.wait_for(pattern, after=after)
        after = next(
            i + 1 for i in range(after, len(provd.lines)) if _search(pattern, provd.lines[i])
        )


def _search(pattern: str, line: str) -> bool:
    import re

    return re.search(pattern, line) is not None


async def healthy(provd: ProvdProcess, phones: int) -> dict:
    """The daemon answers, runs one actor per phone, none of them crashed."""
    answer = await status(provd)
    assert answer["phones"] == phones and answer["actors"] == phones, answer
    assert "supervisor.gave_up" not in provd.output()
    assert "supervisor.actor_crashed" not in provd.output()
    return answer

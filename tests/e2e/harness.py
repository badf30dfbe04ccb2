"""The real daemon as a child process, and a simulated installation around it.

:class:`ProvdProcess` runs ``python -m provd run`` with a config file it writes, reads the
daemon's output line by line through a pipe (so tests wait on events, never on sleeps) and
keeps every line for the secrets scan.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import trio

from provd.backoff import Backoff
from provd.sim import SimConfig, Simulator

ROOT = Path(__file__).resolve().parents[2]
INSTANCE_PASSWORD = "Instance-Pa55-e2e"
_READY = re.compile(r"event=daemon\.ready .*appservice=(\S+) phones=(\S+)")


def sim_config(**overrides) -> SimConfig:
    data = {
        "provd": {"url": None, "password": INSTANCE_PASSWORD},
        "users": {"timeout": 20.0},
        "devices": {
            "domains": [
                {
                    "name": "example.com",
                    "admin_password": "Admin-Pwd-e2e-42",
                    "categories": [
                        {
                            "name": "Phones",
                            "stun_server": "stun.example.com:3478",
                            "turn_server": "turn.example.com:3478",
                            "turn_user": "turnuser",
                            "turn_password": "Turn-Secret-e2e",
                            "tz": "Europe/Berlin",
                        },
                    ],
                },
                {"name": "other.org", "categories": [{"name": "Phones"}]},
            ]
        },
    }
    for key, value in overrides.items():
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    return SimConfig.from_mapping(data)


def fast_backoff() -> Backoff:
    return Backoff(initial=0.05, cap=0.3)


class ProvdProcess:
    """One ``provd run`` child. ``start`` → ready; ``stop`` → SIGTERM and exit 0 checked."""

    def __init__(
        self,
        workdir: Path,
        *,
        password: str = INSTANCE_PASSWORD,
        level: str = "info",
        extra: str = "",
    ) -> None:
        self.workdir = workdir
        self.config_path = workdir / "provd.toml"
        # AF_UNIX paths are short; pytest's tmp paths may not be.
        self.socket = tempfile.mkdtemp(prefix="provd-", dir="/tmp") + "/ctl.sock"
        self.password = password
        self.level = level
        self.extra = extra
        self.appservice_port = 0
        self.lines: list[str] = []
        self.appservice_url = ""
        self.phones_url = ""
        self.proc: trio.Process | None = None
        self._changed = trio.Event()
        self.exits: list[int] = []

    def write_config(self) -> None:
        self.config_path.write_text(
            f'[appservice]\nlisten = "127.0.0.1:{self.appservice_port}"\n'
            f'password = "{self.password}"\nlogin_timeout = 5.0\n'
            '[phones]\nlisten = "127.0.0.1:0"\n'
            f'[store]\npath = "{self.workdir / "provd.db"}"\n'
            f'[log]\nlevel = "{self.level}"\nformat = "kv"\n'
            "[provisioning]\ntimeout = 15.0\nbackoff_initial = 0.05\nbackoff_cap = 0.5\n"
            "handshake_timeout = 5.0\n"
            f'[control]\nsocket = "{self.socket}"\n' + self.extra
        )

    async def start(self, nursery: trio.Nursery) -> None:
        self.write_config()
        mark = len(self.lines)
        self.proc = await trio.lowlevel.open_process(
            [sys.executable, "-m", "provd", "run", "--config", str(self.config_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
            env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"},
        )
        nursery.start_soon(self._read, self.proc)
        match = await self.wait_for(_READY, after=mark)
        self.appservice_url, self.phones_url = match.group(1), match.group(2)
        self.appservice_port = int(self.appservice_url.rsplit(":", 1)[1].strip("/"))

    async def _read(self, proc: trio.Process) -> None:
        buffer = b""
        assert proc.stdout is not None
        async for chunk in proc.stdout:
            buffer += chunk
            *complete, buffer = buffer.split(b"\n")
            for line in complete:
                self.lines.append(line.decode("utf-8", "replace"))
            self._changed.set()
            self._changed = trio.Event()
        self.exits.append(await proc.wait())
        self._changed.set()
        self._changed = trio.Event()

    async def wait_for(self, pattern: str | re.Pattern, *, after: int = 0) -> re.Match:
        """The first output line from index ``after`` on matching ``pattern``."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        seen = after
        while True:
            for line in self.lines[seen:]:
                match = regex.search(line)
                if match:
                    return match
            seen = len(self.lines)
            if self.proc is not None and self.proc.returncode is not None and self.exits:
                raise AssertionError(f"provd exited ({self.exits[-1]}) before {regex.pattern!r}")
            await self._changed.wait()

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    async def stop(self) -> int:
        """SIGTERM and wait; returns the exit status."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        with trio.fail_after(20):
            code = await self.proc.wait()
        return code

    async def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        await self.proc.wait()

    def output(self) -> str:
        return "\n".join(self.lines)


async def start_installation(nursery: trio.Nursery, workdir: Path, **provd_kw):
    """The simulator and a provd child pointed at each other; the PBX logged in."""
    sim = Simulator(sim_config(), backoff=fast_backoff())
    await nursery.start(sim.run)
    provd = ProvdProcess(workdir, **provd_kw)
    await provd.start(nursery)
    sim.set_provd(provd.appservice_url + "provd")
    return sim, provd


def cli(*args: str, provd: ProvdProcess) -> subprocess.CompletedProcess:
    """Run a ``provd`` operator command against ``provd``'s config (blocking, short)."""
    return subprocess.run(
        [sys.executable, "-m", "provd", args[0], "--config", str(provd.config_path), *args[1:]],
        capture_output=True,
        text=True,
        cwd=provd.workdir,
        timeout=30,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )

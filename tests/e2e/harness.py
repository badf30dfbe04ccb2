"""A simulated installation around the real daemon (a child process)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import trio

from provd.backoff import Backoff
from provd.child import DaemonChild
from provd.sim import SimConfig, Simulator

ROOT = Path(__file__).resolve().parents[2]
INSTANCE_PASSWORD = "Instance-Pa55-e2e"


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


class ProvdProcess(DaemonChild):
    """A daemon child with a config this test writes (and rewrites, for SIGHUP)."""

    def __init__(
        self,
        workdir: Path,
        *,
        password: str = INSTANCE_PASSWORD,
        level: str = "info",
        extra: str = "",
        provisioning: str = "",
        phones: str = "",
    ) -> None:
        super().__init__(workdir / "provd.toml", cwd=workdir)
        self.workdir = workdir
        # AF_UNIX paths are short; pytest's tmp paths may not be.
        self.socket = tempfile.mkdtemp(prefix="provd-", dir="/tmp") + "/ctl.sock"
        self.password = password
        self.level = level
        self.extra = extra
        #: Further ``[provisioning]`` lines (``key = value\n``...), e.g. ping settings.
        self.provisioning = provisioning
        #: Further ``[phones]`` lines (``key = value\n``...), e.g. ``sip_transport``.
        self.phones_lines = phones
        self.port = 0

    def write_config(self) -> None:
        self.config_path.write_text(
            f'[appservice]\nlisten = "127.0.0.1:{self.port}"\n'
            f'password = "{self.password}"\nlogin_timeout = 5.0\n'
            '[phones]\nlisten = "127.0.0.1:0"\n' + self.phones_lines + "\n"
            f'[store]\npath = "{self.workdir / "provd.db"}"\n'
            f'[log]\nlevel = "{self.level}"\nformat = "kv"\n'
            "[provisioning]\ntimeout = 15.0\nbackoff_initial = 0.05\nbackoff_cap = 0.5\n"
            "handshake_timeout = 5.0\n" + self.provisioning + "\n"
            f'[control]\nsocket = "{self.socket}"\n' + self.extra
        )

    async def start(self, nursery: trio.Nursery) -> None:
        """Start; a restart keeps the app-service port, as a PBX's App object expects."""
        self.write_config()
        await super().start(nursery)
        self.port = self.appservice_port


async def start_installation(nursery: trio.Nursery, workdir: Path, **provd_kw):
    """The simulator and a provd child pointed at each other."""
    sim = Simulator(sim_config(), backoff=Backoff(initial=0.05, cap=0.3))
    await nursery.start(sim.run)
    provd = ProvdProcess(workdir, **provd_kw)
    await provd.start(nursery)
    sim.set_provd(provd.appservice_url + "provd")
    return sim, provd


def cli(*args: str, provd: ProvdProcess) -> subprocess.CompletedProcess:
    """Run a ``provd`` operator command against ``provd``'s config (blocking, short)."""
    command, *rest = args
    return subprocess.run(
        [sys.executable, "-m", "provd", command, "--config", str(provd.config_path), *rest],
        capture_output=True,
        text=True,
        cwd=provd.workdir,
        timeout=30,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )

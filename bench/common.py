"""Shared helpers for the benchmarks: timing, percentiles, a provd process, seeding."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from provd.store.database import Database

#: Configuration items like the simulated Devices sends (TURN password left out: it would
#: need the device password to be encrypted realistically; the sim benchmarks cover it).
CONFIG_ITEMS = {
    "PHONE": {"type": "PHONE", "coder": "G722,OPUS-WB,G711A,G711u,G729"},
    "MEDIA": {"type": "MEDIA", "stunServer": "stun.example.com:3478"},
    "NTP": {"type": "NTP", "tz": "Europe/Berlin", "ntp1": "0.pool.ntp.org", "ntp2": ""},
    "TLS_PROFILE": {"type": "TLS_PROFILE", "profile": "compatible"},
}

#: OUIs of each vendor, for MACs the phones server can tell apart.
VENDOR_OUI = {
    "yealink": "805ec0",
    "snom": "000413",
    "grandstream": "000b82",
    "fanvil": "0c383e",
    "poly": "0004f2",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def seed_phones(db_path: str, count: int) -> list[str]:
    """Store ``count`` provisioned phones (spread over the vendors); return their MACs."""
    db = Database(db_path)
    macs = []
    ouis = list(VENDOR_OUI.values())
    for i in range(count):
        mac = f"{ouis[i % len(ouis)]}{i:06x}"
        db.upsert_phone(
            mac=mac,
            code=f"{i:012d}",
            hwid=mac,
            usename=f"user{i}",
            cn=f"User {i}",
            password=f"pw-{i}-secret",
            domain="example.com",
            dns="pbx.example.com",
        )
        db.set_sysclient_password(mac, f"{i:032d}")
        for ctype, item in CONFIG_ITEMS.items():
            db.put_config_item(mac, ctype, item)
        db.set_state(mac, "provisioned")
        macs.append(mac)
    db.close()
    return macs


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


@contextmanager
def provd_process(workdir: Path, config_text: str) -> Iterator[subprocess.Popen]:
    """Run ``provd run`` with ``config_text``; stop it with SIGTERM afterwards."""
    config = workdir / "provd.toml"
    config.write_text(config_text)
    log = open(workdir / "provd.log", "ab")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "provd", "run", "--config", str(config)],
        cwd=workdir,
        stdout=log,
        stderr=log,
        env=_env(),
    )
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _env() -> dict[str, str]:
    """The environment for a provd child: this checkout importable even from another cwd."""
    root = str(Path(__file__).resolve().parent.parent)
    path = os.environ.get("PYTHONPATH", "")
    return {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": os.pathsep.join(p for p in (root, path) if p),
    }


def wait_for_line(path: Path, needle: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and needle in path.read_text(errors="replace"):
            return
        time.sleep(0.05)
    raise TimeoutError(f"{needle!r} not in {path} after {timeout} s")

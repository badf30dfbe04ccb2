"""Shared helpers for the benchmarks: percentiles, seeding, RSS, a provd child's config."""

from __future__ import annotations

from pathlib import Path

from provd.store.database import Database

#: Configuration items like the simulated Devices sends.
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


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def macs(count: int) -> list[str]:
    ouis = list(VENDOR_OUI.values())
    return [f"{ouis[i % len(ouis)]}{i:06x}" for i in range(count)]


def seed_phones(db_path: str, count: int) -> list[str]:
    """Store ``count`` provisioned phones (spread over the vendors); return their MACs."""
    db = Database(db_path)
    result = macs(count)
    for i, mac in enumerate(result):
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
    db.close()
    return result


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def provd_config(
    workdir: Path, *, password: str = "bench-password", appservice_port: int = 0, extra: str = ""
) -> Path:
    """Write a benchmark config (loopback, port 0 for phones, info logs) and return its path."""
    path = workdir / "provd.toml"
    path.write_text(
        f'[appservice]\nlisten = "127.0.0.1:{appservice_port}"\npassword = "{password}"\n'
        '[phones]\nlisten = "127.0.0.1:0"\nmiss_limit = 1000000\n'
        f'[store]\npath = "{workdir / "provd.db"}"\n[log]\nlevel = "info"\nformat = "kv"\n'
        f'[control]\nsocket = "{workdir / "ctl.sock"}"\n' + extra
    )
    return path


def bench_simulator(password: str, admin_password: str = "bench-admin"):
    """The simulated innovaphone side every provisioning bench runs against: one domain,
    one category, a generous Users timeout, quick reconnects."""
    from provd.backoff import Backoff
    from provd.sim import SimConfig, Simulator

    config = SimConfig.from_mapping(
        {
            "provd": {"url": None, "password": password},
            "users": {"timeout": 60.0},
            "devices": {
                "domains": [
                    {
                        "name": "example.com",
                        "admin_password": admin_password,
                        "categories": [{"name": "Phones"}],
                    }
                ]
            },
        }
    )
    return Simulator(config, backoff=Backoff(initial=0.05, cap=0.5))

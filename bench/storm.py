"""A boot storm: every phone fetches its file at once from a real ``provd run`` process.

Seeds the store with provisioned phones, starts the daemon, then has ``concurrency``
clients fetch each phone's per-phone file twice over loopback (the first pass renders, the
second is served from the render cache), as each vendor's phone would ask for it.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import trio

from provd.phones import Vendor, vendor_for_oui

from .common import free_port, percentile, provd_process, rss_kib, seed_phones, wait_for_line

USER_AGENT = {
    Vendor.YEALINK: "Yealink SIP-T46S 66.86.0.15 {mac_colon}",
    Vendor.SNOM: "Mozilla/4.0 (compatible; snomD785-SIP 10.1.73.16 1.1.5-IFX-05.01.12 {MAC})",
    Vendor.GRANDSTREAM: "Grandstream Model HW GXP2170 SW 1.0.11.3 DevId {mac}",
    Vendor.FANVIL: "Fanvil X4U 2.12.4 {mac}",
    Vendor.POLY: "FileTransport PolycomVVX-VVX_411-UA/5.9.5.0614",
}
FILE = {
    Vendor.YEALINK: "/{mac}.cfg",
    Vendor.SNOM: "/{MAC}.xml",
    Vendor.GRANDSTREAM: "/Grandstream/cfg{mac}.xml",
    Vendor.FANVIL: "/{mac}.cfg",
    Vendor.POLY: "/{mac}-user.cfg",
}


def _request(mac: str) -> tuple[str, dict[str, str]]:
    vendor = vendor_for_oui(mac)
    assert vendor is not None
    fmt = {
        "mac": mac,
        "MAC": mac.upper(),
        "mac_colon": ":".join(mac[i : i + 2] for i in range(0, 12, 2)),
    }
    return FILE[vendor].format(**fmt), {"User-Agent": USER_AGENT[vendor].format(**fmt)}


async def _storm(base: str, macs: list[str], concurrency: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    queue = list(macs)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:

        async def worker() -> None:
            while queue:
                mac = queue.pop()
                path, headers = _request(mac)
                start = time.perf_counter()
                response = await client.get(path, headers=headers)
                latencies.append(time.perf_counter() - start)
                if response.status_code != 200:
                    raise RuntimeError(f"{path}: HTTP {response.status_code}")

        start = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for _ in range(concurrency):
                nursery.start_soon(worker)
        elapsed = time.perf_counter() - start
    return elapsed, latencies


def _wrk_script(macs: list[str], path: Path) -> None:
    """A wrk Lua script that walks the phones, each request posing as that phone."""
    entries = []
    for mac in macs:
        file, headers = _request(mac)
        agent = headers["User-Agent"].replace('"', '\\"')
        entries.append(f'{{"{file}", "{agent}"}}')
    path.write_text(
        "local reqs = {" + ",\n".join(entries) + "}\n"
        "local i = 0\n"
        "request = function()\n"
        "  i = i % #reqs + 1\n"
        '  return wrk.format("GET", reqs[i][1], {["User-Agent"] = reqs[i][2]})\n'
        "end\n"
        "done = function(summary, latency, requests)\n"
        '  io.write(string.format("RESULT %d %d %d %d %d\\n", summary.requests,\n'
        "    summary.duration, latency:percentile(50), latency:percentile(99),\n"
        "    summary.errors.status + summary.errors.connect + summary.errors.read))\n"
        "end\n"
    )


def _wrk(base: str, script: Path, concurrency: int, seconds: int) -> tuple[float, float, float]:
    """(requests/s, p50 s, p99 s) from wrk; raises if any request failed."""
    out = subprocess.run(
        ["wrk", "-t", "1", "-c", str(concurrency), "-d", f"{seconds}s", "-s", str(script), base],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("RESULT"))
    requests, duration_us, p50, p99, errors = (int(v) for v in line.split()[1:])
    if errors:
        raise RuntimeError(f"wrk saw {errors} failed requests")
    return requests / (duration_us / 1e6), p50 / 1e6, p99 / 1e6


def run(phones: int = 1000, concurrency: int = 50) -> list[tuple[str, str, str]]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        start = time.perf_counter()
        macs = seed_phones(str(workdir / "provd.db"), phones)
        seed_time = time.perf_counter() - start
        port, app_port = free_port(), free_port()
        config = (
            f'[appservice]\nlisten = "127.0.0.1:{app_port}"\npassword = "bench-password"\n'
            f'[phones]\nlisten = "127.0.0.1:{port}"\nmiss_limit = 1000000\n'
            '[store]\npath = "provd.db"\n[log]\nlevel = "info"\nformat = "kv"\n'
        )
        with provd_process(workdir, config) as proc:
            start = time.perf_counter()
            wait_for_line(workdir / "provd.log", "daemon.ready", timeout=60)
            startup = time.perf_counter() - start
            rss_idle = rss_kib(proc.pid)
            base = f"http://127.0.0.1:{port}"
            cold_time, cold = trio.run(_storm, base, macs, concurrency)
            if shutil.which("wrk"):
                script = workdir / "storm.lua"
                _wrk_script(macs, script)
                rate, p50, p99 = _wrk(base, script, concurrency, seconds=5)
                warm_row = (
                    f"boot storm warm (wrk), {concurrency} conns",
                    f"{rate:,.0f} req/s",
                    f"p50 {p50 * 1e3:.1f} ms, p99 {p99 * 1e3:.1f} ms",
                )
            else:
                warm_time, warm = trio.run(_storm, base, macs, concurrency)
                warm_row = (
                    f"boot storm warm (httpx, client-bound), {concurrency} clients",
                    f"{len(warm) / warm_time:,.0f} req/s",
                    f"p50 {percentile(warm, 50) * 1e3:.1f} ms, "
                    f"p99 {percentile(warm, 99) * 1e3:.1f} ms",
                )
            rss_after = rss_kib(proc.pid)
    rows.append(
        (
            f"seed {phones} phones (SQLite)",
            f"{phones / seed_time:,.0f} phones/s",
            f"{seed_time:.2f} s",
        )
    )
    rows.append((f"daemon start with {phones} phones", "-", f"{startup:.2f} s"))
    rows.append(
        (
            f"boot storm cold (every file rendered), {concurrency} httpx clients",
            f"{len(cold) / cold_time:,.0f} req/s",
            f"p50 {percentile(cold, 50) * 1e3:.1f} ms, p99 {percentile(cold, 99) * 1e3:.1f} ms",
        )
    )
    rows.append(warm_row)
    rows.append(
        (
            f"daemon RSS, {phones} phones",
            f"{rss_idle / 1024:.1f} MiB idle",
            f"{rss_after / 1024:.1f} MiB after storms",
        )
    )
    return rows

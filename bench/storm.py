"""A boot storm: every phone fetches its file at once from a real ``provd run`` process.

Seeds the store with provisioned phones, starts the daemon, then has ``concurrency``
clients fetch each phone's per-phone file twice over loopback (the first pass renders, the
second is served from the render cache), as each vendor's phone would ask for it.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import trio

from provd.child import DaemonChild
from provd.phones import vendor_for_oui
from provd.phones.examples import phone_request

from . import nginx
from .common import percentile, provd_config, rss_kib, seed_phones

#: The boot storm targets: a share of nginx's rate on the same bytes, and a p99.
RATIO_TARGET = 0.25
P99_TARGET = 0.050


def _request(mac: str) -> tuple[str, dict[str, str]]:
    vendor = vendor_for_oui(mac)
    assert vendor is not None
    request = phone_request(vendor, mac)
    return request.path, {"User-Agent": request.user_agent}


async def _storm(
    base: str, macs: list[str], concurrency: int, bodies: dict[str, bytes] | None = None
) -> tuple[float, list[float]]:
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
                if bodies is not None:
                    bodies[path] = response.content

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


def _ratio_row(
    concurrency: int, provd: tuple[float, float, float], nginx: tuple[float, float, float] | None
) -> tuple[str, str, str, str, str]:
    rate, p50, p99 = provd
    name = f"boot storm warm (wrk, {concurrency} conns) vs nginx (1 worker, same bytes)"
    target = f">= {RATIO_TARGET}x nginx, p99 <= {P99_TARGET * 1e3:.0f} ms"
    if nginx is None:
        return (name, f"{rate:,.0f} req/s", f"p99 {p99 * 1e3:.1f} ms; nginx: not run", target, "-")
    ratio = rate / nginx[0]
    verdict = "PASS" if ratio >= RATIO_TARGET and p99 <= P99_TARGET else "FAIL"
    return (
        name,
        f"{ratio:.3f}x",
        f"provd {rate:,.0f} req/s p50 {p50 * 1e3:.1f} p99 {p99 * 1e3:.1f} ms; "
        f"nginx {nginx[0]:,.0f} req/s p50 {nginx[1] * 1e3:.1f} p99 {nginx[2] * 1e3:.1f} ms",
        target,
        verdict,
    )


async def _run(phones: int, concurrency: int, seconds: int) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        workdir = Path(tmp)
        start = time.perf_counter()
        seeded = seed_phones(str(workdir / "provd.db"), phones)
        seed_time = time.perf_counter() - start
        daemon = DaemonChild(provd_config(workdir))
        missing = nginx.available()
        async with trio.open_nursery() as nursery:
            start = time.perf_counter()
            await daemon.start(nursery)
            startup = time.perf_counter() - start
            assert daemon.proc is not None
            rss_idle = rss_kib(daemon.proc.pid)
            base = daemon.phones_url
            bodies: dict[str, bytes] = {}
            cold_time, cold = await _storm(base, seeded, min(concurrency, 50), bodies)
            if missing is None:
                script = workdir / "storm.lua"
                _wrk_script(seeded, script)
                provd = await trio.to_thread.run_sync(_wrk, base, script, concurrency, seconds)
            else:
                warm_time, warm = await _storm(base, seeded, min(concurrency, 50))
                provd = (len(warm) / warm_time, percentile(warm, 50), percentile(warm, 99))
            rss_after = rss_kib(daemon.proc.pid)
            await daemon.stop()
        yardstick = None
        if missing is None:
            root = workdir / "www"
            for path, body in bodies.items():
                target = root / path.lstrip("/")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(body)
            with nginx.serve(root, workdir) as url:
                yardstick = await trio.to_thread.run_sync(_wrk, url, script, concurrency, seconds)
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
            f"boot storm cold (every file rendered), {min(concurrency, 50)} httpx clients",
            f"{len(cold) / cold_time:,.0f} req/s",
            f"p50 {percentile(cold, 50) * 1e3:.1f} ms, p99 {percentile(cold, 99) * 1e3:.1f} ms",
        )
    )
    row = _ratio_row(concurrency, provd, yardstick)
    if missing is not None:
        row = (
            f"boot storm warm (httpx, client-bound), {min(concurrency, 50)} clients",
            f"{provd[0]:,.0f} req/s",
            f"p99 {provd[2] * 1e3:.1f} ms; no ratio: {missing}",
            row[3],
            "SKIP",
        )
    rows.append(row)
    rows.append(
        (
            f"daemon RSS, {phones} phones",
            f"{rss_idle / 1024:.1f} MiB idle",
            f"{rss_after / 1024:.1f} MiB after storms",
        )
    )
    return rows


def run(phones: int = 1000, concurrency: int = 200, seconds: int = 5) -> list[tuple[str, ...]]:
    return trio.run(_run, phones, concurrency, seconds)

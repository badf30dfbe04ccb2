"""Hostile load: do real phones still get their files (and get provisioned) under attack?

A real ``provd run`` with default throttling serves ``phones`` phones provisioned through
the simulator first (so the simulated Devices knows them and they stay provisioned: phones
merely seeded into the store are refused by Devices on their sysclient login and, after
five attempts, marked failed, which takes their files away mid-run). First without attack,
then while ``bench.attack`` (its own process, so its work doesn't slow this one's clock,
connecting from 127.0.0.2 so provd's per-address throttles meet the attacker, not the
simulator on 127.0.0.1) keeps 200 garbage/slowloris connections, a MAC scan and a login
brute force going against the same loopback ports:

- legitimate fetches: ``concurrency`` clients fetch known phones' files for ``seconds``;
  p50/p99 latency and rate, with and without the attack;
- provisioning: ``provision`` phones one at a time through the simulator, rate and p99.

Target: p99 of legitimate fetches under attack <= max(2x the p99 without, 100 ms).
Everything is loopback, bounded in count (attack connections, phones) and time.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import trio

from provd.child import DaemonChild
from provd.phones import vendor_for_oui
from provd.phones.examples import phone_request
from provd.sim import Phone, Simulator

from .common import bench_simulator, macs, percentile, provd_config

PASSWORD = "bench-hostile-password"
ROOT = str(Path(__file__).resolve().parent.parent)
#: The verdict's floor: a p99 under this is fine whatever the baseline was.
FLOOR = 0.100


async def _fetches(base: str, targets: list[str], concurrency: int, seconds: float):
    """(requests/s, latencies) of legitimate phones fetching their files for ``seconds``."""
    latencies: list[float] = []
    failures: list[int] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:

        async def worker(offset: int) -> None:
            i = offset
            while True:
                mac = targets[i % len(targets)]
                vendor = vendor_for_oui(mac)
                assert vendor is not None
                request = phone_request(vendor, mac)
                start = time.perf_counter()
                response = await client.get(
                    request.path, headers={"User-Agent": request.user_agent}
                )
                latencies.append(time.perf_counter() - start)
                if response.status_code != 200:
                    failures.append(response.status_code)
                i += concurrency

        start = time.perf_counter()
        with trio.move_on_after(seconds):
            async with trio.open_nursery() as nursery:
                for n in range(concurrency):
                    nursery.start_soon(worker, n)
        elapsed = time.perf_counter() - start
    return len(latencies) / elapsed, latencies, failures


async def _provision(sim: Simulator, phones: list[Phone]) -> tuple[float, list[float], list]:
    """(phones/s, latencies, the results that failed)."""
    start = time.perf_counter()
    results = await sim.provision(phones)
    elapsed = time.perf_counter() - start
    failed = [r for r in results if not r.ok]
    return len(phones) / elapsed, [r.latency for r in results], failed


def _ms(latencies: list[float]) -> str:
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    return f"p50 {p50 * 1e3:.1f} ms, p99 {p99 * 1e3:.1f} ms"


async def _run(
    phones: int,
    concurrency: int,
    seconds: float,
    provision: int,
    garbage: int,
    scanners: int,
    brute: int,
) -> list[tuple[str, str, str]]:
    sim = bench_simulator(PASSWORD, "x")
    every = macs(phones + 2 * provision)
    targets = [
        Phone(mac=m, user=f"t-{i}", password=f"pw-t-{i}") for i, m in enumerate(every[:phones])
    ]
    fresh = every[phones:]
    batches = [
        [Phone(mac=m, user=f"h{j}-{i}", password=f"pw-{j}-{i}") for i, m in enumerate(chunk)]
        for j, chunk in enumerate((fresh[:provision], fresh[provision:]))
    ]
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        workdir = Path(tmp)
        path = provd_config(workdir, password=PASSWORD)
        # Default throttling (the storm benchmark switches it off): that is what is measured.
        path.write_text(path.read_text().replace("miss_limit = 1000000\n", ""))
        daemon = DaemonChild(path)
        async with trio.open_nursery() as nursery:
            await nursery.start(sim.run)
            await daemon.start(nursery)
            sim.set_provd(daemon.appservice_url + "provd")
            base = daemon.phones_url
            results = await sim.provision(targets)
            if not all(r.ok for r in results):
                failed = [r for r in results if not r.ok]
                raise RuntimeError(f"{len(failed)} phones not provisioned: {failed[0].error}")
            seeded = [phone.mac for phone in targets]
            await _fetches(base, seeded, concurrency, 1.0)  # warm the render cache
            calm_rate, calm, calm_failed = await _fetches(base, seeded, concurrency, seconds)
            calm_prov_rate, calm_prov, calm_prov_failed = await _provision(sim, batches[0])

            attacker = await trio.lowlevel.open_process(
                [
                    sys.executable,
                    "-m",
                    "bench.attack",
                    base,
                    daemon.appservice_url,
                    str(seconds * 3 + 30),
                    "--garbage",
                    str(garbage),
                    "--scanners",
                    str(scanners),
                    "--brute",
                    str(brute),
                ],
                stdout=subprocess.PIPE,
                cwd=ROOT,
            )
            assert attacker.stdout is not None
            output = b""
            with trio.fail_after(60):
                async for chunk in attacker.stdout:
                    output += chunk
                    if b"ATTACKING\n" in output:
                        break
            if b"ATTACKING\n" not in output:
                raise RuntimeError("bench.attack exited before attacking: see its output")
            await trio.sleep(1.0)  # let the scan use up its misses and the throttle engage
            hot_rate, hot, hot_failed = await _fetches(base, seeded, concurrency, seconds)
            hot_prov_rate, hot_prov, hot_prov_failed = await _provision(sim, batches[1])
            attacker.terminate()
            async for chunk in attacker.stdout:
                output += chunk
            await attacker.wait()
            await daemon.stop()
            nursery.cancel_scope.cancel()
    lines = [x for x in output.decode().splitlines() if x.startswith("RESULT ")]
    counts = json.loads(lines[0][7:]) if lines else {}
    calm_p99, hot_p99 = percentile(calm, 99), percentile(hot, 99)
    target = max(2 * calm_p99, FLOOR)
    verdict = "PASS" if hot_p99 <= target and not calm_failed and not hot_failed else "FAIL"

    def failed(codes: list[int]) -> str:
        return f"; {len(codes)} FAILED (HTTP {sorted(set(codes))})" if codes else ""

    scan = {k[5:]: v for k, v in counts.items() if k.startswith("scan_")}
    return [
        (
            f"hostile: phones fetch, no attack, {concurrency} clients",
            f"{calm_rate:,.0f} req/s",
            _ms(calm) + failed(calm_failed),
        ),
        (
            f"hostile: phones fetch under attack ({garbage} garbage conns, MAC scan, login brute)",
            f"{hot_rate:,.0f} req/s",
            _ms(hot) + failed(hot_failed),
            f"p99 <= {target * 1e3:.0f} ms",
            verdict,
        ),
        (
            f"hostile: provision {provision} phones, no attack / under attack",
            f"{calm_prov_rate:,.0f} / {hot_prov_rate:,.0f} phones/s",
            f"p99 {percentile(calm_prov, 99) * 1e3:.0f} / {percentile(hot_prov, 99) * 1e3:.0f} ms"
            + "".join(
                f"; {len(f)} of {provision} failed {when}, e.g. {f[0].error}"
                for f, when in ((calm_prov_failed, "calm"), (hot_prov_failed, "under attack"))
                if f
            ),
            "every phone provisioned",
            "FAIL" if calm_prov_failed or hot_prov_failed else "PASS",
        ),
        (
            "hostile: attacker saw (scan answers, brute-force logins)",
            ", ".join(f"{k}: {v}" for k, v in sorted(scan.items())) or "-",
            f"logins refused {counts.get('brute_refused', 0)}, "
            f"accepted {counts.get('brute_logged_in', 0)}",
        ),
    ]


def run(
    phones: int = 300,
    concurrency: int = 10,
    seconds: float = 5.0,
    provision: int = 30,
    garbage: int = 200,
    scanners: int = 4,
    brute: int = 2,
) -> list[tuple[str, ...]]:
    return trio.run(_run, phones, concurrency, seconds, provision, garbage, scanners, brute)

"""Provisioning through the simulator, and the reconnect storm after an instance restart.

Runs the simulated installation in-process and a real ``provd run`` child: the Users
service provisions ``phones`` phones one at a time (each answered only after Devices
assigned a password and the initial configuration is committed), then provd is restarted
and every phone must come back through the challenge path, at most ``max_handshakes`` at a
time.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import trio

from provd.child import DaemonChild
from provd.sim import Phone

from .common import bench_simulator, macs, percentile, provd_config, rss_kib

PASSWORD = "bench-instance-password"


async def _run(phones: int, max_handshakes: int) -> list[tuple[str, str, str]]:
    sim = bench_simulator(PASSWORD, "bench-admin")
    sample = [
        Phone(mac=mac, user=f"user{i}", password=f"pw-{i}-bench")
        for i, mac in enumerate(macs(phones))
    ]
    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        workdir = Path(tmp)
        extra = (
            f"[provisioning]\nmax_handshakes = {max_handshakes}\n"
            "backoff_initial = 0.2\nbackoff_cap = 5.0\n"
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(sim.run)
            daemon = DaemonChild(provd_config(workdir, password=PASSWORD, extra=extra))
            await daemon.start(nursery)
            sim.set_provd(daemon.appservice_url + "provd")
            start = time.perf_counter()
            results = await sim.provision(sample)
            elapsed = time.perf_counter() - start
            failed = [r for r in results if not r.ok]
            if failed:
                raise RuntimeError(f"{len(failed)} phones failed, e.g. {failed[0]}")
            latencies = [r.latency for r in results]
            rows.append(
                (
                    f"provision {phones} phones, one at a time",
                    f"{phones / elapsed:,.0f} phones/s",
                    f"p50 {percentile(latencies, 50) * 1e3:.1f} ms, "
                    f"p99 {percentile(latencies, 99) * 1e3:.1f} ms",
                )
            )
            with trio.fail_after(120):
                for phone in sample:
                    await sim.wait_online(phone.mac)
            rss = rss_kib(daemon.pid)
            await daemon.stop()
            await daemon.wait_for("event=daemon.stopped")
            port = daemon.appservice_port
            provd_config(workdir, password=PASSWORD, appservice_port=port, extra=extra)
            start = time.perf_counter()
            await daemon.start(nursery)
            with trio.fail_after(120):
                for phone in sample:
                    await sim.wait_online(phone.mac)
            back = time.perf_counter() - start
            rows.append(
                (
                    f"restart: {phones} phones back via challenge (max {max_handshakes} at once)",
                    f"{phones / back:,.0f} phones/s",
                    f"{back:.2f} s until all online",
                )
            )
            rows.append((f"daemon RSS, {phones} phones connected", f"{rss / 1024:.1f} MiB", "-"))
            await daemon.stop()
            nursery.cancel_scope.cancel()
    return rows


def run(phones: int = 300, max_handshakes: int = 32) -> list[tuple[str, str, str]]:
    return trio.run(_run, phones, max_handshakes)

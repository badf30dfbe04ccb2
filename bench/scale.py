"""Scale: provisioning rate, restart time, RSS per phone and idle CPU at one size.

A real ``provd run`` child and the simulated installation (in this process): the Users
service provisions ``phones`` phones one at a time in chunks of 1,000 (the rate of each
chunk shows whether provisioning slows as the store grows), the daemon's RSS is read with
every phone connected, its CPU is sampled for ``idle_seconds`` with every phone online and
the sysclient keep-alive (websocket ping every ``ping_interval`` s) running, then provd is
restarted and every phone must come back through the challenge path, at most
``max_handshakes`` at a time. Everything is loopback and bounded: provisioning stops at
``deadline`` seconds (the figures then say how many phones were done), every wait has a
``fail_after``.
"""

from __future__ import annotations

import compileall
import os
import tempfile
import time
from pathlib import Path

import attrs
import trio

import provd
from provd.child import DaemonChild
from provd.sim import Phone, Simulator

from .common import bench_simulator, macs, percentile, provd_config, rss_kib

PASSWORD = "bench-instance-password"
CHUNK = 1000


@attrs.define
class ScaleResult:
    phones: int  # asked for
    provisioned: int = 0
    provision_rate: float = 0.0
    provision_p99: float = 0.0
    #: CPU seconds per provisioned phone, of the daemon and of this (simulator) process:
    #: steadier than the rate on a shared machine, where the rate mostly shows the load.
    provision_cpu: float = 0.0
    provision_cpu_sim: float = 0.0
    #: (store size before the chunk, phones/s of the chunk)
    chunks: list[tuple[int, float]] = attrs.Factory(list)
    rss_base_kib: int = 0
    rss_kib: int = 0
    idle_cpu: float = 0.0  # share of one core
    idle_seconds: float = 0.0
    restart: float = 0.0  # seconds until every phone is back online
    first_back: float = 0.0  # seconds until the first phone is back online
    max_handshakes: int = 0
    ping_interval: float = 0.0
    #: CPU seconds of this (simulator) process per phone back after the restart.
    restart_cpu_sim: float = 0.0

    @property
    def rss_per_phone(self) -> float:
        """Bytes of RSS each connected phone adds over the daemon's empty start."""
        return (self.rss_kib - self.rss_base_kib) * 1024 / max(1, self.provisioned)


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def _online(sim: Simulator) -> int:
    return len(sim.devices_app._online)  # a count, not a copy of a 10k set


async def _provision(
    sim: Simulator,
    sample: list[Phone],
    deadline: float,
    start: float,
    latencies: list[float],
    result: ScaleResult,
) -> None:
    """Provision ``sample`` in chunks of ``CHUNK`` until done or ``deadline`` has passed."""
    for offset in range(0, len(sample), CHUNK):
        if time.perf_counter() - start > deadline:
            break
        chunk = sample[offset : offset + CHUNK]
        chunk_start = time.perf_counter()
        results = await sim.provision(chunk)
        failed = [r for r in results if not r.ok]
        if failed:
            raise RuntimeError(f"{len(failed)} phones failed, e.g. {failed[0]}")
        latencies += [r.latency for r in results]
        result.chunks.append((offset, len(chunk) / (time.perf_counter() - chunk_start)))
        result.provisioned += len(chunk)


def _compile_provd() -> None:
    """Byte-compile provd as an installed daemon has it (the Debian package compiles at
    build, pip at install): with ``PYTHONDONTWRITEBYTECODE`` set, as on the development
    VM, every start of the child compiled its modules from source again (a fifth of its
    import time, which the first phone back after a restart waits for)."""
    compileall.compile_dir(Path(provd.__file__).parent, quiet=1)


async def _run(
    phones: int, max_handshakes: int, ping_interval: float, idle_seconds: float, deadline: float
) -> ScaleResult:
    _compile_provd()
    result = ScaleResult(phones=phones, max_handshakes=max_handshakes, ping_interval=ping_interval)
    sim = bench_simulator(PASSWORD, "bench-admin")
    sample = [
        Phone(mac=mac, user=f"user{i}", password=f"pw-{i}-bench")
        for i, mac in enumerate(macs(phones))
    ]
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        workdir = Path(tmp)
        extra = (
            f"[provisioning]\nmax_handshakes = {max_handshakes}\n"
            f"backoff_initial = 0.2\nbackoff_cap = 5.0\nping_interval = {ping_interval}\n"
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(sim.run)
            daemon = DaemonChild(provd_config(workdir, password=PASSWORD, extra=extra))
            await daemon.start(nursery)
            assert daemon.proc is not None
            sim.set_provd(daemon.appservice_url + "provd")
            await trio.sleep(1.0)  # settle: the PBX logs in, provd answers AppInfo
            result.rss_base_kib = rss_kib(daemon.proc.pid)
            latencies: list[float] = []
            start = time.perf_counter()
            cpu, cpu_sim = _cpu_ticks(daemon.proc.pid), _cpu_ticks(os.getpid())
            with trio.fail_after(deadline + 300):  # the deadline is checked between chunks
                await _provision(sim, sample, deadline, start, latencies, result)
            elapsed = time.perf_counter() - start
            n = result.provisioned
            tick = os.sysconf("SC_CLK_TCK")
            result.provision_cpu = (_cpu_ticks(daemon.proc.pid) - cpu) / tick / max(1, n)
            result.provision_cpu_sim = (_cpu_ticks(os.getpid()) - cpu_sim) / tick / max(1, n)
            result.provision_rate = n / elapsed
            result.provision_p99 = percentile(latencies, 99)
            with trio.fail_after(120 + n / 50):
                await sim.watch.wait_until(lambda: _online(sim) >= n)
            await trio.sleep(2.0)  # admission quiet periods end, config items land
            pid = daemon.proc.pid
            result.rss_kib = rss_kib(pid)
            ticks = _cpu_ticks(pid)
            t0 = time.perf_counter()
            await trio.sleep(idle_seconds)
            result.idle_seconds = time.perf_counter() - t0
            result.idle_cpu = (_cpu_ticks(pid) - ticks) / os.sysconf("SC_CLK_TCK")
            result.idle_cpu /= result.idle_seconds
            await daemon.stop()
            await daemon.wait_for("event=daemon.stopped")
            with trio.fail_after(60):
                await sim.watch.wait_until(lambda: _online(sim) == 0)
            port = daemon.appservice_port
            provd_config(workdir, password=PASSWORD, appservice_port=port, extra=extra)
            start = time.perf_counter()
            cpu_sim = _cpu_ticks(os.getpid())

            async def first_back() -> None:
                # Watched from the spawn on, not after daemon.ready: the first phones
                # reconnect while the daemon still loads the others (issue 14).
                await sim.watch.wait_until(lambda: _online(sim) >= 1)
                result.first_back = time.perf_counter() - start

            nursery.start_soon(first_back)
            await daemon.start(nursery)
            with trio.fail_after(300 + n / 10):
                await sim.watch.wait_until(lambda: _online(sim) >= n)
            result.restart = time.perf_counter() - start
            result.restart_cpu_sim = (_cpu_ticks(os.getpid()) - cpu_sim) / tick / max(1, n)
            await daemon.stop()
            nursery.cancel_scope.cancel()
    return result


def measure(
    phones: int,
    *,
    max_handshakes: int = 32,
    ping_interval: float = 30.0,
    idle_seconds: float = 15.0,
    deadline: float = 600.0,
) -> ScaleResult:
    return trio.run(_run, phones, max_handshakes, ping_interval, idle_seconds, deadline)

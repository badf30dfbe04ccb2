"""``python -m bench.keepalive``: provd's CPU per sysclient keep-alive ping (issue 14).

A focused harness for the idle-CPU figure of the scale bench: a real ``provd run`` child and
the simulated installation, ``--phones`` phones provisioned and online, then provd's CPU is
read (from ``/proc/PID/task/PID/schedstat``: nanoseconds of the trio thread) for
``--window`` seconds (``--repeat`` times) with the keep-alive pinging every ``--interval``
seconds, and (``--baseline``) with the same phones after a restart with pings practically
off. The CPU per ping is the difference
over the pings sent in the window (``phones * window / interval``). ``--probe CMD`` runs a
command (py-spy, strace -c, perf) against provd during one more window.

Seconds of figures from a shared machine are pessimistic; compare runs taken back to back.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import attrs
import trio

from provd import logs
from provd.child import DaemonChild
from provd.sim import Phone

from .common import bench_simulator, macs, provd_config

PASSWORD = "bench-instance-password"


def cpu_ns(pid: int) -> int:
    """CPU nanoseconds of the main thread of ``pid`` (the trio loop: the keep-alive's)."""
    return int(Path(f"/proc/{pid}/task/{pid}/schedstat").read_text().split()[0])


def _online(sim) -> int:
    return len(sim.devices_app._online)


def user_system(pid: int) -> tuple[int, int]:
    """(user, system) clock ticks of ``pid`` (every thread)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]), int(fields[12])


async def _window(pid: int, seconds: float, probe: str | None) -> tuple[float, float]:
    """(CPU share of one core, elapsed seconds) of ``pid`` over ``seconds``, while the
    shell command ``probe`` (``{pid}`` and ``{seconds}`` replaced) runs, if given."""
    proc = None
    if probe:
        cmd = probe.format(pid=pid, seconds=int(seconds), spy=Path(sys.executable).parent)
        # a developer's own command line (py-spy, perf, strace with redirections)
        proc = subprocess.Popen(cmd, shell=True)  # noqa: S602, ASYNC220
    before, t0 = cpu_ns(pid), time.perf_counter()
    user, system = user_system(pid)
    await trio.sleep(seconds)
    used, elapsed = cpu_ns(pid) - before, time.perf_counter() - t0
    user2, system2 = user_system(pid)
    if proc is not None:
        await trio.to_thread.run_sync(proc.wait)
    print(f"  ticks user={user2 - user} system={system2 - system}", flush=True)
    return used / 1e9 / elapsed, elapsed


async def _run(args, reuse: bool) -> None:
    sim = bench_simulator(PASSWORD, "bench-admin")
    if args.state:
        sim.config = attrs.evolve(sim.config, state_file=f"{args.state}/sim.json")
    sample = [
        Phone(mac=mac, user=f"user{i}", password=f"pw-{i}-bench")
        for i, mac in enumerate(macs(args.phones))
    ]
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        workdir = Path(args.state or tmp)

        def config(interval: float, port: int = 0) -> Path:
            extra = (
                "[provisioning]\nmax_handshakes = 32\nbackoff_initial = 0.2\n"
                f"backoff_cap = 5.0\nping_interval = {interval}\n"
            )
            return provd_config(workdir, password=PASSWORD, appservice_port=port, extra=extra)

        async with trio.open_nursery() as nursery:
            await nursery.start(sim.run)
            daemon = DaemonChild(config(args.interval))
            await daemon.start(nursery)
            sim.set_provd(daemon.appservice_url + "provd")
            await trio.sleep(1.0)
            t0 = time.perf_counter()
            if not reuse:
                for offset in range(0, len(sample), 1000):
                    results = await sim.provision(sample[offset : offset + 1000])
                    assert all(r.ok for r in results), [r for r in results if not r.ok][:1]
                print(f"provisioned {args.phones} in {time.perf_counter() - t0:.1f} s", flush=True)
            with trio.fail_after(300):
                await sim.watch.wait_until(lambda: _online(sim) >= args.phones)
            print(f"{args.phones} online after {time.perf_counter() - t0:.1f} s", flush=True)
            if args.state:
                await sim.saved.wait_until(lambda: sim.unsaved_changes == 0)
            # every connection has been pinged once and settled into its rhythm
            await trio.sleep(max(args.settle, args.interval + 1.0))
            pid = daemon.pid
            print(f"provd pid {pid}", flush=True)
            for i in range(args.repeat + len(args.probe)):
                probe = args.probe[i - args.repeat] if i >= args.repeat else None
                share, elapsed = await _window(pid, args.window, probe)
                pings = args.phones * elapsed / args.interval if args.interval > 0 else 0
                per = share * elapsed / pings * 1e6 if pings else float("nan")
                print(
                    f"phones={args.phones} interval={args.interval:g} "
                    f"cpu={share * 100:.2f}% pings/s={pings / elapsed:.0f} "
                    f"cpu_per_ping_total={per:.1f}us",
                    flush=True,
                )
            if args.baseline:
                port = daemon.appservice_port
                await daemon.stop()
                with trio.fail_after(60):
                    await sim.watch.wait_until(lambda: _online(sim) == 0)
                config(1e6, port)  # practically off (0 is refused)
                await daemon.start(nursery)
                with trio.fail_after(300):
                    await sim.watch.wait_until(lambda: _online(sim) >= args.phones)
                await trio.sleep(args.settle)
                share0, _ = await _window(daemon.pid, args.window, None)
                print(f"baseline (pings off) cpu={share0 * 100:.2f}%", flush=True)
                if args.interval > 0:
                    per = (share - share0) * args.interval / args.phones * 1e6
                    print(f"cpu_per_ping_net={per:.1f}us (last window minus baseline)")
            await daemon.stop()
            nursery.cancel_scope.cancel()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--phones", type=int, default=2000)
    parser.add_argument("--interval", type=float, default=5.0)
    parser.add_argument("--window", type=float, default=20.0)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument(
        "--settle", type=float, default=20.0, help="seconds from all online to measuring"
    )
    parser.add_argument(
        "--state", default=None, help="a directory keeping the store and the simulator's state"
    )
    parser.add_argument("--baseline", action="store_true")
    parser.add_argument(
        "--probe",
        action="append",
        default=[],
        help="a shell command run during one more window ({pid}, {seconds}, {spy}: the "
        "venv's bin directory), e.g. '{spy}/py-spy record -p {pid} -d {seconds} -f raw -o F'",
    )
    args = parser.parse_args()
    logs.configure("warning", fmt="kv")
    reuse = False
    if args.state:
        # Keep the store and the simulator's devices between runs: phones come back through
        # the challenge instead of being provisioned again (minutes on a busy machine).
        Path(args.state).mkdir(parents=True, exist_ok=True)
        reuse = Path(args.state, "sim.json").exists() and Path(args.state, "provd.db").exists()
    trio.run(_run, args, reuse)


if __name__ == "__main__":
    main()

"""A PBX session's latency while hostile peers hammer the AppWebsocket listener.

A real ``provd run`` child; one logged-in PBX session measures ``AppInfo`` round trips,
first on a quiet listener, then while four peers send 1 MiB messages before login, one
peer guesses passwords as fast as it is let, and idle TCP connections pile up. Reports
the round-trip percentiles and how many guesses per second got an answer.
"""

from __future__ import annotations

import functools
import json
import signal
import subprocess
import sys
import tempfile
import urllib.parse
from pathlib import Path

import trio
import trio_websocket as tw

from provd.child import DaemonChild
from provd.protocol import LoginRefused, ProtocolError
from provd.protocol.login import Identity
from provd.protocol.messages import AppInfo, AppInfoResult
from provd.transport import AppWebsocket, ConnectionLost, connect, login_with_password

from .common import percentile, provd_config

PASSWORD = "bench-instance-password"
PBX = Identity(app="provd", domain="example.com", sip="provd", guid="g", dn="provd")
ROUNDS = 300
#: The verdict's floor: a p95 under this is fine whatever the quiet p95 was.
FLOOR = 0.100
#: How long the hostile peers run while the PBX session measures.
HOSTILE_SECONDS = 5.0


async def _round_trips(conn: AppWebsocket, rounds: int, seconds: float = 0.0) -> list[float]:
    """``rounds`` round trips, and more until ``seconds`` have passed."""
    times = []
    until = trio.current_time() + seconds
    n = 0
    while n < rounds or trio.current_time() < until:
        n += 1
        start = trio.current_time()
        await conn.send(AppInfo(app="provd", src=str(n)))
        await conn.receive_kind(AppInfoResult)
        times.append(trio.current_time() - start)
    return times


async def _big_before_login(url: str) -> None:
    blob = json.dumps({"mt": "AppChallenge", "pad": [1] * (1 << 19)})  # ~1 MiB
    while True:
        try:
            async with connect(url, max_message_size=2 << 20) as ws:
                await ws.send_message(blob)
                await ws.get_message()
        except (tw.ConnectionClosed, tw.HandshakeError, OSError, trio.BrokenResourceError):
            pass


async def _guess(url: str, answered: list[int]) -> None:
    while True:
        try:
            async with connect(url) as ws:
                await login_with_password(AppWebsocket(ws), PBX, "guess")
        except (LoginRefused, ConnectionLost, ProtocolError):
            answered[0] += 1
        except (tw.ConnectionClosed, tw.HandshakeError, OSError, trio.BrokenResourceError):
            pass


async def _idle(host: str, port: int, count: int) -> None:
    streams = []
    for _ in range(count):
        streams.append(await trio.open_tcp_stream(host, port))
    await trio.sleep_forever()


async def _run() -> list[tuple[str, str, str]]:
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        workdir = Path(tmp)
        child = DaemonChild(provd_config(workdir, password=PASSWORD))
        async with trio.open_nursery() as nursery:
            await child.start(nursery)
            url = child.appservice_url + "provd"
            async with connect(url) as ws:
                conn = AppWebsocket(ws)
                await login_with_password(conn, PBX, PASSWORD)
                await _round_trips(conn, 20)  # warm up
                quiet = await _round_trips(conn, ROUNDS)
                # The hostile peers run in a process of their own, so their work does not
                # delay this process's measurements.
                async with trio.open_nursery() as hostile:
                    proc = await hostile.start(
                        functools.partial(
                            trio.run_process,
                            [sys.executable, "-m", "bench.appws_hostile", url],
                            stdout=subprocess.PIPE,
                            check=False,
                        )
                    )
                    assert proc.stdout is not None
                    await proc.stdout.receive_some(1)  # the peers are running
                    start = trio.current_time()
                    loaded = await _round_trips(conn, ROUNDS, HOSTILE_SECONDS)
                    elapsed = trio.current_time() - start
                    proc.send_signal(signal.SIGTERM)
                    output = b""
                    async for chunk in proc.stdout:
                        output += chunk
                answered = [int(output.split()[-1])] if output.split() else [0]
            alive = child.proc is not None and child.proc.returncode is None
            await child.stop()
    ms = 1000.0

    def latency(values: list[float]) -> str:
        return f"p50 {percentile(values, 50) * ms:.1f} ms, p95 {percentile(values, 95) * ms:.1f} ms"

    target = max(2 * percentile(quiet, 95), FLOOR)
    return [
        (
            "AppInfo round trip on a PBX session, quiet",
            f"{ROUNDS / sum(quiet):,.0f} /s",
            latency(quiet),
        ),
        (
            "  same, 4 peers sending 1 MiB before login + password guessing + 50 idle",
            f"{answered[0] / elapsed:,.1f} guesses/s answered"
            + ("" if alive else " (DAEMON DIED)"),
            latency(loaded),
            f"p95 <= {target * ms:.0f} ms, daemon alive",
            "PASS" if alive and percentile(loaded, 95) <= target else "FAIL",
        ),
    ]


def run() -> list[tuple[str, ...]]:
    return trio.run(_run)


async def _hostile(url: str) -> None:
    """The hostile peers (child process): on SIGTERM, print the guesses answered."""
    answered = [0]
    parsed = urllib.parse.urlsplit(url)
    with trio.open_signal_receiver(signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            for _ in range(4):
                nursery.start_soon(_big_before_login, url)
            nursery.start_soon(_guess, url, answered)
            nursery.start_soon(_idle, parsed.hostname, parsed.port, 50)
            print("r", flush=True)
            async for _ in signals:
                nursery.cancel_scope.cancel()
                break
    print(answered[0], flush=True)


if __name__ == "__main__":
    trio.run(_hostile, sys.argv[1])

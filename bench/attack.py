"""A hostile client for the hostile-load benchmark, run as its own process.

``python -m bench.attack PHONES_URL APPSERVICE_URL SECONDS`` keeps, for at most SECONDS:

- ``--garbage`` connections (default 200) to the phones port, half sending junk bytes
  (reconnecting half a second after the server closes), half slowloris (a header line
  every half second, never finishing the request; reconnecting when closed);
- ``--scanners`` (default 4) clients asking for files of unknown MACs, each request a new
  MAC with a matching User-Agent, as fast as answers come;
- ``--brute`` (default 2) clients logging in to the app service with wrong passwords.

Loopback only (the URLs must name 127.0.0.1 or ::1). Every connection comes from
``--source`` (default 127.0.0.2, still loopback; none for ::1): the attacker is a client of
its own, so provd's per-address defences (miss throttle, login throttle) meet it and not the
simulated PBX and phones on 127.0.0.1 the benchmark measures. Prints ``ATTACKING`` once
every garbage connection is open, and at the end one ``RESULT {json}`` line with counts.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from collections import Counter
from urllib.parse import urlsplit

import httpx
import trio
import trio_websocket as tw

from provd.phones.examples import phone_request
from provd.phones.identify import Vendor
from provd.protocol.login import Identity
from provd.transport.appws import AppWebsocket, login_with_password

LOOPBACK = ("127.0.0.1", "::1")
#: Where the attack comes from (set by ``--source``).
SOURCE: str | None = None
JUNK = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 GARBAGE \xff\xfe\r\n\r\n" * 8


def _loopback(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.hostname not in LOOPBACK or parts.port is None:
        raise SystemExit(f"bench.attack: {url}: loopback targets only")
    return parts.hostname, parts.port


async def _reconnecting(
    name: str, session, host: str, port: int, counts: Counter, ready: trio.Semaphore
) -> None:
    """Open a connection, run ``session`` on it, and do it again, for ever; ``ready`` is
    released once the first connection is up."""
    first = True
    while True:
        try:
            stream = await trio.open_tcp_stream(host, port, local_address=SOURCE)
        except OSError:
            counts[f"{name}_connect_failed"] += 1
            await trio.sleep(0.1)
            continue
        if first:
            ready.release()
            first = False
        async with stream:
            await session(stream, counts)


async def _junk_session(stream: trio.SocketStream, counts: Counter) -> None:
    try:
        await stream.send_all(JUNK)
        counts["junk_sent"] += 1
        while await stream.receive_some(4096):
            pass
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    await trio.sleep(0.5)  # reconnect: at most ~2 junk connections per second each


async def _slow_session(stream: trio.SocketStream, counts: Counter) -> None:
    try:
        await stream.send_all(b"GET /805ec0000001.cfg HTTP/1.1\r\nHost: provd\r\n")
        for i in range(10_000):
            await trio.sleep(0.5)
            await stream.send_all(b"X-Slow-%d: x\r\n" % i)
            counts["slow_bytes"] += 1
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        counts["slow_closed_by_server"] += 1


async def _junk(host: str, port: int, counts: Counter, ready: trio.Semaphore) -> None:
    await _reconnecting("junk", _junk_session, host, port, counts, ready)


async def _slowloris(host: str, port: int, counts: Counter, ready: trio.Semaphore) -> None:
    await _reconnecting("slow", _slow_session, host, port, counts, ready)


async def _scan(base: str, first: int, step: int, counts: Counter) -> None:
    transport = httpx.AsyncHTTPTransport(local_address=SOURCE)
    async with httpx.AsyncClient(base_url=base, timeout=10, transport=transport) as client:
        i = first
        while True:
            mac = f"805ec0f{i:05x}"[:12]
            request = phone_request(Vendor.YEALINK, mac)
            try:
                response = await client.get(
                    request.path, headers={"User-Agent": request.user_agent}
                )
                counts[f"scan_{response.status_code}"] += 1
            except httpx.HTTPError:
                counts["scan_error"] += 1
            i += step


async def _brute(url: str, worker: int, counts: Counter) -> None:
    attempt = 0
    while True:
        attempt += 1
        try:
            with trio.fail_after(30):
                host, port = _loopback(url)
                stream = await trio.open_tcp_stream(host, port, local_address=SOURCE)
                async with trio.open_nursery() as nursery:
                    ws = await tw.wrap_client_stream(nursery, stream, host, "/provd")
                    try:
                        conn = AppWebsocket(ws)
                        guess = f"guess-{worker}-{attempt}"
                        await login_with_password(conn, Identity(app="provd"), guess)
                        counts["brute_logged_in"] += 1  # must never happen
                    finally:
                        await ws.aclose()
        except Exception:  # refused, closed: what a brute forcer sees
            counts["brute_refused"] += 1


async def attack(args: argparse.Namespace) -> Counter:
    host, port = _loopback(args.phones_url)
    _loopback(args.appservice_url)
    counts: Counter = Counter()
    ready = trio.Semaphore(0)
    with trio.move_on_after(args.seconds), trio.open_signal_receiver(signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:

            async def stop_on_sigterm() -> None:
                async for _ in signals:
                    nursery.cancel_scope.cancel()

            nursery.start_soon(stop_on_sigterm)
            for i in range(args.garbage):
                task = _junk if i % 2 == 0 else _slowloris
                nursery.start_soon(task, host, port, counts, ready)
            for _ in range(args.garbage):
                await ready.acquire()
            print("ATTACKING", flush=True)
            for i in range(args.scanners):
                nursery.start_soon(_scan, args.phones_url, i, args.scanners, counts)
            for i in range(args.brute):
                nursery.start_soon(_brute, args.appservice_url, i, counts)
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.attack")
    parser.add_argument("phones_url")
    parser.add_argument("appservice_url")
    parser.add_argument("seconds", type=float)
    parser.add_argument("--garbage", type=int, default=200)
    parser.add_argument("--scanners", type=int, default=4)
    parser.add_argument("--brute", type=int, default=2)
    parser.add_argument(
        "--source", default="127.0.0.2", help="local address to attack from ('' for any)"
    )
    args = parser.parse_args()
    if not 0 < args.seconds <= 300 or not 0 <= args.garbage <= 1000:
        raise SystemExit("bench.attack: at most 300 s and 1,000 connections")
    global SOURCE
    host, _ = _loopback(args.phones_url)
    if args.source and not args.source.startswith("127."):
        raise SystemExit("bench.attack: --source must be a loopback 127.x address")
    SOURCE = args.source if host == "127.0.0.1" and args.source else None
    start = time.perf_counter()
    counts = trio.run(attack, args)
    counts["seconds"] = round(time.perf_counter() - start, 2)
    print("RESULT " + json.dumps(dict(counts)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

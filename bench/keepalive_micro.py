"""``python -m bench.keepalive_micro``: the keep-alive's own CPU per ping, in process.

provd's :class:`~provd.actors.keepalive.KeepAlive`, the shared poller and ``--phones``
:class:`~provd.transport.sysws.SysclientSocket` connections (each with a parked owner
task, as a phone actor's) against a peer process answering every ping with an empty pong
after ``--peer-work`` seconds of work each (0: at once; 0.0001 is about a Python server
answering one connection at a time). The CPU of this process's trio thread over
``--window`` seconds, divided by the pings sent: no daemon, store or simulator around it,
so it isolates the ping's path (issue 14: idle CPU). Figures from a shared machine are
pessimistic; compare runs taken back to back.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import select
import socket
import time

import trio
from wsproto.connection import Connection, ConnectionType

from provd.actors.keepalive import KeepAlive
from provd.transport import ConnectionLost
from provd.transport.sysws import SysclientSocket, poller


def _peer(port: int, count: int, work: float) -> None:
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(4096)
    ep = select.epoll()
    for _ in range(count):
        conn, _ = listener.accept()
        conn.setblocking(False)
        ep.register(conn.detach(), select.EPOLLIN)
    while True:
        for fd, _ in ep.poll():
            data = os.read(fd, 100)
            if not data:
                return
            if len(data) % 6 == 0 and data[0] == 0x89:
                until = time.perf_counter() + work
                while time.perf_counter() < until:
                    pass
                os.write(fd, b"\x8a\x00" * (len(data) // 6))


def _cpu_ns() -> int:
    with open(f"/proc/self/task/{os.getpid()}/schedstat") as f:
        return int(f.read().split()[0])


async def _owner(ws: SysclientSocket) -> None:
    try:
        while True:
            await ws.get_message()
    except ConnectionLost:
        pass


async def _run(args) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()
    peer = multiprocessing.Process(
        target=_peer, args=(port, args.phones, args.peer_work), daemon=True
    )
    peer.start()
    await trio.sleep(0.5)
    keepalive = KeepAlive(args.interval, 15.0)
    async with trio.open_nursery() as nursery:
        for i in range(args.phones):
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            ws = SysclientSocket(stream, Connection(ConnectionType.CLIENT), 1 << 20)
            nursery.start_soon(_owner, ws)
            keepalive.watch(ws)
            if i % 100 == 99:  # spread over the interval, as phones coming online
                await trio.sleep(args.interval / (args.phones / 100))
        await trio.sleep(args.interval + 1)
        shared = poller()
        for _ in range(args.repeat):
            pings, cpu, start = keepalive.pings, _cpu_ns(), time.perf_counter()
            rounds = shared.rounds if shared else 0
            await trio.sleep(args.window)
            pings, cpu = keepalive.pings - pings, _cpu_ns() - cpu
            elapsed = time.perf_counter() - start
            rounds = (shared.rounds if shared else 0) - rounds
            print(
                f"phones={args.phones} interval={args.interval:g} pings={pings} "
                f"cpu={cpu / elapsed / 1e7:.2f}% per_ping={cpu / max(1, pings) / 1e3:.1f}us "
                f"poller_rounds={rounds} timeouts={keepalive.timeouts}",
                flush=True,
            )
        nursery.cancel_scope.cancel()
    peer.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--phones", type=int, default=2000)
    parser.add_argument("--interval", type=float, default=5.0)
    parser.add_argument("--window", type=float, default=8.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--peer-work", type=float, default=0.0001)
    trio.run(_run, parser.parse_args())


if __name__ == "__main__":
    main()

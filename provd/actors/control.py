"""A local control socket for operators: ``provd status`` and ``provd phones remove``.

One JSON request per line on a Unix socket (mode 0600, so only the daemon's user and root
may talk to it); one JSON answer per line. The commands are few and read-mostly; the only
write, ``remove``, goes through the store actor and stops the phone's actor.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
import trio

from ..protocol import ProtocolError, normalize_mac

log = structlog.get_logger("provd.control")

MAX_REQUEST = 4096

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


async def serve_control(
    path: str,
    handlers: dict[str, Handler],
    *,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # a stale socket from a killed daemon
    sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        await sock.bind(path)
    finally:
        os.umask(old_umask)
    sock.listen(16)
    listener = trio.SocketListener(sock)
    log.info("control.listening", path=path)
    task_status.started(path)
    try:
        await trio.serve_listeners(lambda stream: _serve_one(stream, handlers), [listener])
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)


async def _serve_one(stream: trio.SocketStream, handlers: dict[str, Handler]) -> None:
    async with stream:
        data = b""
        with trio.move_on_after(5):
            while b"\n" not in data and len(data) < MAX_REQUEST:
                chunk = await stream.receive_some(MAX_REQUEST)
                if not chunk:
                    break
                data += chunk
        try:
            request = json.loads(data.split(b"\n", 1)[0] or b"null")
            if not isinstance(request, dict) or request.get("cmd") not in handlers:
                raise ValueError("unknown command")
            answer = await handlers[request["cmd"]](request)
        except (ValueError, ProtocolError) as exc:
            answer = {"ok": False, "error": str(exc)}
        with contextlib.suppress(trio.BrokenResourceError):
            await stream.send_all(json.dumps(answer).encode() + b"\n")


def request(path: str, cmd: str, timeout: float = 5.0, **args: Any) -> dict[str, Any] | None:
    """Client side (blocking, for the CLI). None when no daemon listens there."""
    import socket

    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(path)
            sock.sendall(json.dumps({"cmd": cmd, **args}).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
    except OSError:
        return None
    return json.loads(data) if data else None


def mac_arg(request: dict[str, Any]) -> str:
    mac = request.get("mac")
    if not isinstance(mac, str):
        raise ValueError("mac missing")
    return normalize_mac(mac)


def uptime_since(started: float) -> float:
    return round(time.monotonic() - started, 1)

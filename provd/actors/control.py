"""A local control socket for operators: ``provd status`` and ``provd phones remove``.

One JSON request per line on a Unix socket (mode 0600, so only the daemon's user and root
may talk to it); one JSON answer per line. The commands are few and read-mostly; the only
write, ``remove``, goes through the store actor and stops the phone's actor.

Nothing a client sends ends the daemon: a request is bounded in size (:data:`MAX_REQUEST`)
and nesting (:data:`MAX_DEPTH`) before it is parsed, and whatever a command raises becomes
an ``{"ok": false, "error": ...}`` answer (unexpected errors are logged once, with the
command). At start, an existing socket file is unlinked only when nothing answers on it: a
live daemon's socket is never taken over.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import stat
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
import trio

from ..exits import CoreFailure, ExitStatus
from ..protocol import ProtocolError, normalize_mac
from ..store.actor import StoreError

log = structlog.get_logger("provd.control")

#: Longest request line accepted, bytes.
MAX_REQUEST = 4096
#: Deepest JSON nesting accepted (requests are flat objects).
MAX_DEPTH = 8

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


async def serve_control(
    path: str,
    handlers: dict[str, Handler],
    *,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``handlers`` on the Unix socket ``path``.

    Raises:
        CoreFailure: ``LOCKED`` when another daemon answers on ``path``, ``LISTEN`` when the
            socket cannot be created there.
    """
    _claim(path)
    sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        await sock.bind(path)
        sock.listen(16)
    except OSError as exc:
        sock.close()
        raise CoreFailure(
            ExitStatus.LISTEN,
            "daemon.start_failed",
            setting="control.socket",
            path=path,
            error=exc.strerror or str(exc),
        ) from exc
    finally:
        os.umask(old_umask)
    listener = trio.SocketListener(sock)
    log.info("control.listening", path=path)
    task_status.started(path)
    try:
        await trio.serve_listeners(lambda stream: _serve_one(stream, handlers), [listener])
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)


def _claim(path: str) -> None:
    """Unlink a stale socket at ``path`` (a killed daemon's); refuse a live one."""

    def refuse(status: ExitStatus, error: str) -> CoreFailure:
        return CoreFailure(
            status, "daemon.start_failed", setting="control.socket", path=path, error=error
        )

    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise refuse(ExitStatus.LISTEN, exc.strerror or str(exc)) from exc
    if not stat.S_ISSOCK(st.st_mode):
        raise refuse(ExitStatus.LISTEN, "exists and is not a socket")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(2.0)
        try:
            probe.connect(path)
        except (ConnectionRefusedError, FileNotFoundError):
            pass  # nobody listens: stale
        except OSError as exc:
            raise refuse(ExitStatus.LISTEN, exc.strerror or str(exc)) from exc
        else:
            raise refuse(ExitStatus.LOCKED, "another provd is serving this control socket")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


async def _serve_one(stream: trio.SocketStream, handlers: dict[str, Handler]) -> None:
    try:
        async with stream:
            data = b""
            with trio.move_on_after(5):
                while b"\n" not in data and len(data) <= MAX_REQUEST:
                    chunk = await stream.receive_some(MAX_REQUEST)
                    if not chunk:
                        break
                    data += chunk
            answer = await _answer(data, handlers)
            with contextlib.suppress(trio.BrokenResourceError):
                await stream.send_all(json.dumps(answer).encode() + b"\n")
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
        log.debug("control.connection_lost", error=str(exc))
    except Exception as exc:  # a client must never end the daemon
        log.error("control.connection_failed", error=f"{type(exc).__name__}: {exc}")
        log.debug("control.connection_failed_traceback", exc_info=True)


async def _answer(data: bytes, handlers: dict[str, Handler]) -> dict[str, Any]:
    cmd: Any = None
    try:
        line = data.split(b"\n", 1)[0]
        if len(line) > MAX_REQUEST:
            raise ValueError(f"request longer than {MAX_REQUEST} bytes")
        if _depth(line) > MAX_DEPTH:
            raise ValueError(f"request nested deeper than {MAX_DEPTH} levels")
        request = json.loads(line or b"null")
        if not isinstance(request, dict):
            raise ValueError("unknown command")
        cmd = request.get("cmd")
        if not isinstance(cmd, str) or cmd not in handlers:
            raise ValueError("unknown command")
        return await handlers[cmd](request)
    except (ValueError, ProtocolError) as exc:
        return {"ok": False, "error": str(exc)}
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, StoreError):  # the store logged it (with the path) already
            log.debug("control.command_failed", cmd=cmd, error=error)
            return {"ok": False, "error": str(exc)}
        log.error("control.command_failed", cmd=cmd, error=error)
        log.debug("control.command_failed_traceback", exc_info=True)
        return {"ok": False, "error": error}


def _depth(line: bytes) -> int:
    """The deepest ``[``/``{`` nesting in a JSON text (strings skipped), without recursion."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in line:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return deepest


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

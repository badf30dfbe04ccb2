"""``provd run`` as a child process whose log is followed line by line.

The demo, the end-to-end tests and the benchmarks run the real daemon this way: its output
arrives through a pipe, so callers wait on events ("the daemon logged X"), never on sleeps,
and every line is kept (the tests scan them for secrets).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import trio

_READY = re.compile(r"event=daemon\.ready .*appservice=(\S+) phones=(\S+)")
_PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)


class DaemonChild:
    """One ``provd run --config PATH`` child.

    Attributes:
        lines: every output line so far (stdout and stderr, in order).
        appservice_url, phones_url: where the running child listens (after :meth:`start`).
    """

    def __init__(self, config_path: Path, *, cwd: Path | None = None) -> None:
        self.config_path = config_path
        self.cwd = cwd or config_path.parent
        self.lines: list[str] = []
        self.appservice_url = ""
        self.phones_url = ""
        self.proc: trio.Process | None = None
        self._changed = trio.Event()

    async def start(self, nursery: trio.Nursery) -> None:
        """Start the child; return once it logged ``daemon.ready``.

        Raises:
            RuntimeError: the child exited before it was ready (its output says why).
        """
        mark = len(self.lines)
        path = os.environ.get("PYTHONPATH", "")
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": os.pathsep.join(p for p in (_PACKAGE_ROOT, path) if p),
        }
        self.proc = await trio.lowlevel.open_process(
            [sys.executable, "-m", "provd", "run", "--config", str(self.config_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=self.cwd,
            env=env,
        )
        nursery.start_soon(self._follow, self.proc)
        match = await self.wait_for(_READY, after=mark)
        self.appservice_url, self.phones_url = match.group(1), match.group(2)

    @property
    def appservice_port(self) -> int:
        return int(self.appservice_url.rstrip("/").rsplit(":", 1)[1])

    async def _follow(self, proc: trio.Process) -> None:
        buffer = b""
        assert proc.stdout is not None
        async for chunk in proc.stdout:
            buffer += chunk
            *complete, buffer = buffer.split(b"\n")
            self.lines += [line.decode("utf-8", "replace") for line in complete]
            self._wake()
        await proc.wait()
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def wait_for(self, pattern: str | re.Pattern[str], *, after: int = 0) -> re.Match[str]:
        """The first output line from index ``after`` on that matches ``pattern``.

        Raises:
            RuntimeError: the child exited without printing such a line.
        """
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        seen = after
        while True:
            for line in self.lines[seen:]:
                if match := regex.search(line):
                    return match
            seen = len(self.lines)
            if self.proc is not None and self.proc.returncode is not None:
                tail = "\n".join(self.lines[-10:])
                raise RuntimeError(
                    f"provd exited ({self.proc.returncode}) before {regex.pattern!r}:\n{tail}"
                )
            await self._changed.wait()

    def send_signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    async def stop(self, grace: float = 20.0) -> int:
        """SIGTERM, then wait (SIGKILL after ``grace`` seconds). Returns the exit status."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        with trio.move_on_after(grace):
            return await self.proc.wait()
        self.proc.kill()
        return await self.proc.wait()

    async def kill(self) -> None:
        """SIGKILL: no chance to clean up (crash tests)."""
        assert self.proc is not None
        self.proc.kill()
        await self.proc.wait()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def output(self) -> str:
        return "\n".join(self.lines)

"""One daemon per database: an exclusive ``flock`` on ``<store.path>.lock``, held for the
daemon's lifetime.

The kernel drops the lock when the process ends however it ends (``kill -9`` included), so
a stale lock file is harmless and never needs cleaning up. flock(2): "A call to flock() may
block if an incompatible lock is held by another process. To make a nonblocking request,
include LOCK_NB"; the lock belongs to the open file description, so it is held until the
descriptor is closed.
"""

from __future__ import annotations

import fcntl
import os

from ..exits import CoreFailure, ExitStatus


def lock_path(db_path: str) -> str:
    return db_path + ".lock"


class DatabaseLock:
    """``acquire()`` once at start; ``release()`` at exit (or let the process end)."""

    def __init__(self, db_path: str) -> None:
        self.db_path = db_path
        self.path = lock_path(db_path)
        self._fd: int | None = None

    def acquire(self) -> None:
        """Raises:
        CoreFailure: ``LOCKED`` when another process holds it, ``STORE`` when the lock
            file cannot be created.
        """
        if self.db_path == ":memory:":
            return
        try:
            directory = os.path.dirname(self.path)
            if directory:
                os.makedirs(directory, exist_ok=True)
            fd = os.open(self.path, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise CoreFailure(
                ExitStatus.STORE,
                "daemon.start_failed",
                setting="store.path",
                path=self.path,
                error=f"cannot create the lock file ({exc})",
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            raise CoreFailure(
                ExitStatus.LOCKED,
                "daemon.start_failed",
                setting="store.path",
                path=self.db_path,
                error=f"another provd is running on this database (lock {self.path} held)",
            ) from exc
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

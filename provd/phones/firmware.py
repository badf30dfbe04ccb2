"""Firmware files served read-only from the operator's ``phones.firmware_dir``.

A phone asks for ``/firmware/<name>`` (``<name>`` may contain sub-directories, as a
Grandstream phone appends its own file name to the ``P192`` directory URL). The name is
checked before the file system sees it, and again after: no empty, ``.`` or ``..`` segment
(the server has already decoded ``%2e%2e`` and ``%2f`` into the path), no hidden
(``.``-prefixed) segment, no backslash or NUL; the real path, symlinks followed, must still
lie inside the directory, and the file opened must be a regular file. A symlink inside the
directory that points to another file inside it is fine (``latest.rom -> T46U-...rom``).

Every refusal is a plain 404, so a scanner learns nothing about the file system. Files are
streamed in :data:`CHUNK` pieces, never read whole into memory.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import IO

import attrs
import structlog
import trio

log = structlog.get_logger()

PREFIX = "/firmware/"
CHUNK = 64 * 1024

#: Content types by suffix; anything else (.rom, .bin, .z, .ld, .img...) is binary.
_TYPES = {
    ".xml": "application/xml",
    ".txt": "text/plain; charset=utf-8",
    ".cfg": "text/plain; charset=utf-8",
    ".json": "application/json",
}


class FirmwareRefused(Exception):
    """The name is not a servable file; ``str()`` is the reason (for the log, not the phone)."""


@attrs.define
class FirmwareFile:
    """An open firmware file: stream it with :func:`send`, which closes it."""

    file: IO[bytes]
    size: int
    content_type: str
    name: str


def is_firmware_path(path: str) -> bool:
    """Whether a request path is a firmware request."""
    return path.startswith(PREFIX)


def content_type(name: str) -> str:
    """The content type served for ``name``."""
    return _TYPES.get(Path(name).suffix.lower(), "application/octet-stream")


def check_name(name: str) -> tuple[str, ...]:
    """The path segments of a requested ``name``, or :class:`FirmwareRefused`."""
    if not name or "\x00" in name or "\\" in name:
        raise FirmwareRefused("empty name, NUL or backslash")
    if name.startswith("/"):
        raise FirmwareRefused("absolute path")
    parts = tuple(name.split("/"))
    for part in parts:
        if part in ("", ".", ".."):
            raise FirmwareRefused("empty, . or .. segment")
        if part.startswith("."):
            raise FirmwareRefused("hidden file")
    return parts


def open_file(directory: str, name: str) -> FirmwareFile:
    """Open ``name`` under ``directory`` for reading (blocking: run it in a thread).

    Raises:
        FirmwareRefused: traversal, a symlink leaving the directory, not a regular file,
            or no such file.
        OSError: the directory itself is unusable (the operator must act).
    """
    parts = check_name(name)
    root = Path(directory).resolve(strict=True)
    if not root.is_dir():
        raise NotADirectoryError(f"{directory} is not a directory")
    try:
        target = root.joinpath(*parts).resolve(strict=True)
    except (OSError, RuntimeError) as exc:  # missing, or a symlink loop
        raise FirmwareRefused(f"not found ({type(exc).__name__})") from None
    if not target.is_relative_to(root):
        raise FirmwareRefused("resolves outside the firmware directory")
    try:
        # O_NOFOLLOW: the resolved final component is no symlink unless swapped meanwhile.
        fd = os.open(target, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        raise FirmwareRefused(f"cannot open ({exc.strerror})") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise FirmwareRefused("not a regular file")
    return FirmwareFile(os.fdopen(fd, "rb"), info.st_size, content_type(name), name)


async def lookup(directory: str, name: str, address: str) -> FirmwareFile | None:
    """The open file for a firmware request, or ``None`` (answer 404); logs why not."""
    if not directory:
        log.info("phones.firmware_refused", address=address, file=name, reason="no firmware_dir")
        return None
    try:
        return await trio.to_thread.run_sync(open_file, directory, name)
    except FirmwareRefused as exc:
        # A missing file a phone asks for is the operator's to fix (a phones.firmware entry
        # or the P192 directory names a file that is not there); anything else is a probe.
        level = log.warning if str(exc).startswith("not found") else log.info
        level("phones.firmware_refused", address=address, file=name, reason=str(exc))
    except OSError as exc:
        log.error(
            "phones.firmware_dir_unusable",
            key="phones.firmware_dir",
            path=directory,
            error=exc.strerror or str(exc),
        )
    return None


Write = Callable[[bytes], Awaitable[None]]


async def stream(firmware: FirmwareFile, write: Write) -> bool:
    """Send the body of ``firmware`` through ``write`` in :data:`CHUNK` pieces, then close it.

    Returns:
        False when the file shrank meanwhile: the body is short of its Content-Length, so
        the connection must be closed (logged).
    """
    try:
        wrapped = trio.wrap_file(firmware.file)
        left = firmware.size
        while left > 0:
            chunk = await wrapped.read(min(CHUNK, left))
            if not chunk:  # the file shrank: stop short, the client sees a short body
                log.warning("phones.firmware_truncated", file=firmware.name, missing=left)
                return False
            left -= len(chunk)
            await write(chunk)
        return True
    finally:
        firmware.file.close()

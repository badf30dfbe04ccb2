"""Native journald logging: each event a journal entry, its fields journal fields.

Under systemd with the journal attached, ``journalctl -u provd PROVD_MAC=805ec0aa0001`` and
``journalctl -u provd -p warning`` then work without parsing text. An entry carries
``MESSAGE`` (the logfmt line), ``PRIORITY``, ``SYSLOG_IDENTIFIER=provd``, ``PROVD_EVENT`` and
one ``PROVD_<KEY>`` per event field (``mac`` -> ``PROVD_MAC``, ``peer`` -> ``PROVD_PEER``).

Why the protocol is spoken here rather than through a binding: ``systemd-python`` builds
from source against libsystemd's headers (``libsystemd-dev``), which a plain ``pip install``
on a server usually lacks; ``cysystemd`` installs as a wheel but bundles its own libsystemd
(plus libgcrypt, liblz4...) and hard-wires the socket path inside it, so nothing could test
what provd sends. The native protocol is small, documented and declared stable by systemd:
https://systemd.io/JOURNAL_NATIVE_PROTOCOL/ -- one datagram per entry to
``/run/systemd/journal/socket``, ``KEY=value`` lines, a length-prefixed binary form for
values with a newline, and a sealed memfd passed with ``SCM_RIGHTS`` for an entry too large
for one datagram.

When to use it: ``$JOURNAL_STREAM`` is set by systemd to the device and inode of the stream
it connected stdout/stderr to; a process compares it with its own stderr to know that its
output goes to the journal (systemd.exec(5), "$JOURNAL_STREAM").
"""

from __future__ import annotations

import array
import contextlib
import errno
import fcntl
import os
import re
import socket
import struct
from typing import Any

#: Where journald listens for native entries (systemd.io/JOURNAL_NATIVE_PROTOCOL).
JOURNAL_SOCKET = "/run/systemd/journal/socket"
#: Overrides the socket path (tests bind their own datagram socket).
SOCKET_ENV = "PROVD_JOURNAL_SOCKET"
IDENTIFIER = "provd"

_NOT_NAME = re.compile(r"[^A-Z0-9_]")


def socket_path() -> str:
    return os.environ.get(SOCKET_ENV) or JOURNAL_SOCKET


def stream_is_journal(stream: Any) -> bool:
    """Whether ``stream`` is the one systemd connected to the journal ($JOURNAL_STREAM =
    "<device>:<inode>" of it)."""
    value = os.environ.get("JOURNAL_STREAM", "")
    device, sep, inode = value.partition(":")
    if not sep or not device.isdigit() or not inode.isdigit():
        return False
    try:
        st = os.fstat(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return False
    return (st.st_dev, st.st_ino) == (int(device), int(inode))


def field_name(key: str) -> str:
    """``mac`` -> ``PROVD_MAC``: uppercase letters, digits and underscores, at most 64
    characters, never starting with an underscore (those are journald's own)."""
    name = "PROVD_" + _NOT_NAME.sub("_", key.upper())
    return name[:64]


def encode(fields: dict[str, str]) -> bytes:
    """One entry in the native format: ``KEY=value\\n``, or for a value with a newline
    ``KEY\\n<64-bit little-endian length><value>\\n``."""
    out = bytearray()
    for key, value in fields.items():
        data = value.encode("utf-8", "replace")
        if b"\n" in data:
            out += key.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
        else:
            out += key.encode() + b"=" + data + b"\n"
    return bytes(out)


class JournalSender:
    """Sends entries to the journal socket; False when it cannot (caller falls back)."""

    def __init__(self, path: str | None = None) -> None:
        self.path = path or socket_path()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    def send(self, fields: dict[str, str]) -> bool:
        data = encode(fields)
        try:
            self._sock.sendto(data, self.path)
            return True
        except OSError as exc:
            if exc.errno not in (errno.EMSGSIZE, errno.ENOBUFS):
                return False
        return self._send_memfd(data)

    def _send_memfd(self, data: bytes) -> bool:
        """Too large for a datagram: the entry in a sealed memfd, its descriptor passed."""
        fd = os.memfd_create("provd-journal", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            os.write(fd, data)
            seals = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SEAL
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals)
            # sendmsg, not socket.send_fds: the latter ignores ``address`` on Python 3.11
            rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))]
            self._sock.sendmsg([b""], rights, 0, self.path)
            return True
        except OSError:
            return False
        finally:
            os.close(fd)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.close()


def entry(priority: int, message: str, event_dict: dict[str, Any]) -> dict[str, str]:
    """The journal fields of one (already secret-scrubbed) structlog event."""
    fields = {
        "MESSAGE": message,
        "PRIORITY": str(priority),
        "SYSLOG_IDENTIFIER": IDENTIFIER,
    }
    for key, value in event_dict.items():
        if value is None:
            continue
        name = "PROVD_EVENT" if key == "event" else field_name(str(key))
        fields[name] = value if isinstance(value, str) else _text(value)
    return fields


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class JournalLogger:
    """structlog logger: receives ``(priority, message, event_dict)`` from
    :class:`provd.logs` and sends it; on failure writes the prefixed line to ``fallback``
    (so nothing is lost if journald goes away)."""

    def __init__(self, sender: JournalSender, fallback: Any) -> None:
        self._sender = sender
        self._fallback = fallback

    def msg(self, priority: int, message: str, event_dict: dict[str, Any]) -> None:
        if not self._sender.send(entry(priority, message, event_dict)):
            print(f"<{priority}>{message}", file=self._fallback, flush=True)

    log = debug = info = warning = warn = error = err = critical = fatal = exception = msg


class JournalLoggerFactory:
    def __init__(self, fallback: Any, path: str | None = None) -> None:
        self._logger = JournalLogger(JournalSender(path), fallback)

    def __call__(self, *_args: Any) -> JournalLogger:
        return self._logger


class NativeRenderer:
    """structlog's last processor for the journal: ``(priority, MESSAGE, fields)``, where
    MESSAGE is the logfmt line (what ``journalctl`` shows) and the fields become
    ``PROVD_*`` journal fields. Expects ``_priority`` from provd.logs' syslog processor."""

    def __init__(self) -> None:
        import structlog

        self._logfmt = structlog.processors.LogfmtRenderer(
            key_order=["event"], drop_missing=True, bool_as_flag=False
        )

    def __call__(self, logger: Any, method: str, event_dict: dict[str, Any]) -> Any:
        priority = event_dict.pop("_priority", 6)
        event_dict.pop("level", None)
        message = self._logfmt(logger, method, dict(event_dict))
        return (priority, message, event_dict), {}

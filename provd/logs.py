"""Logging, configured once in ``main``: structlog, one event per line, secrets never out.

Output suits journald: each line starts with an ``<N>`` syslog priority prefix (journald
maps it to PRIORITY), followed by ``event key=value ...`` or one JSON object. On a TTY the
console renderer is used instead.

Secrets are kept out in one processor, :func:`redact_secrets`: any field whose name says it is
a secret is masked, and every string value is scrubbed of each secret registered with
:func:`register_secret` (passwords, session keys, digests as provd learns them), so a secret
that slips into an error text or an exception is masked too.
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any

import ahocorasick
import structlog

from . import journal as _journal

SECRET_FIELDS = frozenset(
    {"password", "pwd", "digest", "key", "session_key", "secret", "turnpassword", "token"}
)
MASK = "********"

#: Secrets shorter than this are not scrubbed from text (they would mask ordinary words).
MIN_SECRET_LEN = 4
#: New secrets are checked one by one until this many wait; then the automaton is rebuilt.
_REBUILD_AFTER = 64


class _SecretScrubber:
    """Finds every registered secret in a text in one pass (Aho-Corasick), however many
    secrets a daemon with thousands of phones holds. Secrets registered since the last
    build are checked one by one, so none is ever missed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._all: set[str] = set()
        self._pending: list[str] = []
        self._automaton: ahocorasick.Automaton | None = None

    def add(self, secret: str) -> None:
        with self._lock:
            if secret in self._all:
                return
            self._all.add(secret)
            self._pending.append(secret)
            if len(self._pending) >= _REBUILD_AFTER:
                automaton = ahocorasick.Automaton()
                for word in self._all:
                    automaton.add_word(word, word)
                automaton.make_automaton()
                self._automaton, self._pending = automaton, []

    def __bool__(self) -> bool:
        return bool(self._all)

    def scrub(self, text: str) -> str:
        if len(text) < MIN_SECRET_LEN:
            return text
        found = {s for s in self._pending if s in text}
        automaton = self._automaton
        if automaton is not None:
            found.update(word for _end, word in automaton.iter(text))
        for secret in sorted(found, key=len, reverse=True):
            text = text.replace(secret, MASK)
        return text


_secrets = _SecretScrubber()

_SYSLOG_PRIORITY = {"critical": 2, "exception": 3, "error": 3, "warning": 4, "info": 6, "debug": 7}


def register_secret(value: str | None) -> None:
    """Never let ``value`` appear in a log line from now on."""
    if value and len(value) >= MIN_SECRET_LEN:
        _secrets.add(value)


def _scrub_value(value: Any) -> Any:
    if isinstance(value, str):
        return _secrets.scrub(value)
    if isinstance(value, dict):
        return {k: MASK if _is_secret_name(k) else _scrub_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub_value(v) for v in value]
    return value


def _is_secret_name(name: Any) -> bool:
    return isinstance(name, str) and name.lower().replace("-", "_") in SECRET_FIELDS


def redact_secrets(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: mask secret fields and scrub registered secrets from all values."""
    for name, value in list(event_dict.items()):
        if _is_secret_name(name):
            event_dict[name] = MASK
        elif _secrets or isinstance(value, dict | list | tuple):
            event_dict[name] = _scrub_value(value)
    return event_dict


def _syslog_prefix(_logger: Any, method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    event_dict["_priority"] = _SYSLOG_PRIORITY.get(method, 6)
    return event_dict


class _JournalRenderer:
    """``<6>event=... key=value`` (logfmt) or ``<6>{...}`` (JSON) lines."""

    def __init__(self, json: bool) -> None:
        self._inner = (
            structlog.processors.JSONRenderer(sort_keys=False)
            if json
            else structlog.processors.LogfmtRenderer(
                key_order=["event"], drop_missing=True, bool_as_flag=False
            )
        )

    def __call__(self, logger: Any, method: str, event_dict: dict[str, Any]) -> str:
        priority = event_dict.pop("_priority", 6)
        event_dict.pop("level", None)  # the <N> prefix carries it
        if "event" in event_dict:
            event_dict = {"event": event_dict.pop("event"), **event_dict}
        return f"<{priority}>{self._inner(logger, method, event_dict)}"


class _StdlibBridge(logging.Handler):
    """Forward stdlib log records (hypercorn, trio-websocket) into structlog."""

    def emit(self, record: logging.LogRecord) -> None:
        method = record.levelname.lower()
        method = method if method in ("debug", "info", "warning", "error", "critical") else "info"
        getattr(structlog.get_logger(record.name), method)(
            "library." + record.name, message=record.getMessage()
        )


_bridge = _StdlibBridge()

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def configure(level: str = "info", *, fmt: str = "auto", stream: Any = None) -> None:
    """Configure structlog for the process. ``fmt``: ``auto`` | ``console`` | ``kv`` | ``json``.

    Call again (e.g. on SIGHUP) to change the level; loggers pick it up at once.
    """
    stream = stream or sys.stderr
    if fmt == "auto":
        # started by systemd with the journal attached: native journal entries (provd.journal)
        fmt = "journal" if _journal.stream_is_journal(stream) else fmt
    if fmt == "auto":
        fmt = "console" if stream.isatty() else "kv"
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.format_exc_info,
        redact_secrets,
    ]
    if fmt == "console":
        processors += [
            structlog.processors.TimeStamper(fmt="%H:%M:%S"),
            structlog.dev.ConsoleRenderer(colors=False),
        ]
    elif fmt == "journal":
        processors += [_syslog_prefix, _journal.NativeRenderer()]
    else:
        processors += [_syslog_prefix, _JournalRenderer(json=fmt == "json")]
    root = logging.getLogger()
    if _bridge not in root.handlers:
        root.addHandler(_bridge)
    root.setLevel(logging.WARNING)
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS[level]),
        logger_factory=(
            _journal.JournalLoggerFactory(stream)
            if fmt == "journal"
            else structlog.PrintLoggerFactory(stream)
        ),
        cache_logger_on_first_use=False,
    )

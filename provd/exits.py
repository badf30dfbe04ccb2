"""Why the daemon ended: one exit status per cause, and the one failure type that carries it.

The supervision contract (README "Operations", :mod:`provd.actors.daemon`): only a failure
of provd's own core ends the daemon: the store unusable at start or lost while running, a
listener that cannot bind, a TLS file that cannot be loaded, another daemon on the same
database. Each is raised as :class:`CoreFailure`, which ``provd run`` turns into exactly one
log line at priority ``<2>`` naming the key and the path or address, and this exit status.
"""

from __future__ import annotations

import enum
from typing import Any


class ExitStatus(enum.IntEnum):
    """``provd run``'s exit statuses (documented in README "Operations")."""

    OK = 0
    #: A bug: an exception nobody expected (traceback at log level debug).
    INTERNAL = 1
    #: The config file was refused (unreadable, not UTF-8, not TOML, a bad key or value).
    CONFIG = 2
    #: The database cannot be opened, created or migrated at start (``store.path``).
    STORE = 3
    #: A listener cannot bind (``appservice.listen``, ``phones.listen``, ``control.socket``).
    LISTEN = 4
    #: A TLS certificate or key cannot be loaded (``*.tls_cert``, ``*.tls_key``).
    TLS = 5
    #: Another provd runs on the same database or control socket.
    LOCKED = 6
    #: The database file was deleted or replaced while provd ran (``store.path``).
    STORE_LOST = 7


class CoreFailure(Exception):
    """A failure of provd's own core: the daemon stops with ``status``.

    Attributes:
        status: the exit status.
        event: the log event (``daemon.start_failed``, ``store.lost``, ...).
        fields: what the log line names: ``setting`` (the config key), ``path`` or
            ``address``, and ``error``.
    """

    def __init__(self, status: ExitStatus, event: str, **fields: Any) -> None:
        self.status = status
        self.event = event
        self.fields = fields
        super().__init__(" ".join(f"{k}={v}" for k, v in fields.items()))


def find_core_failure(exc: BaseException) -> CoreFailure | None:
    """The first :class:`CoreFailure` in ``exc`` (looking through exception groups)."""
    if isinstance(exc, CoreFailure):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            if (found := find_core_failure(inner)) is not None:
                return found
    return None

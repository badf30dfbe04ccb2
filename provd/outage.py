"""Outages summarised: one warning when a peer becomes unreachable, one line when it is back.

With the Devices app down, every phone actor retries on its own back-off; logging each retry
of each phone at info would bury the one fact an operator needs ("Devices is unreachable").
:class:`OutageTracker` is shared by all phone actors (the PBX watcher uses one too): the
actors report each connection attempt, the tracker turns them into transitions.

- Down: an attempt fails for a reachability reason (cannot connect, handshake timed out)
  while no phone holds a connection. One ``<peer>.unreachable`` warning, with the reason.
- Back: the first attempt that is admitted again. One ``<peer>.reachable`` warning (the
  pair is what monitoring greps for), with the outage's duration, the failed attempts and
  the phones affected.

While down, :attr:`down` is True so callers log their per-attempt lines at debug.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog

log = structlog.get_logger("provd.outage")

#: Attempt-failure reasons that say the peer cannot be reached (rather than that it refused
#: one phone): see provd.actors.phone._attempt.
UNREACHABLE_PREFIXES = ("cannot connect", "handshake timed out")


def is_unreachable(reason: str) -> bool:
    return reason.startswith(UNREACHABLE_PREFIXES)


class OutageTracker:
    """Reachability of one peer, from the attempts of many clients (phones, sessions).

    Args:
        peer: the name in event names and status (``devices``, ``pbx``).
        clock: monotonic seconds; wall_clock: epoch seconds (both injectable).
    """

    def __init__(
        self,
        peer: str,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.peer = peer
        self._clock = clock
        self._wall = wall_clock
        #: None until the first attempt tells; then True/False.
        self.up: bool | None = None
        self.connected: set[str] = set()
        self.since: float | None = None  # wall time of the last transition
        self._since_mono = clock()
        self.last_error = ""
        self.last_error_time: float | None = None
        #: Attempts that failed (all time), and attempts that failed / clients affected
        #: during the current outage.
        self.failures = 0
        self.reconnects = 0
        self.outages = 0
        self._outage_failures = 0
        self._outage_clients: set[str] = set()

    @property
    def down(self) -> bool:
        return self.up is False

    def connected_ok(self, client: str) -> None:
        """``client`` completed its handshake (holds a connection now)."""
        self.connected.add(client)
        if self.up is not True:
            if self.up is False:
                duration = self._clock() - self._since_mono
                log.warning(
                    f"{self.peer}.reachable",
                    down_for=round(duration, 1),
                    failed_attempts=self._outage_failures,
                    clients_affected=len(self._outage_clients),
                )
            self._transition(True)

    def attempt_ended(self, client: str, admitted: bool, reason: str) -> None:
        """One connection attempt of ``client`` ended (admitted: it had connected)."""
        self.connected.discard(client)
        self.reconnects += 1
        if admitted and not reason:
            return
        if reason:
            self.last_error, self.last_error_time = reason, self._wall()
        if admitted:
            return
        self.failures += 1
        if self.up is False:
            self._outage_failures += 1
            self._outage_clients.add(client)
            return
        if is_unreachable(reason) and not self.connected:
            self._outage_failures, self._outage_clients = 1, {client}
            self.outages += 1
            log.warning(f"{self.peer}.unreachable", reason=reason, client=client)
            self._transition(False)

    def session_up(self) -> None:
        """For a peer with one session (the PBX): a session is there."""
        self.connected_ok("session")

    def session_lost(self, reason: str = "session closed") -> None:
        """For a peer with one session: the last session is gone."""
        self.connected.discard("session")
        self.last_error, self.last_error_time = reason, self._wall()
        if self.up is True:
            self._outage_failures, self._outage_clients = 0, set()
            self.outages += 1
            log.warning(f"{self.peer}.unreachable", reason=reason)
            self._transition(False)

    def _transition(self, up: bool) -> None:
        self.up = up
        self.since = self._wall()
        self._since_mono = self._clock()

    def snapshot(self) -> dict[str, object]:
        """For ``provd status``."""
        return {
            "up": self.up,
            "since": self.since,
            "for": round(self._clock() - self._since_mono, 1),
            "connected": len(self.connected),
            "last_error": self.last_error,
            "last_error_time": self.last_error_time,
            "failures": self.failures,
            "reconnects": self.reconnects,
            "outages": self.outages,
        }

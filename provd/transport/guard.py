"""Limits a server listener puts on peers that have not proven who they are.

:class:`LoginThrottle` slows down wrong logins per client address: after a refused login
the next attempt from that address is answered only after a delay that doubles with every
further failure (up to a cap); a good login clears it. Refusals are logged once per
address and then summed up per interval, so a password-guessing peer costs one log line a
minute, not one per attempt. Parallel connections from one address queue for their turn:
each attempt reserves the next free slot.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import attrs
import structlog
import trio

log = structlog.get_logger("provd.transport")

#: Addresses the throttle remembers at most (oldest forgotten first).
MAX_TRACKED = 4096


@attrs.define
class _Entry:
    failures: int = 0
    #: Earliest trio time the next attempt from this address is looked at.
    next_slot: float = 0.0
    last_failure: float = 0.0
    #: Failures not yet in a log line, and when the last line was written.
    unreported: int = 0
    reported_at: float = 0.0


class LoginThrottle:
    """Growing per-address delay for login attempts after failures, with summed warnings.

    ``settings`` returns ``(initial, cap, report_interval)`` in seconds; it is called on
    every use so a reload applies to the next attempt.
    """

    def __init__(self, settings: Callable[[], tuple[float, float, float]]) -> None:
        self._settings = settings
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    def delay(self, failures: int) -> float:
        initial, cap, _ = self._settings()
        if failures <= 0 or initial <= 0:
            return 0.0
        return min(cap, initial * 2.0 ** min(failures - 1, 60))

    def _entry(self, address: str) -> _Entry | None:
        entry = self._entries.get(address)
        if entry is None:
            return None
        _, cap, interval = self._settings()
        now = trio.current_time()
        if not entry.unreported and now - entry.last_failure > 2 * cap + interval:
            del self._entries[address]  # quiet long enough: forgiven
            return None
        return entry

    async def wait_turn(self, address: str) -> float:
        """Sleep until this address may try again. Returns the seconds waited."""
        entry = self._entry(address)
        if entry is None or entry.failures == 0:
            return 0.0
        now = trio.current_time()
        slot = max(now, entry.next_slot)
        entry.next_slot = slot + self.delay(entry.failures)
        await trio.sleep_until(slot)
        return slot - now

    def failed(self, address: str, reason: str) -> None:
        """Count a refused login; the first from an address is logged at once."""
        now = trio.current_time()
        entry = self._entry(address)
        if entry is None:
            entry = self._entries[address] = _Entry()
            while len(self._entries) > MAX_TRACKED:
                self._entries.popitem(last=False)
        self._entries.move_to_end(address)
        entry.failures += 1
        entry.last_failure = now
        entry.next_slot = max(entry.next_slot, now + self.delay(entry.failures))
        entry.unreported += 1
        if entry.failures == 1:
            entry.reported_at = now
            self._report(address, entry, now, reason=reason)
        else:
            log.debug("appservice.login_refused_again", address=address, reason=reason)

    def succeeded(self, address: str) -> None:
        """A good login: the address starts afresh (pending refusals are still reported)."""
        entry = self._entries.get(address)
        if entry is None:
            return
        if entry.unreported:
            self._report(address, entry, trio.current_time())
        del self._entries[address]

    def _report(self, address: str, entry: _Entry, now: float, reason: str = "") -> None:
        log.warning(
            "appservice.login_refused",
            address=address,
            reason=reason or "wrong digest",
            refusals=entry.unreported,
            seconds=round(now - entry.reported_at, 1),
            failures=entry.failures,
            delay=self.delay(entry.failures),
        )
        entry.unreported = 0
        entry.reported_at = now

    def flush(self) -> None:
        """Log the summed refusals of every address whose interval is over."""
        _, _, interval = self._settings()
        now = trio.current_time()
        for address, entry in list(self._entries.items()):
            if entry.unreported and now - entry.reported_at >= interval:
                self._report(address, entry, now)
            self._entry(address)  # forget the quiet ones

    async def run(self) -> None:
        """Flush on a timer, forever (start it in the server's nursery)."""
        while True:
            await trio.sleep(min(5.0, max(0.05, self._settings()[2] / 4)))
            self.flush()

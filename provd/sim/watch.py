"""Observable state for tests and for the simulator's own parts: wait until a predicate holds.

A trio Event is one-shot; state that changes many times (logins, online flags) needs a
"something changed, look again" signal. :meth:`Watch.notify` wakes every waiter, which then
re-checks its predicate, so no change is missed and nobody polls or sleeps.
"""

from __future__ import annotations

from collections.abc import Callable

import trio


class Watch:
    def __init__(self) -> None:
        self._event = trio.Event()

    def notify(self) -> None:
        """Something changed: wake everyone waiting."""
        self._event.set()
        self._event = trio.Event()

    async def wait_until(self, predicate: Callable[[], object]) -> None:
        """Return once ``predicate()`` is true (at once if it already is)."""
        while not predicate():
            await self._event.wait()

    async def wait_changed(self) -> None:
        await self._event.wait()

"""Exponential back-off with full jitter and a cap, as a pure object (no sleeping here)."""

from __future__ import annotations

import random

import attrs

_SHARED_RNG = random.Random()


@attrs.define
class Backoff:
    """Delays for reconnect attempts: ``uniform(initial*factor**n / 2, initial*factor**n)``,
    capped. Half-jitter keeps a floor so a thousand actors restarted together spread out
    without hammering the peer in the first instants.
    """

    initial: float = 1.0
    factor: float = 2.0
    cap: float = 32.0
    #: One generator shared by every Backoff unless a test passes its own: a Random is
    #: 2.5 KB of state, and there are two Backoffs per phone (issue 14, RSS per phone).
    rng: random.Random = attrs.field(factory=lambda: _SHARED_RNG)
    attempt: int = 0

    def next_delay(self) -> float:
        ceiling = min(self.cap, self.initial * self.factor**self.attempt)
        self.attempt += 1
        return self.rng.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.attempt = 0

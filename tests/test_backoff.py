"""Back-off: exponential, jittered, capped, resettable."""

import random

from provd.backoff import Backoff


def test_grows_then_caps_with_jitter_floor():
    """Delays double up to the cap, each within [ceiling/2, ceiling]."""
    b = Backoff(initial=1, factor=2, cap=8, rng=random.Random(1))
    delays = [b.next_delay() for _ in range(6)]
    ceilings = [1, 2, 4, 8, 8, 8]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True))


def test_jitter_spreads_actors():
    """Two actors with different random streams do not retry in lockstep."""
    a = Backoff(rng=random.Random(1))
    b = Backoff(rng=random.Random(2))
    assert [a.next_delay() for _ in range(3)] != [b.next_delay() for _ in range(3)]


def test_reset():
    """reset() starts again from the first delay."""
    b = Backoff(initial=1, cap=64, rng=random.Random(0))
    for _ in range(5):
        b.next_delay()
    b.reset()
    assert b.next_delay() <= 1

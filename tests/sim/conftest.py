"""Fixtures: a fake provd endpoint, a fake clock, and a running simulator pointed at it."""

import random

import pytest

from provd.backoff import Backoff
from provd.sim import Simulator

from .helpers import FakeClock, FakeProvd, sim_config


@pytest.fixture
async def fake_provd(nursery) -> FakeProvd:
    return await FakeProvd().start(nursery)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def sim(nursery, fake_provd, clock) -> Simulator:
    """A running simulator whose PBX points at the fake provd."""
    simulator = Simulator(
        sim_config(), clock=clock, backoff=Backoff(initial=0.01, cap=0.04, rng=random.Random(7))
    )
    simulator.set_provd(fake_provd.url)
    await nursery.start(simulator.run)
    return simulator

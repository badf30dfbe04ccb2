"""The phone supervisor: one-for-one restarts with growing pauses, never given up;
stop cancels."""

import itertools

import trio
from structlog.testing import capture_logs

from provd.actors import supervisor as supervisor_module
from provd.actors.state import DevicesLocator, PhoneDirectory
from provd.actors.supervisor import PhoneSupervisor
from provd.config import Config
from provd.store.records import PhoneRecord


class FakeContext:
    def __init__(self, macs, **provisioning):
        self.directory = PhoneDirectory()
        self.directory.load(PhoneRecord(mac=m, code="1", sysclient_password="p") for m in macs)
        self.locator = DevicesLocator()
        self.config = Config.from_mapping(
            {"appservice": {"password": "x" * 12}, "provisioning": provisioning}
        )


async def test_crashing_actor_restarted_forever_with_capped_pauses(
    monkeypatch, autojump_clock, nursery
):
    """Found 8.4: a crashing actor is restarted with growing pauses up to restart_cap and
    never given up; its state and last error are visible."""
    calls = []
    enough = trio.Event()

    async def crash(mac, ctx):
        calls.append(trio.current_time())
        if len(calls) == 30:
            enough.set()
        raise RuntimeError("bug")

    monkeypatch.setattr(supervisor_module, "run_phone", crash)
    ctx = FakeContext(["112233445566"], restart_cap=120.0)
    sup = PhoneSupervisor(ctx, clock=trio.current_time)
    with capture_logs() as events:
        await nursery.start(sup.run)
        await enough.wait()
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    assert max(gaps) <= 120.0 and max(gaps[-5:]) >= 60.0  # grew to the cap's range
    assert not any(e["event"] == "supervisor.gave_up" for e in events)
    status = ctx.directory.actors["112233445566"]
    assert status.state == "crashed" and "RuntimeError: bug" in status.error
    assert status.crashes >= 29
    assert not sup.is_running("112233445566")  # pausing: a ProvisioningPhone restarts it
    sup.start("112233445566")
    await trio.testing.wait_all_tasks_blocked()
    assert len(calls) == 31  # at once, not after the pause


async def test_new_devices_url_ends_the_pause(monkeypatch, autojump_clock, nursery):
    """Found 8.4: a new Devices URL restarts a crashed actor at once."""
    calls = []
    eighth = trio.Event()

    async def crash(mac, ctx):
        calls.append(trio.current_time())
        if len(calls) == 8:
            eighth.set()
        raise RuntimeError("bug")

    monkeypatch.setattr(supervisor_module, "run_phone", crash)
    ctx = FakeContext(["112233445566"], restart_cap=600.0)
    sup = PhoneSupervisor(ctx, clock=trio.current_time)
    await nursery.start(sup.run)
    await eighth.wait()
    await trio.testing.wait_all_tasks_blocked()
    before = len(calls)
    now = trio.current_time()
    ctx.locator.set("ws://127.0.0.1:1/devices/")
    await trio.testing.wait_all_tasks_blocked()
    assert len(calls) == before + 1 and calls[-1] == now


async def test_restart_counters_pruned(monkeypatch, autojump_clock, nursery):
    """Found 8.12: per-MAC crash counters go when the actor ends or is stopped."""

    ended = []

    async def crash_then_return(mac, ctx):
        if not ctx.directory.actors.get(mac) or ctx.directory.actors[mac].crashes == 0:
            raise RuntimeError("once")
        ended.append(mac)

    monkeypatch.setattr(supervisor_module, "run_phone", crash_then_return)
    monkeypatch.setattr(supervisor_module, "RESTART_INITIAL", 0.001)
    macs = [f"0004f2{i:06x}" for i in range(50)]
    sup = PhoneSupervisor(FakeContext(macs))
    await nursery.start(sup.run)
    with trio.fail_after(5):
        await trio.sleep(2)  # virtual time: every pause (<= 2 ms) is over
        await trio.testing.wait_all_tasks_blocked()
    assert len(ended) == 50
    assert sup.restarts == {} and sup.running == 0


async def test_stop_cancels_and_start_restarts(monkeypatch, nursery):
    """stop() cancels a running actor; start() on a running MAC replaces it."""
    started, cancelled = [], []

    async def forever(mac, ctx):
        started.append(mac)
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            cancelled.append(mac)
            raise

    monkeypatch.setattr(supervisor_module, "run_phone", forever)
    sup = PhoneSupervisor(FakeContext(["aabbccddeeff"]))
    await nursery.start(sup.run)
    await trio.testing.wait_all_tasks_blocked()
    assert started == ["aabbccddeeff"] and sup.running == 1
    sup.start("aabbccddeeff")
    await trio.testing.wait_all_tasks_blocked()
    assert started == ["aabbccddeeff"] * 2 and cancelled == ["aabbccddeeff"]
    assert sup.running == 1
    sup.stop("aabbccddeeff")
    await trio.testing.wait_all_tasks_blocked()
    assert cancelled == ["aabbccddeeff"] * 2 and sup.running == 0


async def test_actor_that_returns_is_not_restarted(monkeypatch, nursery):
    """An actor that ends normally (phone removed, code refused) stays ended."""
    calls = []

    async def done(mac, ctx):
        calls.append(mac)

    monkeypatch.setattr(supervisor_module, "run_phone", done)
    sup = PhoneSupervisor(FakeContext(["aabbccddeeff"]))
    await nursery.start(sup.run)
    await trio.testing.wait_all_tasks_blocked()
    assert calls == ["aabbccddeeff"] and sup.running == 0

"""The phone supervisor: one-for-one restarts with an intensity limit; stop cancels."""

import trio
from structlog.testing import capture_logs

from provd.actors import supervisor as supervisor_module
from provd.actors.supervisor import MAX_RESTARTS, PhoneSupervisor
from provd.store.records import PhoneRecord


class FakeDirectory:
    def __init__(self, macs):
        self._records = [PhoneRecord(mac=m, code="1", sysclient_password="p") for m in macs]

    def all(self):
        return self._records


class FakeContext:
    def __init__(self, macs):
        self.directory = FakeDirectory(macs)


async def test_crashing_actor_restarted_then_given_up(monkeypatch, autojump_clock, nursery):
    """A crashing actor is restarted with back-off, and left down after too many crashes."""
    calls = []
    last_crash = trio.Event()

    async def crash(mac, ctx):
        calls.append(mac)
        if len(calls) == MAX_RESTARTS + 1:
            last_crash.set()
        raise RuntimeError("bug")

    monkeypatch.setattr(supervisor_module, "run_phone", crash)
    sup = PhoneSupervisor(FakeContext(["112233445566"]), clock=trio.current_time)
    with capture_logs() as events:
        await nursery.start(sup.run)
        await last_crash.wait()
        await trio.testing.wait_all_tasks_blocked()
    assert not sup.is_running("112233445566")
    assert len(calls) == MAX_RESTARTS + 1
    assert any(e["event"] == "supervisor.gave_up" for e in events)


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

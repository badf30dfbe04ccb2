"""Each phone's lifecycle (pending → provisioned → fetched → registered) and the registration
checker, without sockets: the book is pure; the checker runs on trio's autojump clock
against the simulator's PbxAdminApi state behind a fake PBX session."""

import attrs
import pytest
import trio
import trio.testing
from structlog.testing import capture_logs

from provd.actors.lifecycle import LifecycleBook
from provd.actors.pbxadmin import PbxAdminClient
from provd.actors.registration import RegistrationChecker
from provd.config import Config, RegistrationSettings
from provd.phones.fetch import FetchRecord
from provd.protocol.messages import GetRegsResult, Reg, UpdateObject
from provd.sim.config import PbxConfig
from provd.sim.pbxadmin import PbxAdminState
from provd.store.records import PhoneRecord

SETTINGS = RegistrationSettings(
    check_interval=300.0, retry_interval=10.0, warn_after=60.0, max_per_second=10.0
)
MAC = "805ec0aa0001"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def record(mac=MAC, state="provisioned", user="alice", cn="Alice A", hwid="", error=""):
    return PhoneRecord(mac=mac, code="c", usename=user, cn=cn, hwid=hwid, state=state, error=error)


def book(clock) -> LifecycleBook:
    return LifecycleBook(lambda: SETTINGS, clock=clock)


def regs(*pairs) -> GetRegsResult:
    return GetRegsResult(cn="Alice A", regs=tuple(Reg(hw=h, addr=a) for h, a in pairs))


def transitions(events):
    return [(e["mac"], e["from"], e["to"]) for e in events if e["event"] == "phone.lifecycle"]


class TestBook:
    def test_the_way_to_registered_with_times(self):
        clock = Clock()
        b = book(clock)
        with capture_logs() as logs:
            b.on_record(record(state="pending"))
            clock.now = 1001
            b.on_record(record())
            b.on_fetch(MAC, 1005.0)
            clock.now = 1007
            # hw compared case-insensitively, separators ignored
            b.on_regs([MAC], regs(("80:5E:C0:AA:00:01", "192.0.2.7:5060")))
        life = b.phones[MAC]
        assert (life.state, life.provisioned_at, life.fetched_at, life.registered_at) == (
            "registered",
            1001,
            1005,
            1007,
        )
        assert life.addr == "192.0.2.7:5060" and life.checked_at == 1007 and not life.warned
        assert transitions(logs) == [
            (MAC, "pending", "provisioned"),
            (MAC, "provisioned", "fetched"),
            (MAC, "fetched", "registered"),
        ]
        assert all(e["log_level"] == "info" for e in logs)
        assert b.due[MAC] == 1007 + SETTINGS.check_interval

    def test_not_registered_warns_once_after_warn_after_and_clears(self):
        clock = Clock()
        b = book(clock)
        b.on_record(record(state="pending"))
        b.on_record(record())
        b.on_fetch(MAC, 1000.0)
        assert b.due[MAC] == 1000 + SETTINGS.retry_interval  # first check after the fetch
        with capture_logs() as logs:
            clock.now = 1059
            b.on_regs([MAC], regs())
            assert b.due[MAC] == 1060  # the warning moment is a check of its own
            clock.now = 1060
            b.on_regs([MAC], regs(("other", "x")))
            clock.now = 1070
            b.on_regs([MAC], regs())
        warnings = [e for e in logs if e["log_level"] == "warning"]
        assert len(warnings) == 1, logs
        (warning,) = warnings
        assert warning["event"] == "phone.not_registered"
        assert (warning["mac"], warning["user"]) == (MAC, "alice")
        assert "credentials" in warning["hint"] and "TLS" in warning["hint"]
        life = b.phones[MAC]
        assert life.warned and life.state == "fetched" and "not registered" in life.error
        with capture_logs() as logs:
            clock.now = 1100
            b.on_regs([MAC], regs((MAC, "192.0.2.7:5060")))
        assert [e["event"] for e in logs] == ["phone.not_registered_cleared", "phone.lifecycle"]
        assert all(e["log_level"] == "info" for e in logs)
        life = b.phones[MAC]
        assert life.state == "registered" and not life.warned and life.error == ""

    def test_registration_lost_goes_back_to_fetched(self):
        clock = Clock()
        b = book(clock)
        b.on_record(record(state="pending"))
        b.on_record(record())
        b.on_fetch(MAC, 1000.0)
        b.on_regs([MAC], regs((MAC, "a")))
        with capture_logs() as logs:
            clock.now = 1300
            b.on_regs([MAC], regs())
        assert [e["event"] for e in logs] == ["phone.registration_lost", "phone.lifecycle"]
        assert transitions(logs) == [(MAC, "registered", "fetched")]
        life = b.phones[MAC]
        assert life.state == "fetched" and life.since == 1300 and life.addr == ""
        assert b.due[MAC] == 1300 + SETTINGS.retry_interval

    def test_new_provisioning_starts_a_new_cycle_and_failed_keeps_its_error(self):
        clock = Clock()
        b = book(clock)
        b.on_record(record(state="pending"))
        b.on_record(record())
        b.on_fetch(MAC, 1000.0)
        b.on_record(record(state="failed", error="code refused"))
        life = b.phones[MAC]
        assert (life.state, life.fetched_at, life.error) == ("pending", 0.0, "code refused")
        assert MAC not in b.due
        b.on_fetch(MAC, 1001.0)  # a pending phone gets no file: nothing happens
        assert b.phones[MAC].state == "pending"

    def test_due_phones_grouped_by_user_and_taken_until_answered(self):
        clock = Clock()
        b = book(clock)
        for mac, cn in (("000000000001", "A"), ("000000000002", "A"), ("000000000003", "B")):
            b.on_record(record(mac=mac, state="pending", cn=cn))
            b.on_record(record(mac=mac, cn=cn))
        b.on_fetch("000000000001", 1000.0)  # due at 1010; its user-mate 2 rides along
        assert b.due_groups() == []
        clock.now = 1010
        ((target, macs),) = b.due_groups()
        assert target.cn == "A" and sorted(macs) == ["000000000001", "000000000002"]
        assert "000000000001" not in b.due and "000000000003" in b.due
        b.on_check_failed(macs, "PBX refused GetRegs: object not found")
        assert b.phones["000000000001"].error.startswith("PBX refused")
        assert b.due["000000000001"] == 1020

    def test_load_after_restart_keeps_the_stored_lifecycle(self):
        clock = Clock()
        first = book(clock)
        first.on_record(record(state="pending"))
        first.on_record(record())
        first.on_fetch(MAC, 1000.0)
        stored = {MAC: first.phones[MAC]}
        with capture_logs() as logs:
            again = book(clock)
            again.load(stored, [record()])
        assert again.phones[MAC] == stored[MAC] and transitions(logs) == []
        assert again.due[MAC] == clock.now + SETTINGS.retry_interval


class FakePbxSession:
    """A PBX session answering PbxAdminApi from the simulator's state."""

    def __init__(self, state: PbxAdminState) -> None:
        self.state = state
        self.asked: list[tuple[float, object]] = []

    async def ask(self, request):
        self.asked.append((trio.current_time(), request))
        await trio.sleep(0.01)
        (answer,) = self.state.handle(request)
        return answer


def checker(session_box, *, tcp=False, fix=False, **registration):
    settings = {
        "check_interval": 300.0,
        "retry_interval": 1.0,
        "warn_after": 5.0,
        "max_per_second": 10.0,
        **registration,
    }
    config = Config.from_mapping(
        {
            "registration": settings,
            "pbx": {"fix_device_flags": fix},
            "phones": {"sip_transport": "tcp" if tcp else "tls"},
        }
    )
    writes = []

    async def write(rows):
        writes.append(rows)

    client = PbxAdminClient(lambda: session_box[0])
    return RegistrationChecker(lambda: config, client, write, clock=trio.current_time), writes


def provision(checker_, state, mac, cn, *, register=True):
    state.ensure_user(mac=mac, cn=cn, h323=cn.lower(), hw=mac)
    if not register:
        state.set_rule(mac, register=False)
    checker_.phone_changed(mac, record(mac=mac, state="pending", cn=cn, user=cn.lower()))
    checker_.phone_changed(mac, record(mac=mac, cn=cn, user=cn.lower()))


def fetch(checker_, state, mac):
    state.phone_fetched(mac)
    row = FetchRecord(
        time=trio.current_time(),
        address="127.0.0.1",
        user_agent="ua",
        vendor="yealink",
        model=None,
        firmware=None,
        file="f",
        mac=mac,
    )
    checker_.fetched([row])


class TestChecker:
    async def test_registered_and_never_registered_flagged(self, nursery, autojump_clock):
        state = PbxAdminState(PbxConfig())
        box = [FakePbxSession(state)]
        c, writes = checker(box)
        await nursery.start(c.run)
        provision(c, state, "000000000001", "Anna")
        provision(c, state, "000000000002", "Bert", register=False)
        with capture_logs() as logs:
            fetch(c, state, "000000000001")
            fetch(c, state, "000000000002")
            await trio.sleep(2.0)
            assert c.book.phones["000000000001"].state == "registered"
            assert c.book.phones["000000000002"].state == "fetched"
            assert not [e for e in logs if e["event"] == "phone.not_registered"]
            await trio.sleep(4.0)
        (warning,) = [e for e in logs if e["event"] == "phone.not_registered"]
        assert warning["mac"] == "000000000002" and warning["log_level"] == "warning"
        assert c.book.phones["000000000002"].warned
        await trio.sleep(1.5)  # the batched store write (FLUSH_INTERVAL)
        stored = {r.mac: r for rows in writes for r in rows}
        assert stored["000000000001"].state == "registered" and stored["000000000002"].warned

    async def test_rate_bounded_and_batched_per_user(self, nursery, autojump_clock):
        state = PbxAdminState(PbxConfig())
        session = FakePbxSession(state)
        box = [session]
        c, _writes = checker(box, max_per_second=5.0)
        await nursery.start(c.run)
        for i in range(20):
            provision(c, state, f"0000000001{i:02d}", f"User{i}")
        provision(c, state, "000000000200", "User0")  # a second phone of User0
        for mac in list(c.book.phones):
            fetch(c, state, mac)
        await trio.sleep(10.0)
        asked = [t for t, _r in session.asked]
        assert len(asked) == 20  # 21 phones, 20 users
        assert asked[-1] - asked[0] >= 19 / 5.0 - 0.01  # at most 5 per second
        assert all(life.state == "registered" for life in c.book.phones.values())

    async def test_without_pbx_admin_api_nothing_is_asked_until_it_comes(
        self, nursery, autojump_clock
    ):
        state = PbxAdminState(PbxConfig())
        box = [None]
        c, _writes = checker(box)
        await nursery.start(c.run)
        provision(c, state, "000000000001", "Anna")
        fetch(c, state, "000000000001")
        await trio.sleep(30.0)
        life = c.book.phones["000000000001"]
        assert life.state == "fetched" and not life.warned and life.error == ""
        session = FakePbxSession(state)
        box[0] = session
        c.wake()  # as a PBX session announcing PbxAdminApi does
        await trio.sleep(1.0)
        assert c.book.phones["000000000001"].state == "registered"

    @pytest.mark.parametrize("tcp", [True, False])
    async def test_fix_device_flags_clears_tls_only_with_tcp(self, nursery, autojump_clock, tcp):
        state = PbxAdminState(PbxConfig())
        session = FakePbxSession(state)
        c, _writes = checker([session], tcp=tcp, fix=True)
        await nursery.start(c.run)
        provision(c, state, "000000000001", "Anna")
        obj = state.find(cn="Anna")
        obj.devices[0] = attrs.evolve(obj.devices[0], extra={"future": 7})
        with capture_logs() as logs:
            fetch(c, state, "000000000001")
            await trio.sleep(3.0)
        (device,) = state.find(cn="Anna").devices
        assert device.tls is (not tcp) and device.trusted is True
        assert device.extra == {"future": 7}  # read-modify-write kept the unknown member
        updates = [r for _t, r in session.asked if isinstance(r, UpdateObject)]
        assert len(updates) == (1 if tcp else 0)
        assert bool([e for e in logs if e["event"] == "pbx.device_tls_cleared"]) == tcp


async def test_error_answer_kept_as_last_error(nursery, autojump_clock):
    """A PBX that answers GetRegs with an error (unknown object): the phone stays fetched,
    the error is its last error (logged once), it is asked again later."""
    state = PbxAdminState(PbxConfig(admin_not_found="error", numeric_errors=True))
    session = FakePbxSession(state)
    c, _writes = checker([session])
    await nursery.start(c.run)
    mac = "000000000009"
    c.phone_changed(mac, record(mac=mac, state="pending", cn="Nobody"))
    c.phone_changed(mac, record(mac=mac, cn="Nobody"))
    with capture_logs() as logs:
        c.fetched(
            [
                FetchRecord(
                    time=trio.current_time(),
                    address="a",
                    user_agent="",
                    vendor="v",
                    model=None,
                    firmware=None,
                    file="f",
                    mac=mac,
                )
            ]
        )
        await trio.sleep(3.5)
    life = c.book.phones[mac]
    assert life.state == "fetched"
    assert life.error == "PBX refused GetRegs: object not found (error 1)"
    assert len(session.asked) >= 3  # asked again every retry_interval
    assert len([e for e in logs if e["event"] == "registration.check_failed"]) == 1


def test_registration_config_validated_naming_the_key():
    from provd.config import ConfigError

    for key in ("check_interval", "retry_interval", "warn_after", "max_per_second"):
        with pytest.raises(ConfigError, match=rf"registration\.{key}: must be positive"):
            Config.from_mapping({"registration": {key: 0}})
    with pytest.raises(ConfigError, match=r"pbx\.fix_device_flags: must be bool"):
        Config.from_mapping({"pbx": {"fix_device_flags": "yes"}})


async def test_pbx_admin_used_only_when_pbxinfo_lists_it(tmp_path, nursery):
    """The daemon's client is available only on a PBX session whose PbxInfo lists
    PbxAdminApi (the offered case: tests/e2e/test_registration.py); without it the PBX is
    asked nothing and one info line says why."""
    from provd.actors.daemon import Daemon
    from provd.actors.pbxadmin import PbxAdminUnavailable
    from provd.backoff import Backoff
    from provd.sim import SimConfig, Simulator

    from .conftest import PASSWORD, make_config

    daemon = Daemon(make_config(tmp_path))
    pbx_info = trio.Event()
    daemon.app_ctx.pbx_listeners.append(pbx_info.set)
    with capture_logs() as logs:
        bound = await nursery.start(daemon.run)
        sim = Simulator(
            SimConfig.from_mapping(
                {"provd": {"url": None, "password": PASSWORD}, "pbx": {"admin_api": False}}
            ),
            backoff=Backoff(initial=0.05, cap=0.2),
        )
        await nursery.start(sim.run)
        sim.set_provd(bound.appservice_url + "provd")
        with trio.fail_after(10):
            await pbx_info.wait()  # PbxInfo handled
        assert daemon.app_ctx.pbx_sessions and daemon.pbx_admin.available is False
        with pytest.raises(PbxAdminUnavailable):
            await daemon.pbx_admin.get_regs(cn="Alice A")
        assert sim.pbxadmin.requests == []
    unavailable = [e for e in logs if e["event"] == "pbx.admin_api_unavailable"]
    assert len(unavailable) == 1
    daemon.shutdown()

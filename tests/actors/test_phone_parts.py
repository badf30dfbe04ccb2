"""Pure parts of the phone actor: the identify it sends, the handshake limiter, outcomes."""

import trio

from provd.actors.phone import describe
from provd.actors.state import HandshakeLimiter, Outcome, Outcomes
from provd.phones.fetch import FetchRecord
from provd.store.records import PhoneRecord

YEALINK = PhoneRecord(mac="001565aabbcc", code="1", cn="Alice Example")


def fetch(address="192.0.2.10", model="SIP-T54W", firmware="96.86.0.70", vendor="yealink"):
    return FetchRecord(
        time=1.0,
        address=address,
        user_agent=f"Yealink {model} {firmware}",
        vendor=vendor,
        model=model,
        firmware=firmware,
        file="001565aabbcc.cfg",
        mac=YEALINK.mac,
    )


class TestDescribe:
    def test_before_first_fetch_vendor_from_oui(self):
        """Found 9.11: before a fetch, say what is known: the vendor from the OUI."""
        ident = describe(YEALINK, None, "provd")
        assert (ident.product, ident.version, ident.name) == ("Yealink phone", "", "Alice Example")
        assert ident.other is True and "ethIfs" not in ident.extra

    def test_unknown_vendor_falls_back(self):
        ident = describe(PhoneRecord(mac="020000000001", code="1"), None, "provd")
        assert ident.product == "provd" and ident.name is None

    def test_after_fetch_model_firmware_address(self):
        """Found 9.11: model/firmware from the User-Agent, the address it fetched from."""
        ident = describe(YEALINK, fetch(), "provd")
        body = ident.to_body()
        assert body["product"] == "Yealink SIP-T54W" and body["version"] == "96.86.0.70"
        assert body["name"] == "Alice Example" and body["other"] is True
        assert body["ethIfs"] == [{"if": "eth0", "ipv4": "192.0.2.10"}]

    def test_ipv6_and_mapped_addresses(self):
        assert describe(YEALINK, fetch(address="2001:db8::5"), "p").extra["ethIfs"] == [
            {"if": "eth0", "ipv6": "2001:db8::5"}
        ]
        assert describe(YEALINK, fetch(address="::ffff:192.0.2.7"), "p").extra["ethIfs"] == [
            {"if": "eth0", "ipv4": "192.0.2.7"}
        ]

    def test_model_naming_vendor_not_doubled(self):
        ident = describe(YEALINK, fetch(model="yealink-T46U", firmware=None), "p")
        assert ident.product == "yealink-T46U" and ident.version == ""


async def test_limiter_first_provisioning_jumps_the_queue():
    """Found 8.14: waiting new-code handshakes are served before waiting reconnects, and
    may use the reserved slots."""
    limiter = HandshakeLimiter(2, reserved=1)
    order = []

    async def take(name, priority):
        await limiter.acquire(priority=priority)
        order.append(name)

    await limiter.acquire()
    await limiter.acquire()
    async with trio.open_nursery() as nursery:
        for i in range(3):
            nursery.start_soon(take, f"reconnect{i}", False)
            await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(take, "code-a", True)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(take, "code-b", True)
        await trio.testing.wait_all_tasks_blocked()
        assert order == ["code-a"]  # the reserved slot, past three waiting reconnects
        limiter.release()
        await trio.testing.wait_all_tasks_blocked()
        assert order == ["code-a", "code-b"]
        for _ in range(4):
            limiter.release()
            await trio.testing.wait_all_tasks_blocked()
    assert order[2:] == ["reconnect0", "reconnect1", "reconnect2"]


async def test_limiter_cancelled_waiter_leaks_no_slot():
    limiter = HandshakeLimiter(1)
    await limiter.acquire()
    with trio.move_on_after(0.01):
        await limiter.acquire()
    assert limiter.waiting == 0
    limiter.release()
    assert limiter.in_use == 0


async def test_outcomes_bounded_per_mac():
    """Found 8.12: one result per MAC, no event left behind by a timed-out waiter."""
    outcomes = Outcomes()
    for i in range(1000):
        outcomes.report("001565aabbcc", f"code{i}", Outcome(ok=True))
    assert len(outcomes) == 1
    with trio.move_on_after(0.01):
        await outcomes.wait("001565000001", "x")
    assert len(outcomes) == 1
    assert (await outcomes.wait("001565aabbcc", "code999")).ok
    outcomes.forget("001565aabbcc")
    assert len(outcomes) == 0


def test_actor_error_scrubbed_of_secrets():
    """The last error shown by `provd status` never carries a registered secret."""
    from provd.actors.state import PhoneDirectory
    from provd.logs import register_secret

    directory = PhoneDirectory()
    directory.put(PhoneRecord(mac="001565aabbcc", code="1", sysclient_password="S3cret-Dev-Pw-77"))
    register_secret("S3cret-Dev-Pw-77")
    directory.set_actor("001565aabbcc", "crashed", "KeyError: 'S3cret-Dev-Pw-77'")
    assert "S3cret" not in directory.actors["001565aabbcc"].error
    directory.set_actor("0015650000ff", "crashed", "unknown phone: no entry")
    assert "0015650000ff" not in directory.actors


def test_directory_registers_only_the_secrets_a_record_changes(monkeypatch):
    """A phone's record is put four times during its first provisioning, its secrets mostly
    the same: only a new one is registered (before: all four on every put, issue 14), a
    replaced one is forgotten, and a scrubbed line still masks the new one."""
    import attrs

    from provd.actors import state
    from provd.actors.state import PhoneDirectory

    registered: list[str] = []
    forgotten: list[str] = []
    real_register, real_forget = state.register_secret, state.forget_secret
    monkeypatch.setattr(
        state, "register_secret", lambda s, owner: (registered.append(s), real_register(s, owner))
    )
    monkeypatch.setattr(
        state, "forget_secret", lambda s, owner: (forgotten.append(s), real_forget(s, owner))
    )
    directory = PhoneDirectory()
    first = PhoneRecord(mac="001565aabbcc", code="1", password="User-Pw-0001")
    directory.put(first)
    assert "User-Pw-0001" in registered
    registered.clear()
    directory.put(attrs.evolve(first, state="provisioned", revision=4))
    assert registered == [] and forgotten == []
    directory.put(attrs.evolve(first, sysclient_password="Dev-Pw-0002"))
    assert registered == ["Dev-Pw-0002"] and forgotten == []
    directory.put(attrs.evolve(first, password="User-Pw-0003", sysclient_password="Dev-Pw-0002"))
    assert registered == ["Dev-Pw-0002", "User-Pw-0003"] and forgotten == ["User-Pw-0001"]
    status = state.redact_secrets(None, "", {"error": "saw Dev-Pw-0002 and User-Pw-0003"})
    assert status["error"] == "saw ******** and ********"

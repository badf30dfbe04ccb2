"""The login throttle and the Devices URL check, in-process (trio's autojump clock)."""

import pytest
import trio
from structlog.testing import capture_logs

from provd.actors.state import DevicesLocator, devices_url_problem
from provd.config import Config, ConfigError
from provd.transport.guard import MAX_TRACKED, LoginThrottle


def throttle(initial=1.0, cap=8.0, interval=60.0) -> LoginThrottle:
    return LoginThrottle(lambda: (initial, cap, interval))


async def test_delay_doubles_per_failure_up_to_the_cap(autojump_clock):
    """0, 1, 2, 4, 8, 8 s: each wait is the delay for the failures so far."""
    t = throttle()
    waits = []
    for _ in range(6):
        waits.append(await t.wait_turn("192.0.2.1"))
        t.failed("192.0.2.1", "wrong digest")
    assert waits == [0.0, 1.0, 2.0, 4.0, 8.0, 8.0]
    assert await t.wait_turn("192.0.2.2") == 0.0  # other addresses are not slowed


async def test_parallel_attempts_queue_for_their_turn(autojump_clock):
    """Attempts that arrive together from one address are spread out, not let in at once."""
    t = throttle(initial=1.0, cap=1.0)
    t.failed("192.0.2.1", "wrong digest")
    start = trio.current_time()
    let_in = []

    async def attempt():
        await t.wait_turn("192.0.2.1")
        let_in.append(trio.current_time() - start)

    async with trio.open_nursery() as nursery:
        for _ in range(4):
            nursery.start_soon(attempt)
    assert sorted(let_in) == [1.0, 2.0, 3.0, 4.0]


async def test_success_clears_and_refusals_are_summed(autojump_clock):
    """First refusal logged at once, later ones summed; a good login reports and clears."""
    t = throttle(interval=10.0)
    with capture_logs() as events:
        for _ in range(5):
            await t.wait_turn("192.0.2.1")
            t.failed("192.0.2.1", "wrong digest")
        refused = [e for e in events if e["event"] == "appservice.login_refused"]
        assert [e["refusals"] for e in refused] == [1]
        await trio.sleep(10.0)
        t.flush()
        refused = [e for e in events if e["event"] == "appservice.login_refused"]
        assert [e["refusals"] for e in refused] == [1, 4]
        assert refused[0]["log_level"] == "warning" and refused[0]["address"] == "192.0.2.1"
        t.failed("192.0.2.1", "wrong digest")
        t.succeeded("192.0.2.1")
        assert [e["refusals"] for e in events if e["event"] == "appservice.login_refused"] == [
            1,
            4,
            1,
        ]
    assert await t.wait_turn("192.0.2.1") == 0.0


async def test_quiet_address_forgiven_and_table_bounded(autojump_clock):
    """An address quiet for long starts afresh; the table never grows past its bound."""
    t = throttle(initial=1.0, cap=2.0, interval=1.0)
    t.failed("192.0.2.1", "x")
    await trio.sleep(10.0)
    t.flush()
    assert await t.wait_turn("192.0.2.1") == 0.0
    with capture_logs():
        for n in range(MAX_TRACKED + 50):
            t.failed(f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}", "x")
    assert len(t._entries) == MAX_TRACKED


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ws://pbx.example.com/example.com/devices/", None),
        ("wss://[::1]:8443/example.com/devices/", None),
        ("WSS://ap.example.com/devices/", None),
        ("http://ap.example.com/devices/", "not a ws:// or wss:// URL"),
        ("https://ap.example.com/devices/", "not a ws:// or wss:// URL"),
        ("file:///etc/passwd", "not a ws:// or wss:// URL"),
        ("ws:///devices/", "no host"),
        ("wss://ap.example.com:99999/", "not a valid URL"),
        ("wss://[::1/", "not a valid URL"),
        ("wss://ap.example.com/a b", "whitespace or control"),
        ("wss://ap.example.com/\x00", "whitespace or control"),
        ("wss://ap.example.com/" + "a" * 3000, "longer than"),
        ("", "empty"),
    ],
)
def test_devices_url_problem(url, problem):
    """Only ws:// and wss:// URLs with a host pass."""
    found = devices_url_problem(url)
    assert found == problem if problem is None else problem in found


def test_locator_refuses_a_bad_url_and_keeps_the_good_one():
    """The locator never takes an invalid URL, from a PBX or from a stored setting."""
    assert DevicesLocator("http://old.example.com/devices/").url == ""
    locator = DevicesLocator("wss://ap.example.com/devices/")
    with capture_logs() as events:
        assert locator.set("http://evil.example.com/devices/") is False
    assert locator.url == "wss://ap.example.com/devices/"
    assert events[0]["event"] == "devices.url_refused"
    assert events[0]["url"] == "http://evil.example.com/devices/"
    assert locator.set("wss://other.example.com/devices/") is True


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"provisioning": {"devices_url": "http://ap.example.com/devices/"}}, "devices_url"),
        ({"appservice": {"max_connections": 0}}, "appservice.max_connections"),
        ({"appservice": {"handshake_timeout": 0}}, "appservice.handshake_timeout"),
        ({"appservice": {"ping_timeout": -1.0}}, "appservice.ping_timeout"),
        ({"appservice": {"max_login_message_size": 100}}, "max_login_message_size"),
        ({"appservice": {"max_message_size": 2048}}, "appservice.max_message_size"),
        ({"appservice": {"login_delay_initial": 5.0, "login_delay_cap": 1.0}}, "login_delay_cap"),
    ],
)
def test_config_refuses_bad_guard_settings(data, key):
    """Each new setting is validated and named in the error."""
    with pytest.raises(ConfigError, match=key):
        Config.from_mapping(data)


def test_config_guard_defaults():
    """The defaults: 16 KiB before login, 256 connections, pings every 30 s."""
    a = Config().appservice
    assert (a.max_login_message_size, a.max_connections, a.ping_interval) == (16384, 256, 30.0)
    assert Config.from_mapping({"appservice": {"ping_interval": 0}}).appservice.ping_interval == 0

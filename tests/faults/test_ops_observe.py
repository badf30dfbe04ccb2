"""Issue 13 (operations), findings 6 and 7: metrics, health, access log, outages summarised,
status that shows staleness, liveness `unknown` without a daemon."""

from __future__ import annotations

import functools
import json
import re
from types import SimpleNamespace

import httpx
import trio
from prometheus_client import generate_latest
from structlog.testing import capture_logs

from provd.actors.observe import Observability
from provd.backoff import Backoff
from provd.metrics import AccessLog, Metrics, RateLimit
from provd.outage import OutageTracker
from provd.phones import Vendor
from provd.phones.examples import phone_request
from provd.phones.http import Request, Response
from provd.sim import Phone, Simulator

from ..e2e.harness import ProvdProcess, cli, sim_config

PHONES = [
    Phone(mac="805ec0cc0001", user="olga", cn="Olga", password="Olga-Pwd-obs-1"),
    Phone(mac="000413cc0002", user="otto", cn="Otto", password="Otto-Pwd-obs-2"),
]
METRICS = '[metrics]\nlisten = "127.0.0.1:0"\n'


async def run_cli(provd: ProvdProcess, *args: str):
    return await trio.to_thread.run_sync(functools.partial(cli, *args, provd=provd))


async def start(nursery, tmp_path, level="info"):
    sim = Simulator(sim_config(), backoff=Backoff(initial=0.05, cap=0.3))
    addresses = await nursery.start(sim.run)
    provd = ProvdProcess(tmp_path, extra=METRICS, level=level)
    await provd.start(nursery)
    sim.set_provd(provd.appservice_url + "provd")
    health = (await provd.wait_for(r"event=metrics\.listening addresses=(\S+)")).group(1)
    return sim, provd, addresses, health


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text output."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        metric, _, value = line.rpartition(" ")
        base, _, rest = metric.partition("{")
        got = ",".join(sorted(rest.rstrip("}").split(","))) if rest else ""
        if base == name and got == want:
            return float(value)
    raise AssertionError(f"no sample {name}{labels}")


async def test_metrics_health_and_access_log(tmp_path, nursery):
    """/healthz, /readyz and /metrics on the [metrics] listener; one access line per fetch;
    phone actors' lines carry no stale session context; liveness shown while running."""
    with trio.fail_after(90):
        sim, provd, _, health = await start(nursery, tmp_path)
        results = await sim.provision(PHONES)
        assert [r.outcome for r in results] == ["ok", "ok"], results
        for phone in PHONES:
            await sim.wait_online(phone.mac)
        mark = len(provd.lines)
        async with httpx.AsyncClient(timeout=10) as client:
            assert (await client.get(health + "/healthz")).status_code == 200
            ready = await client.get(health + "/readyz")
            assert ready.status_code == 200 and ready.json()["ready"] is True
            assert ready.json()["pbx_session_up"] is True
            request = phone_request(Vendor.YEALINK, PHONES[0].mac)
            got = await client.get(
                provd.phones_url + request.path, headers={"User-Agent": request.user_agent}
            )
            assert got.status_code == 200
            stranger = phone_request(Vendor.YEALINK, "805ec0cc0999")
            missing = await client.get(
                provd.phones_url + stranger.path, headers={"User-Agent": stranger.user_agent}
            )
            assert missing.status_code == 404
            line = await provd.wait_for(r"^<6>event=phones\.fetch .*mac=805ec0cc0001", after=mark)
            for field in ("vendor=yealink", f"file={PHONES[0].mac}.cfg", "status=200"):
                assert field in line.string
            assert f"bytes={len(got.content)}" in line.string
            assert re.search(r" ms=\d", line.string)
            await provd.wait_for(r"^<6>event=phones\.fetch .*status=404", after=mark)
            page = await client.get(health + "/metrics")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/plain")
        text = page.text
        assert sample(text, "provd_phones", state="provisioned") == 2
        assert sample(text, "provd_phones", state="failed") == 0
        assert sample(text, "provd_phones_online") == 2
        assert sample(text, "provd_handshakes_in_flight") == 0
        assert sample(text, "provd_handshakes_queued") == 0
        assert sample(text, "provd_pbx_session_up") == 1
        assert sample(text, "provd_devices_session_up") == 1
        assert sample(text, "provd_fetches_total", vendor="yealink", status="200") == 1
        assert sample(text, "provd_fetches_total", vendor="yealink", status="404") == 1
        assert sample(text, "provd_fetch_seconds_count", vendor="yealink") == 2
        assert sample(text, "provd_render_seconds_count", vendor="yealink") == 2
        assert sample(text, "provd_reloads_total", result="refused") == 0
        assert "provd_reconnects_total" in text

        # finding 6: no phone-actor line carries the context of the session that spawned it
        actor_lines = [x for x in provd.lines if re.search(r"event=(sysclient|phone)\.", x)]
        assert actor_lines
        assert not [x for x in actor_lines if " sip=" in x or " peer=" in x], actor_lines[:3]
        listing = await run_cli(provd, "phones", "list")
        assert re.search(r"805ec0cc0001 .* yes ", listing.stdout), listing.stdout
        assert await provd.stop() == 0
        listing = await run_cli(provd, "phones", "list")
        assert re.search(r"805ec0cc0001 .* unknown ", listing.stdout), listing.stdout


async def test_devices_outage_summarised(tmp_path, nursery):
    """Devices unreachable: one warning (not one info line per phone per retry), status
    says UNREACHABLE with the last error; one warning with counts when it is back."""
    with trio.fail_after(90):
        sim, provd, addresses, health = await start(nursery, tmp_path, level="debug")
        results = await sim.provision(PHONES)
        assert [r.outcome for r in results] == ["ok", "ok"], results
        for phone in PHONES:
            await sim.wait_online(phone.mac)
        mark = len(provd.lines)
        with trio.socket.socket() as hole:  # a loopback port nobody listens on
            await hole.bind(("127.0.0.1", 0))
            dead = f"ws://127.0.0.1:{hole.getsockname()[1]}/example.com/devices/"
        sim.move_devices(dead)
        await provd.wait_for(
            r"^<4>event=devices\.unreachable .*reason=\"?cannot connect", after=mark
        )
        # retries go on, each phone's at debug only (the warning above says it all)
        seen = mark
        for _ in range(6):
            retry = r"event=sysclient\.disconnected .*reason=\"?cannot connect"
            await provd.wait_for(retry, after=seen)
            seen = next(
                i + 1 for i in range(seen, len(provd.lines)) if re.search(retry, provd.lines[i])
            )
        async with httpx.AsyncClient(timeout=10) as client:
            text = (await client.get(health + "/metrics")).text
        assert sample(text, "provd_devices_session_up") == 0
        assert sample(text, "provd_reconnects_total") >= 6
        answer = json.loads((await run_cli(provd, "status", "--json")).stdout)
        assert answer["devices"]["up"] is False
        assert answer["devices"]["last_error"].startswith("cannot connect")
        assert "UNREACHABLE" in (await run_cli(provd, "status")).stdout
        during = provd.lines[mark:]
        assert len([x for x in during if "event=devices.unreachable" in x]) == 1
        noisy = [x for x in during if x[:3] in ("<6>", "<5>") and "cannot connect" in x]
        assert noisy == [], noisy[:3]

        back = len(provd.lines)
        sim.move_devices(addresses.devices_url)
        line = await provd.wait_for(r"^<4>event=devices\.reachable ", after=back)
        assert "clients_affected=2" in line.string and "failed_attempts=" in line.string
        for phone in PHONES:
            await sim.wait_online(phone.mac)
        answer = json.loads((await run_cli(provd, "status", "--json")).stdout)
        assert answer["devices"]["up"] is True
        assert len([x for x in provd.lines if "event=devices.reachable" in x]) == 1
        assert await provd.stop() == 0


def test_outage_tracker_one_warning_each_way():
    """Many failing attempts of many phones: one `unreachable`, one `reachable` with counts;
    a refusal while other phones are connected is no outage."""
    now = [0.0]
    tracker = OutageTracker("devices", clock=lambda: now[0], wall_clock=lambda: 1000 + now[0])
    with capture_logs() as events:
        tracker.connected_ok("a")
        tracker.connected_ok("b")
        tracker.attempt_ended("a", admitted=False, reason="closed by Devices (1008)")
        assert tracker.up is True  # b is still connected: Devices is there
        tracker.attempt_ended("b", admitted=True, reason="closed by Devices (1012)")
        for _ in range(5):
            now[0] += 1
            for phone in "abc":
                tracker.attempt_ended(phone, admitted=False, reason="cannot connect: OSError")
        assert tracker.down and tracker.snapshot()["last_error"] == "cannot connect: OSError"
        tracker.connected_ok("a")
        tracker.connected_ok("b")
    names = [e["event"] for e in events]
    assert names == ["devices.unreachable", "devices.reachable"]
    back = events[1]
    assert back["log_level"] == "warning"
    assert back["clients_affected"] == 3 and back["failed_attempts"] == 15
    assert back["down_for"] == 4.0


async def test_pbx_session_watch(autojump_clock):
    """The PBX's last session gone: one warning; a session back: one warning."""
    sessions: list[object] = []
    fake = SimpleNamespace(
        app_ctx=SimpleNamespace(pbx_sessions=sessions), locator=SimpleNamespace(url="")
    )
    observe = Observability(fake)  # type: ignore[arg-type]
    with capture_logs() as events:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(observe._watch)
            sessions.append(object())
            await trio.sleep(2)
            sessions.clear()
            await trio.sleep(2)
            await trio.sleep(2)
            sessions.append(object())
            await trio.sleep(2)
            nursery.cancel_scope.cancel()
    assert [e["event"] for e in events] == ["pbx.unreachable", "pbx.reachable"]
    assert observe.pbx.up is True and observe.pbx.outages == 1


async def test_access_log_rate_limited():
    """A boot storm: at most `rate` access lines per second, the rest counted."""
    now = [0.0]

    class App:
        async def respond(self, request):
            return Response(200, [], b"x" * 10)

    metrics = Metrics()
    access = AccessLog(lambda: App(), metrics, lambda: 5.0)
    access.limit = RateLimit(5.0, clock=lambda: now[0])
    request = Request(b"GET", b"/805ec0cc0001.cfg", {}, "192.0.2.1")
    with capture_logs() as events:
        for _ in range(50):
            response = await access.respond(request)
            access.finished(request, response, (1.0, 1.001, 1.002))
        now[0] += 1.0
        access.finished(request, await access.respond(request), (2.0, 2.001, 2.002))
    lines = [e for e in events if e["event"] == "phones.fetch"]
    assert len(lines) == 6
    assert lines[-1]["suppressed"] == 45
    assert lines[0]["status"] == 200 and lines[0]["bytes"] == 10
    assert lines[0]["vendor"] == "yealink" and lines[0]["mac"] == "805ec0cc0001"
    assert lines[0]["ms"] == 2.0 and lines[0]["address"] == "192.0.2.1"
    text = generate_latest(metrics.registry).decode()
    assert sample(text, "provd_fetches_total", vendor="yealink", status="200") == 51
    assert sample(text, "provd_fetch_seconds_count", vendor="yealink") == 51

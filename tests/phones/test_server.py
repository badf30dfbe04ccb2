"""The phone-facing app through the HTTP/1.1 server loop in-process (a socket pair, any
client address), and serve_phones on a real loopback socket."""

from __future__ import annotations

import base64
import ssl
from functools import partial
from pathlib import Path

import attrs
import httpx
import pytest
import trio
from structlog.testing import capture_logs

from provd.actors.state import PhoneDirectory
from provd.phones import (
    CheckedRenderer,
    FetchRecord,
    FetchRecorder,
    PhonesApp,
    PhonesSettings,
    TemplateCheckError,
    items,
    serve_phones,
)
from provd.phones.server import MAX_USER_AGENT, MissTracker
from provd.store.records import PhoneRecord

from ..tlsutil import self_signed
from .lean import LeanTransport
from .phones_fixtures import PASSWORD, make_phone

CLIENT = ("192.0.2.10", 40000)
YEALINK_UA = "Yealink SIP-T46G 28.72.0.1 00:15:65:a1:b2:c3"
SNOM_UA = "Mozilla/4.0 (compatible; snomD785-SIP 10.1.33.33 2010.12-00004-g9ba52f5 000413A1B2C3)"
GRANDSTREAM_UA = "Grandstream Model HW GXP2170 SW 1.0.11.3 DevId 000b82a1b2c3"


def yealink_ua(mac: str) -> str:
    """A Yealink User-Agent carrying ``mac`` (as Yealink phones send it)."""
    return "Yealink SIP-T46G 28.72.0.1 " + ":".join(mac[i : i + 2] for i in range(0, 12, 2))


class FakeClock:
    """A monotonic clock tests move by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Harness:
    """A PhonesApp over a dict of phones, recording lookups and fetches."""

    def __init__(self, **settings) -> None:
        self.phones = {
            mac: make_phone(mac=mac)
            for mac in (
                "001565a1b2c3",
                "000413a1b2c3",
                "000b82a1b2c3",
                "0c383ea1b2c3",
                "0004f2a1b2c3",
                "7c2f80a1b2c3",
            )
        }
        self.lookups: list[str] = []
        self.fetches: list[FetchRecord] = []
        self.clock = FakeClock()
        self.settings = PhonesSettings.from_mapping(
            {"miss_limit": 3, "miss_window": 60, **settings}
        )
        self.app = PhonesApp(
            CheckedRenderer("tls", year=2025),
            self.lookup,
            self.record,
            self.settings,
            clock=self.clock,
            wall_clock=lambda: 1_700_000_000.0,
        )

    async def lookup(self, mac: str):
        self.lookups.append(mac)
        return self.phones.get(mac)

    async def record(self, record: FetchRecord) -> None:
        self.fetches.append(record)

    def client(self, address: tuple[str, int] = CLIENT) -> httpx.AsyncClient:
        transport = LeanTransport(self.app, client=address)
        return httpx.AsyncClient(transport=transport, base_url="http://provd.test")


@pytest.fixture
def harness() -> Harness:
    return Harness()


class TestServing:
    @pytest.mark.parametrize(
        ("path", "ua", "needle"),
        [
            ("/001565a1b2c3.cfg", YEALINK_UA, "account.1.password = " + PASSWORD),
            ("/snomD785-000413A1B2C3.htm", SNOM_UA, "<user_pass"),
            ("/Grandstream/cfg000b82a1b2c3.xml", GRANDSTREAM_UA, "<P34>"),
            (
                "/Fanvil/0c383ea1b2c3.cfg",
                "Fanvil X4U 2.4.2 0c383ea1b2c3",
                "Register Pswd :" + PASSWORD,
            ),
            (
                "/0004f2a1b2c3-user.cfg",
                "FileTransport PolycomVVX-VVX_410-UA/5.9.5.0614",
                "reg.1.auth.password",
            ),
            (
                "/7C2F80A1B2C3.xml",
                "Gigaset N510 IP PRO/42.250.00.000.000;7C2F80A1B2C3",
                "aucS_SIP_PASSWORD",
            ),
        ],
    )
    async def test_each_vendor_gets_its_file(self, harness, path, ua, needle):
        """Every vendor's per-phone file is served with the decrypted password."""
        async with harness.client() as client:
            response = await client.get(path, headers={"user-agent": ua})
        assert response.status_code == 200
        assert needle in response.text
        assert "s3" in response.text and "cr3t" in response.text
        assert response.headers["cache-control"] == "no-store"

    async def test_common_file_needs_no_lookup(self, harness):
        """A model-common file is served without asking the store."""
        async with harness.client() as client:
            response = await client.get("/y000000000028.cfg", headers={"user-agent": YEALINK_UA})
        assert response.status_code == 200 and response.text.startswith("#!version:1.0.0.1")
        assert harness.lookups == [] and harness.fetches == []

    async def test_fetch_recorded(self, harness):
        """A per-phone GET is recorded with vendor, model, firmware, file and MAC."""
        async with harness.client() as client:
            await client.get("/001565a1b2c3.cfg", headers={"user-agent": YEALINK_UA})
        assert harness.fetches == [
            FetchRecord(
                time=1_700_000_000.0,
                address="192.0.2.10",
                user_agent=YEALINK_UA,
                vendor="yealink",
                model="T46G",
                firmware="28.72.0.1",
                file="001565a1b2c3.cfg",
                mac="001565a1b2c3",
            )
        ]

    async def test_head(self, harness):
        """HEAD answers the GET's status and length without a body, and records no fetch."""
        async with harness.client() as client:
            get = await client.get("/001565a1b2c3.cfg", headers={"user-agent": YEALINK_UA})
            head = await client.head("/001565a1b2c3.cfg", headers={"user-agent": YEALINK_UA})
        assert head.status_code == 200 and head.content == b""
        assert head.headers["content-length"] == str(len(get.content))
        assert len(harness.fetches) == 1

    async def test_post_not_allowed(self, harness):
        """Only GET and HEAD are answered."""
        async with harness.client() as client:
            response = await client.post("/001565a1b2c3.cfg", content=b"x")
        assert response.status_code == 405 and response.headers["allow"] == "GET, HEAD"

    async def test_unknown_mac_404(self, harness):
        """A MAC the store doesn't know gets 404 after one lookup."""
        async with harness.client() as client:
            response = await client.get(
                "/001565ffffff.cfg", headers={"user-agent": yealink_ua("001565ffffff")}
            )
        assert response.status_code == 404 and harness.lookups == ["001565ffffff"]

    async def test_mismatched_mac_403(self, harness):
        """A phone asking for another phone's file gets 403 without a lookup."""
        async with harness.client() as client:
            response = await client.get("/001565ffffff.cfg", headers={"user-agent": YEALINK_UA})
        assert response.status_code == 403 and harness.lookups == []

    async def test_unparseable_path_404(self, harness):
        """A path that is no provisioning file gets 404."""
        async with harness.client() as client:
            response = await client.get("/../../etc/passwd")
        assert response.status_code == 404

    async def test_no_password_logged(self, harness):
        """Serving a file logs no password."""
        with capture_logs() as logs:
            async with harness.client() as client:
                await client.get("/001565a1b2c3.cfg", headers={"user-agent": YEALINK_UA})
        assert any(entry["event"] == "phones.served" for entry in logs)
        assert PASSWORD not in repr(logs)


class TestThrottling:
    async def miss(self, client, n: int, start: int = 0) -> list[int]:
        statuses = []
        for i in range(start, start + n):
            r = await client.get(
                f"/001565{i:06x}.cfg", headers={"user-agent": yealink_ua(f"001565{i:06x}")}
            )
            statuses.append(r.status_code)
        return statuses

    async def test_throttled_after_limit_but_known_phone_served(self, harness):
        """Past miss_limit misses a client's misses get 429; a known phone still gets 200."""
        async with harness.client() as client:
            assert await self.miss(client, 3) == [404, 404, 404]
            assert await self.miss(client, 5, start=100) == [429] * 5
            good = await client.get("/001565a1b2c3.cfg", headers={"user-agent": YEALINK_UA})
        assert good.status_code == 200

    async def test_window_slides(self, harness):
        """Once the misses age out of the window, the client is served again."""
        async with harness.client() as client:
            await self.miss(client, 3)
            harness.clock.now += 61
            response = await client.get("/001565a1b2c3.cfg", headers={"user-agent": YEALINK_UA})
        assert response.status_code == 200

    async def test_other_addresses_unaffected(self, harness):
        """Throttling one address doesn't throttle another."""
        async with harness.client() as scanner:
            await self.miss(scanner, 3)
        async with harness.client(("192.0.2.99", 1)) as phone:
            response = await phone.get("/001565a1b2c3.cfg", headers={"user-agent": YEALINK_UA})
        assert response.status_code == 200

    async def test_logged_once_per_window(self, harness):
        """Throttling is logged once per window with address and miss count."""
        with capture_logs() as logs:
            async with harness.client() as client:
                await self.miss(client, 3)
                await self.miss(client, 4, start=10)
                harness.clock.now += 30
                await self.miss(client, 1, start=20)
        throttled = [e for e in logs if e["event"] == "phones.throttled"]
        assert throttled == [
            {
                "event": "phones.throttled",
                "scope": "address",
                "address": "192.0.2.10",
                "misses": 3,
                "log_level": "warning",
            }
        ]

    async def test_forbidden_counts_as_miss(self, harness):
        """403s count towards the limit too."""
        async with harness.client() as client:
            for _ in range(3):
                await client.get("/001565ffffff.cfg", headers={"user-agent": YEALINK_UA})
            response = await client.get("/001565ffffff.cfg", headers={"user-agent": YEALINK_UA})
        assert response.status_code == 429

    def test_tracker_bounded(self):
        """The tracker forgets the least recently missing addresses beyond its cap."""
        tracker = MissTracker(limit=2, window=60, max_tracked=100)
        for i in range(1000):
            tracker.miss(f"10.0.{i // 256}.{i % 256}", 1.0)
        assert len(tracker) == 100


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"authorization": f"Basic {token}", "user-agent": YEALINK_UA}


class TestBasicAuth:
    @pytest.fixture
    def harness(self) -> Harness:
        return Harness(username="phone", password="pa:ss")

    async def test_challenge(self, harness):
        """Without credentials the client is challenged with WWW-Authenticate."""
        async with harness.client() as client:
            response = await client.get("/001565a1b2c3.cfg", headers={"user-agent": YEALINK_UA})
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Basic realm=")
        assert harness.lookups == []

    async def test_right_credentials(self, harness):
        """Right credentials get the file."""
        async with harness.client() as client:
            response = await client.get("/001565a1b2c3.cfg", headers=basic("phone", "pa:ss"))
        assert response.status_code == 200

    async def test_wrong_credentials_count_as_misses(self, harness):
        """Wrong credentials get 401 and, repeated, throttle the client."""
        async with harness.client() as client:
            statuses = [
                (await client.get("/001565a1b2c3.cfg", headers=basic("phone", "nope"))).status_code
                for _ in range(4)
            ]
        assert statuses == [401, 401, 401, 429]

    async def test_bare_challenges_do_not_throttle(self, harness):
        """Phones first asking without credentials are not throttled for it."""
        async with harness.client() as client:
            for _ in range(10):
                await client.get("/001565a1b2c3.cfg", headers={"user-agent": YEALINK_UA})
            response = await client.get("/001565a1b2c3.cfg", headers=basic("phone", "pa:ss"))
        assert response.status_code == 200


def _settings(**extra) -> PhonesSettings:
    return PhonesSettings.from_mapping({"listen": "127.0.0.1:0", **extra})


async def _serve_and_fetch(settings: PhonesSettings, verify) -> httpx.Response:
    harness = Harness()
    stop = trio.Event()
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            addresses = await nursery.start(
                partial(serve_phones, harness.app, settings, shutdown_trigger=stop.wait)
            )
            assert len(addresses) == 1 and "127.0.0.1:" in addresses[0]
            async with httpx.AsyncClient(verify=verify) as client:
                response = await client.get(
                    addresses[0] + "/001565a1b2c3.cfg", headers={"user-agent": YEALINK_UA}
                )
            stop.set()
    return response


class TestRealSocket:
    async def test_serves_over_loopback(self):
        """serve_phones binds 127.0.0.1:0, reports the port, serves a file and shuts down."""
        response = await _serve_and_fetch(_settings(), verify=False)
        assert response.status_code == 200
        assert f"account.1.password = {PASSWORD}" in response.text

    async def test_serves_over_tls(self, tmp_path):
        """With a certificate and key, serve_phones speaks HTTPS."""
        cert, key = self_signed(tmp_path)
        context = ssl.create_default_context(cafile=str(cert))
        response = await _serve_and_fetch(
            _settings(tls_cert=str(cert), tls_key=str(key)), verify=context
        )
        assert response.status_code == 200 and response.url.scheme == "https"


# --- Hardening (issue 8): items 5, 6, 11, 12 ------------------------------------------------


def long_seed_record(mac: str = "001565a1b2c3") -> PhoneRecord:
    """A provisioned phone whose MEDIA item has a turnSeed too long for an RC4 key."""
    seed = "s" * 300
    sysclient = "device-password-0123456789abcdef"
    return PhoneRecord(
        mac=mac,
        code="000000000001",
        hwid="IP-HW-0042",
        usename="zoe",
        cn="Zoe",
        password=PASSWORD,
        domain="example.com",
        dns="pbx.example.com",
        sysclient_password=sysclient,
        state="provisioned",
        revision=3,
        config={
            "PHONE": {"type": "PHONE", "coder": "G722,G711A"},
            "MEDIA": {
                "type": "MEDIA",
                "stunServer": "stun.example.com:3478",
                "turnServer": "turn.example.com:3478",
                "turnUser": "turnuser",
                "turnSeed": seed,
                "turnPassword": "ab" * 16,
            },
            "NTP": {"type": "NTP", "tz": "Europe/Berlin", "ntp1": "ntp.example.com"},
        },
    )


class TestUnusableItems:
    async def test_long_turn_seed_file_served_without_turn(self):
        """A MEDIA item whose TURN password can't be decrypted: 200, no TURN, one warning."""
        directory = PhoneDirectory()
        directory.put(long_seed_record())
        harness = Harness()

        async def lookup(mac: str):
            return directory.data(mac)

        harness.app.lookup = lookup
        with capture_logs() as logs:
            async with harness.client() as client:
                first = await client.get("/001565a1b2c3.cfg", headers={"user-agent": YEALINK_UA})
                second = await client.get("/001565a1b2c3.cfg", headers={"user-agent": YEALINK_UA})
        assert first.status_code == second.status_code == 200
        assert f"account.1.password = {PASSWORD}" in first.text
        assert "stun.example.com" in first.text and "turn.example.com" not in first.text
        warnings = [e for e in logs if e["log_level"] == "warning"]
        assert [(e["event"], e["mac"], e["item"]) for e in warnings] == [
            ("phone.turn_password_undecryptable", "001565a1b2c3", "MEDIA")
        ]

    async def test_item_that_breaks_rendering_is_skipped(self, monkeypatch):
        """An item whose value makes rendering raise is left out, with one warning."""
        real_stun = items.stun

        def stun(config):
            if config.get("MEDIA", {}).get("stunServer") == "boom":
                raise ValueError("odd stunServer")
            return real_stun(config)

        monkeypatch.setattr(items, "stun", stun)
        harness = Harness()
        phone = harness.phones["001565a1b2c3"]
        config = {**phone.config, "MEDIA": {**phone.config["MEDIA"], "stunServer": "boom"}}
        harness.phones["001565a1b2c3"] = attrs.evolve(phone, config=config)
        with capture_logs() as logs:
            async with harness.client() as client:
                responses = [
                    await client.get("/001565a1b2c3.cfg", headers={"user-agent": YEALINK_UA})
                    for _ in range(2)
                ]
        assert [r.status_code for r in responses] == [200, 200]
        assert f"account.1.password = {PASSWORD}" in responses[0].text
        assert "turn.example.com" not in responses[0].text  # the whole MEDIA item is skipped
        skipped = [e for e in logs if e["event"] == "phones.item_skipped"]
        assert [(e["mac"], e["item"]) for e in skipped] == [("001565a1b2c3", "MEDIA")]
        assert "odd stunServer" in skipped[0]["error"]


def broken_templates(tmp_path: Path, text: str = "{{ no_such_value }}\n") -> Path:
    """An operator template directory whose Yealink per-phone template is broken."""
    (tmp_path / "yealink").mkdir(parents=True, exist_ok=True)
    (tmp_path / "yealink" / "phone.cfg.j2").write_text(text)
    return tmp_path


class TestTemplateErrors:
    def test_check_names_file_and_line_of_a_syntax_error(self, tmp_path):
        """Renderer.check refuses a template that doesn't compile, naming file and line."""
        broken_templates(tmp_path, "ok\n{% if %}\n")
        with pytest.raises(TemplateCheckError) as info:
            CheckedRenderer("tls", tmp_path).check()
        assert info.value.template == str(tmp_path / "yealink" / "phone.cfg.j2")
        assert info.value.message.startswith("line 2:")

    def test_check_renders_the_sample_phone(self, tmp_path):
        """A template that compiles but fails on a real phone is refused too."""
        broken_templates(tmp_path)
        with pytest.raises(TemplateCheckError, match="no_such_value") as info:
            CheckedRenderer("tls", tmp_path).check()
        assert info.value.template == str(tmp_path / "yealink" / "phone.cfg.j2")

    def test_check_refuses_a_missing_directory(self, tmp_path):
        """A templates directory that doesn't exist is refused, naming the path."""
        with pytest.raises(TemplateCheckError, match="not a directory"):
            CheckedRenderer("tls", tmp_path / "nope").check()

    def test_packaged_templates_pass(self):
        """The packaged templates pass the check."""
        CheckedRenderer("tls").check()

    async def test_render_error_answers_500_and_logs_once(self, tmp_path):
        """A render failure: 500 each time, one error line naming template, MAC and error."""
        harness = Harness()
        harness.app.renderer = CheckedRenderer("tls", broken_templates(tmp_path), year=2025)
        with capture_logs() as logs:
            async with harness.client() as client:
                statuses = [
                    (
                        await client.get("/001565a1b2c3.cfg", headers={"user-agent": YEALINK_UA})
                    ).status_code
                    for _ in range(3)
                ]
                common = await client.get("/y000000000028.cfg", headers={"user-agent": YEALINK_UA})
        assert statuses == [500, 500, 500] and common.status_code == 200
        failed = [e for e in logs if e["event"] == "phones.render_failed"]
        assert len(failed) == 1
        assert failed[0]["template"] == str(tmp_path / "yealink" / "phone.cfg.j2")
        assert failed[0]["mac"] == "001565a1b2c3" and "no_such_value" in failed[0]["error"]
        assert failed[0]["log_level"] == "error"


class TestSettingsApplyLive:
    async def test_credentials_added_then_rotated(self):
        """New settings apply to the next request: add credentials, then rotate them."""
        harness = Harness()
        path = "/001565a1b2c3.cfg"
        async with harness.client() as client:
            assert (await client.get(path, headers={"user-agent": YEALINK_UA})).status_code == 200
            harness.app.settings = attrs.evolve(harness.settings, username="ph", password="one")
            assert (await client.get(path, headers={"user-agent": YEALINK_UA})).status_code == 401
            assert (await client.get(path, headers=basic("ph", "one"))).status_code == 200
            harness.app.settings = attrs.evolve(harness.settings, username="ph", password="two")
            assert (await client.get(path, headers=basic("ph", "one"))).status_code == 401
            assert (await client.get(path, headers=basic("ph", "two"))).status_code == 200

    async def test_throttle_limit_applies_live(self):
        """A reloaded miss_limit applies to the next miss."""
        harness = Harness()
        async with harness.client() as client:
            harness.app.settings = attrs.evolve(harness.settings, miss_limit=1)
            assert await TestThrottling().miss(client, 2) == [404, 429]


class TestKnownPhonesNeverThrottled:
    async def test_poly_boots_behind_one_address(self):
        """Three Poly boots from one address (8 noise 404s each): every real file is 200."""
        harness = Harness(miss_limit=20)
        agent = {"user-agent": "FileTransport PolycomVVX-VVX_410-UA/5.9.5.0614"}
        noise = ["-phone.cfg", "-web.cfg", "-license.cfg", "-directory.xml", ".cfg.bak"]
        async with harness.client() as client:
            for _boot in range(3):
                for suffix in [*noise, "-app.log", "-boot.log", "-calls.xml"]:
                    await client.get(f"/0004f2a1b2c3{suffix}", headers=agent)
                for path in ("/0004f2a1b2c3.cfg", "/000000000000.cfg", "/0004f2a1b2c3-user.cfg"):
                    response = await client.get(path, headers=agent)
                    assert response.status_code == 200, (_boot, path)

    async def test_known_phone_boot_noise_is_no_miss(self):
        """404s for files named after a known phone's MAC don't count towards throttling."""
        harness = Harness(miss_limit=3)
        agent = {"user-agent": "FileTransport PolycomVVX-VVX_410-UA/5.9.5.0614"}
        async with harness.client() as client:
            for suffix in ["-phone.cfg", "-web.cfg", "-license.cfg", "-directory.xml"] * 3:
                response = await client.get(f"/0004f2a1b2c3{suffix}", headers=agent)
                assert response.status_code == 404
            assert await TestThrottling().miss(client, 4) == [404, 404, 404, 429]

    async def test_rotating_scanner_hits_global_budget(self):
        """A scan from ever new addresses is refused by the global budget; phones still 200."""
        harness = Harness(miss_limit=20, global_miss_burst=10, global_miss_rate=1)
        statuses = []
        for i in range(30):
            async with harness.client((f"198.51.100.{i}", 5000)) as scanner:
                mac = f"001565{i:06x}"
                r = await scanner.get(f"/{mac}.cfg", headers={"user-agent": yealink_ua(mac)})
                statuses.append(r.status_code)
        assert statuses == [404] * 10 + [429] * 20
        async with harness.client(("198.51.100.200", 5000)) as phone:
            response = await phone.get("/001565a1b2c3.cfg", headers={"user-agent": YEALINK_UA})
        assert response.status_code == 200
        harness.clock.now += 5  # the budget refills at 1 miss/s
        async with harness.client(("198.51.100.201", 5000)) as scanner:
            mac = "001565ffff01"
            r = await scanner.get(f"/{mac}.cfg", headers={"user-agent": yealink_ua(mac)})
        assert r.status_code == 404

    async def test_ipv6_prefix_counted_as_one(self):
        """Misses from many addresses of one IPv6 /64 are counted together."""
        harness = Harness(miss_limit=20, prefix_miss_limit=4)
        statuses = []
        for i in range(6):
            async with harness.client((f"2001:db8:1:2::{i + 1:x}", 5000)) as scanner:
                mac = f"001565{i:06x}"
                r = await scanner.get(f"/{mac}.cfg", headers={"user-agent": yealink_ua(mac)})
                statuses.append(r.status_code)
        assert statuses == [404] * 4 + [429] * 2
        async with harness.client(("2001:db8:1:3::1", 5000)) as other:
            mac = "001565ffff01"
            r = await other.get(f"/{mac}.cfg", headers={"user-agent": yealink_ua(mac)})
        assert r.status_code == 404


class TestUserAgentPolicy:
    @pytest.mark.parametrize(
        ("path", "ua"),
        [
            ("/001565a1b2c3.cfg", ""),
            ("/001565a1b2c3.cfg", "curl/8.0"),
            ("/001565a1b2c3.cfg", "Yealink SIP-T46G 28.72.0.1"),
            ("/Grandstream/cfg000b82a1b2c3.xml", ""),
            ("/snomD785-000413A1B2C3.htm", ""),
        ],
    )
    async def test_refused_without_mac_by_default(self, harness, path, ua):
        """A per-phone file of a vendor whose phones send their MAC needs it in the UA."""
        async with harness.client() as client:
            response = await client.get(path, headers={"user-agent": ua})
        assert response.status_code == 403 and PASSWORD not in response.text
        assert harness.fetches == []

    async def test_operator_may_allow_a_vendor(self):
        """anonymous_vendors lifts the rule for that vendor."""
        harness = Harness(anonymous_vendors=["yealink", "poly"])
        async with harness.client() as client:
            response = await client.get("/001565a1b2c3.cfg", headers={"user-agent": ""})
        assert response.status_code == 200

    async def test_poly_served_by_default(self, harness):
        """Poly phones never send their MAC: their files are served by default."""
        async with harness.client() as client:
            response = await client.get(
                "/0004f2a1b2c3-user.cfg",
                headers={"user-agent": "FileTransport PolycomVVX-VVX_410-UA/5.9.5.0614"},
            )
        assert response.status_code == 200


class TestForwardedFor:
    async def throttle_via(self, harness, peer: str, forwarded: list[str]) -> list[int]:
        statuses = []
        for i, client_ip in enumerate(forwarded):
            async with harness.client((peer, 5000)) as client:
                mac = f"001565{i:06x}"
                headers = {"user-agent": yealink_ua(mac), "x-forwarded-for": client_ip}
                statuses.append((await client.get(f"/{mac}.cfg", headers=headers)).status_code)
        return statuses

    async def test_trusted_proxy_header_honoured(self):
        """Behind a trusted proxy, each client named by X-Forwarded-For is counted apart."""
        harness = Harness(trusted_proxies=["127.0.0.0/8"])
        clients = [f"203.0.113.{i}, 127.0.0.2" for i in range(6)]
        assert await self.throttle_via(harness, "127.0.0.1", clients) == [404] * 6
        repeated = ["203.0.113.99"] * 4
        assert await self.throttle_via(harness, "127.0.0.1", repeated) == [404] * 3 + [429]

    async def test_fetch_records_the_forwarded_address(self):
        """The fetch is recorded with the client's address, not the proxy's."""
        harness = Harness(trusted_proxies=["127.0.0.1"])
        async with harness.client(("127.0.0.1", 5000)) as client:
            headers = {"user-agent": YEALINK_UA, "x-forwarded-for": "203.0.113.7"}
            await client.get("/001565a1b2c3.cfg", headers=headers)
        assert harness.fetches[0].address == "203.0.113.7"

    async def test_untrusted_peer_header_ignored(self):
        """From an untrusted peer X-Forwarded-For is ignored: the peer is the client."""
        harness = Harness(trusted_proxies=["127.0.0.1"])
        clients = [f"203.0.113.{i}" for i in range(4)]
        assert await self.throttle_via(harness, "192.0.2.50", clients) == [404] * 3 + [429]


class TestFetchRecording:
    async def test_user_agent_capped(self, harness):
        """The User-Agent stored for a fetch is capped."""
        async with harness.client() as client:
            await client.get("/001565a1b2c3.cfg", headers={"user-agent": YEALINK_UA + " x" * 150})
        assert len(harness.fetches[0].user_agent) == MAX_USER_AGENT

    async def test_recorder_bounded_with_one_warning(self):
        """A full buffer drops records and says so once, with the count; the rest is written."""
        written: list[FetchRecord] = []
        gate = trio.Event()

        async def write(rows):
            await gate.wait()
            written.extend(rows)

        clock = FakeClock()
        recorder = FetchRecorder(write, limit=10, batch=4, clock=clock)
        record = FetchRecord(
            time=0.0, address="a", user_agent="", vendor="v", model=None, firmware=None,
            file="f", mac="001565a1b2c3",
        )  # fmt: skip
        with capture_logs() as logs:
            async with trio.open_nursery() as nursery:
                await nursery.start(recorder.run)
                for _ in range(50):
                    recorder.record(record)
                assert len(recorder) <= 10
                gate.set()
                with trio.fail_after(5):
                    while recorder:
                        await trio.lowlevel.checkpoint()
                nursery.cancel_scope.cancel()
        dropped = [e for e in logs if e["event"] == "phones.fetches_dropped"]
        assert sum(e["dropped"] for e in dropped) == 50 - len(written) == recorder.dropped
        assert len(dropped) <= 2 and 10 <= len(written) <= 14

    async def test_recorder_writes_the_rest_on_cancel(self):
        """Records still buffered when the recorder is cancelled are written."""
        written: list[FetchRecord] = []

        async def write(rows):
            await trio.lowlevel.checkpoint()
            written.extend(rows)

        recorder = FetchRecorder(write)
        record = FetchRecord(
            time=0.0, address="a", user_agent="", vendor="v", model=None, firmware=None,
            file="f", mac="001565a1b2c3",
        )  # fmt: skip
        async with trio.open_nursery() as nursery:
            await nursery.start(recorder.run)
            for _ in range(3):
                recorder.record(record)
            nursery.cancel_scope.cancel()
        assert len(written) == 3

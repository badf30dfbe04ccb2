"""The phone-facing ASGI app in-process, and serve_phones on a real loopback socket."""

from __future__ import annotations

import base64
import ssl
from functools import partial

import httpx
import pytest
import trio
from structlog.testing import capture_logs

from provd.phones import FetchRecord, PhonesApp, PhonesSettings, Renderer, serve_phones
from provd.phones.server import MissTracker

from ..tlsutil import self_signed
from .phones_fixtures import PASSWORD, make_phone

CLIENT = ("192.0.2.10", 40000)
YEALINK_UA = "Yealink SIP-T46G 28.72.0.1 00:15:65:a1:b2:c3"


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
            Renderer("tls", year=2025),
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
        transport = httpx.ASGITransport(self.app, client=address)
        return httpx.AsyncClient(transport=transport, base_url="http://provd.test")


@pytest.fixture
def harness() -> Harness:
    return Harness()


class TestServing:
    @pytest.mark.parametrize(
        ("path", "ua", "needle"),
        [
            ("/001565a1b2c3.cfg", YEALINK_UA, "account.1.password = " + PASSWORD),
            ("/snomD785-000413A1B2C3.htm", "", "<user_pass"),
            ("/Grandstream/cfg000b82a1b2c3.xml", "", "<P34>"),
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
                "/001565ffffff.cfg", headers={"user-agent": "Yealink SIP-T46G 1.2"}
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
                f"/001565{i:06x}.cfg", headers={"user-agent": "Yealink SIP-T46G 1.2"}
            )
            statuses.append(r.status_code)
        return statuses

    async def test_throttled_after_limit_without_lookups(self, harness):
        """Past miss_limit misses a client gets 429 and the store is no longer asked."""
        async with harness.client() as client:
            assert await self.miss(client, 3) == [404, 404, 404]
            lookups = len(harness.lookups)
            assert await self.miss(client, 5, start=100) == [429] * 5
            good = await client.get("/001565a1b2c3.cfg", headers={"user-agent": YEALINK_UA})
        assert good.status_code == 429
        assert len(harness.lookups) == lookups

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
            response = await client.get("/001565a1b2c3.cfg", headers={"user-agent": YEALINK_UA})
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

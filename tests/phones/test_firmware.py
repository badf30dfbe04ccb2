"""Firmware files served from ``phones.firmware_dir`` at ``/firmware/<name>`` (issue 10)."""

from __future__ import annotations

import base64
import os
import re
from functools import partial
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
import trio
from structlog.testing import capture_logs

from provd.phones import PhonesApp, PhonesSettings, Renderer, firmware, identify, serve_phones
from provd.phones.firmware import CHUNK, FirmwareRefused, check_name
from provd.phones.http import Request

from .phones_fixtures import make_phone

CLIENT = ("127.0.0.1", 40000)
ROM = bytes(range(256)) * 1000 + b"tail"  # 256 004 bytes: several chunks


@pytest.fixture
def fw(tmp_path: Path) -> Path:
    """A firmware directory next to a secret file that must never be served."""
    (tmp_path / "secret.txt").write_bytes(b"outside\n")
    root = tmp_path / "fw"
    (root / "gs").mkdir(parents=True)
    (root / "T46U-66.86.0.15.rom").write_bytes(ROM)
    (root / "gs" / "gxp2170fw.bin").write_bytes(b"gs-firmware")
    (root / "empty.bin").write_bytes(b"")
    (root / ".hidden").write_bytes(b"hidden")
    (root / "latest.rom").symlink_to("T46U-66.86.0.15.rom")
    (root / "escape.rom").symlink_to(tmp_path / "secret.txt")
    (root / "escape-dir").symlink_to(tmp_path)
    return root


def make_app(**settings) -> PhonesApp:
    async def lookup(mac):
        return None

    async def record(record):
        return None

    config = PhonesSettings.from_mapping({"miss_limit": 100, **settings})
    return PhonesApp(Renderer("tls", year=2025), lookup, record, config)


async def call(app: PhonesApp, path: str, method: str = "GET", headers=()) -> dict:
    """One request straight into the app with ``path`` exactly as the server decoded it;
    a streamed body is collected write by write, as the server would send it."""
    request = Request(
        method.encode(), path.encode("utf-8", "surrogateescape"), dict(headers), CLIENT[0],
        path=path,
    )  # fmt: skip
    response = await app.respond(request)
    writes: list[bytes] = []

    async def write(data: bytes) -> None:
        writes.append(data)

    complete = True
    if response.streamed:
        if method == "HEAD":
            response.body.file.close()
        else:
            complete = await firmware.stream(response.body, write)
        body = b"".join(writes)
    else:
        body = b"" if method == "HEAD" else response.body
    return {
        "status": response.status,
        "headers": {k.decode(): v.decode() for k, v in response.headers},
        "body": body,
        "writes": writes,
        "complete": complete,
    }


class TestServed:
    async def test_byte_exact_streamed(self, fw):
        """A file arrives byte-exact, with its length and a binary type, in chunks."""
        reply = await call(make_app(firmware_dir=str(fw)), "/firmware/T46U-66.86.0.15.rom")
        assert reply["status"] == 200
        assert reply["body"] == ROM
        assert reply["headers"]["content-length"] == str(len(ROM))
        assert reply["headers"]["content-type"] == "application/octet-stream"
        writes = reply["writes"]
        assert len(writes) > 1 and all(0 < len(w) <= CHUNK for w in writes)
        assert reply["complete"]

    async def test_head(self, fw):
        """HEAD gives the length and no body."""
        reply = await call(make_app(firmware_dir=str(fw)), "/firmware/latest.rom", "HEAD")
        assert reply["status"] == 200
        assert reply["headers"]["content-length"] == str(len(ROM)) and reply["body"] == b""

    async def test_empty_file(self, fw):
        """An empty file is a complete, empty 200."""
        reply = await call(make_app(firmware_dir=str(fw)), "/firmware/empty.bin")
        assert reply["status"] == 200 and reply["body"] == b""
        assert reply["headers"]["content-length"] == "0"
        assert reply["complete"] and reply["writes"] == []

    async def test_subdirectory_and_inner_symlink(self, fw):
        """A sub-directory file (Grandstream P192 + own name) and an inner symlink are served."""
        app = make_app(firmware_dir=str(fw))
        assert (await call(app, "/firmware/gs/gxp2170fw.bin"))["body"] == b"gs-firmware"
        assert (await call(app, "/firmware/latest.rom"))["body"] == ROM


class TestRefused:
    @pytest.mark.parametrize(
        "path",
        [
            "/firmware/../secret.txt",  # traversal
            "/firmware/gs/../../secret.txt",
            "/firmware//etc/passwd",  # absolute
            "/firmware/" + "/tmp/secret.txt",
            "/firmware/escape.rom",  # symlink pointing outside
            "/firmware/escape-dir/secret.txt",  # directory symlink pointing outside
            "/firmware/.hidden",
            "/firmware/gs",  # a directory
            "/firmware/",
            "/firmware/nope.rom",  # unknown
            "/firmware/a\\..\\secret.txt",
            "/firmware/nul\x00.rom",
        ],
    )
    async def test_404(self, fw, path):
        """Traversal, escapes, directories, hidden and unknown files all get a plain 404."""
        reply = await call(make_app(firmware_dir=str(fw)), path)
        assert reply["status"] == 404 and reply["body"] == b"not found\n"

    async def test_absolute_path_to_a_real_file(self, fw):
        """An absolute path to an existing readable file is refused."""
        secret = fw.parent / "secret.txt"
        reply = await call(make_app(firmware_dir=str(fw)), "/firmware/" + str(secret))
        assert reply["status"] == 404 and b"outside" not in reply["body"]

    async def test_escape_target_exists(self, fw):
        """The refused symlink really points at a readable file (the test proves something)."""
        assert (fw / "escape.rom").read_bytes() == b"outside\n"
        assert (fw / ".." / "secret.txt").read_bytes() == b"outside\n"

    async def test_no_firmware_dir(self, fw):
        """Without phones.firmware_dir nothing is served."""
        assert (await call(make_app(), "/firmware/latest.rom"))["status"] == 404

    async def test_missing_dir_logged_for_the_operator(self, tmp_path):
        """An unusable firmware_dir is an error naming the key and path."""
        missing = str(tmp_path / "nowhere")
        with capture_logs() as logs:
            reply = await call(make_app(firmware_dir=missing), "/firmware/a.rom")
        assert reply["status"] == 404
        [entry] = [e for e in logs if e["event"] == "phones.firmware_dir_unusable"]
        assert entry["log_level"] == "error" and entry["path"] == missing
        assert entry["key"] == "phones.firmware_dir"

    async def test_refusals_count_as_misses(self, fw):
        """Probing /firmware/ uses up the client's misses like any other 404; throttling
        only turns a further miss into 429, a file that exists is still served."""
        app = make_app(firmware_dir=str(fw), miss_limit=2)
        for _ in range(2):
            assert (await call(app, "/firmware/../secret.txt"))["status"] == 404
        assert (await call(app, "/firmware/nope.rom"))["status"] == 429
        assert (await call(app, "/firmware/latest.rom"))["status"] == 200

    @pytest.mark.parametrize("name", ["", "/x", "a/../b", "./a", "a//b", ".env", "a\\b"])
    def test_check_name(self, name):
        with pytest.raises(FirmwareRefused):
            check_name(name)


class TestAuth:
    def basic(self, user: str, password: str) -> tuple[bytes, bytes]:
        token = base64.b64encode(f"{user}:{password}".encode())
        return (b"authorization", b"Basic " + token)

    async def test_needs_the_phone_credentials(self, fw):
        """With phones.username set, firmware needs the same Basic credentials as files."""
        app = make_app(firmware_dir=str(fw), username="phone", password="s3cret")
        assert (await call(app, "/firmware/latest.rom"))["status"] == 401
        wrong = await call(app, "/firmware/latest.rom", headers=[self.basic("phone", "x")])
        assert wrong["status"] == 401
        right = await call(app, "/firmware/latest.rom", headers=[self.basic("phone", "s3cret")])
        assert right["status"] == 200 and right["body"] == ROM


async def _raw_get(address: str, target: str, method: str = "GET") -> tuple[int, bytes]:
    """Send ``target`` byte for byte (no client-side normalisation of ``..`` or ``%2e``)."""
    host, port = address.removeprefix("http://").rsplit(":", 1)
    stream = await trio.open_tcp_stream(host, int(port))
    async with stream:
        request = f"{method} {target} HTTP/1.1\r\nHost: provd\r\nConnection: close\r\n\r\n"
        await stream.send_all(request.encode())
        data = b""
        while chunk := await stream.receive_some():
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, body


class TestRealSocket:
    async def test_encoded_traversal_over_http(self, fw):
        """Over a real socket: %2e%2e, encoded slashes and absolute paths get 404; a file 200."""
        app = make_app(firmware_dir=str(fw))
        settings = PhonesSettings.from_mapping({"listen": "127.0.0.1:0"})
        stop = trio.Event()
        results: dict[str, tuple[int, bytes]] = {}
        targets = [
            "/firmware/%2e%2e/secret.txt",
            "/firmware/%2E%2E%2Fsecret.txt",
            "/firmware/..%2fsecret.txt",
            "/firmware/gs/%2e%2e/%2e%2e/secret.txt",
            "/firmware/%2ftmp%2fsecret.txt",
            "/firmware/../secret.txt",
            "/firmware/escape.rom",
            "/firmware/" + quote(str(fw.parent / "secret.txt"), safe=""),
            "/firmware/" + quote(str(fw.parent / "secret.txt")),
        ]
        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                [address] = await nursery.start(
                    partial(serve_phones, app, settings, shutdown_trigger=stop.wait)
                )
                for target in targets:
                    results[target] = await _raw_get(address, target)
                results["ok"] = await _raw_get(address, "/firmware/T46U-66.86.0.15.rom")
                results["head"] = await _raw_get(address, "/firmware/latest.rom", "HEAD")
                async with httpx.AsyncClient() as client:
                    fetched = await client.get(address + "/firmware/gs/gxp2170fw.bin")
                stop.set()
        for target in targets:
            assert results[target][0] == 404, target
            assert b"outside" not in results[target][1]
        assert results["ok"] == (200, ROM)
        assert results["head"] == (200, b"")
        assert fetched.status_code == 200 and fetched.content == b"gs-firmware"
        assert fetched.headers["content-length"] == "11"


class TestRelativeFirmwareUrl:
    BASE = {"provisioning_url": "https://provd.example.com:8091/", "firmware_dir": "/srv/fw"}

    def test_file_name_is_provds_own_url(self):
        """firmware.yealink.T46U = "T46U-....rom" means provd's /firmware/ URL."""
        s = PhonesSettings.from_mapping(
            {**self.BASE, "firmware": {"yealink": {"T46U": "T46U-66.86.0.15.rom"}}}
        )
        url = "https://provd.example.com:8091/firmware/T46U-66.86.0.15.rom"
        assert s.firmware_url("yealink", "T46U") == url

    def test_rendered_into_the_phone_file(self):
        """The rendered Yealink file carries the absolute /firmware/ URL."""
        s = PhonesSettings.from_mapping(
            {**self.BASE, "firmware": {"yealink": {"T46U": "T46U 66.86.rom"}}}
        )
        phone = make_phone()
        ident = identify("/001565a1b2c3.cfg", "Yealink SIP-T46U 66.86.0.15 00:15:65:a1:b2:c3")
        text = Renderer("tls", year=2025, settings=s).render(phone, ident).content.decode()
        assert "https://provd.example.com:8091/firmware/T46U%2066.86.rom" in text

    def test_explain_says_provd_serves_it(self):
        """render --explain tells a provd-served firmware file from an external URL."""
        s = PhonesSettings.from_mapping(
            {**self.BASE, "firmware": {"yealink": {"T46U": "a.rom", "T46S": "https://x/b.rom"}}}
        )
        renderer = Renderer("tls", year=2025, settings=s)
        own = identify("/001565a1b2c3.cfg", "Yealink SIP-T46U 66.86.0.15 00:15:65:a1:b2:c3")
        other = identify("/001565a1b2c3.cfg", "Yealink SIP-T46S 66.86.0.15 00:15:65:a1:b2:c3")
        _, sources = renderer.explain(make_phone(), own, mask_secrets=True)
        assert sources["firmware_url"].endswith("(file in phones.firmware_dir, served by provd)")
        _, sources = renderer.explain(make_phone(), other, mask_secrets=True)
        assert sources["firmware_url"] == "operator config phones.firmware.yealink"

    def test_behind_a_path_prefix(self):
        """A provisioning URL with a path (reverse proxy) keeps it."""
        s = PhonesSettings.from_mapping(
            {
                **self.BASE,
                "provisioning_url": "https://pbx.example.com/provd/",
                "firmware": {"grandstream": {"*": "gs"}},
            }
        )
        assert (
            s.firmware_url("grandstream", "GXP2170") == "https://pbx.example.com/provd/firmware/gs"
        )

    @pytest.mark.parametrize(
        ("data", "message"),
        [
            ({"firmware_dir": "/srv/fw"}, "needs phones.provisioning_url"),
            ({"provisioning_url": "https://p/"}, "needs phones.firmware_dir"),
        ],
    )
    def test_name_needs_dir_and_url(self, data, message):
        """A file name without firmware_dir or provisioning_url is refused, naming the key."""
        with pytest.raises(ValueError, match=r"phones\.firmware\.yealink\.T46U: .*" + message):
            PhonesSettings.from_mapping({**data, "firmware": {"yealink": {"T46U": "a.rom"}}})

    @pytest.mark.parametrize("value", ["../a.rom", "/srv/a.rom", "ftp://x/a.rom", ".a.rom"])
    def test_bad_names_refused(self, value):
        with pytest.raises(ValueError, match=re.escape("phones.firmware.yealink.T46U")):
            PhonesSettings.from_mapping({**self.BASE, "firmware": {"yealink": {"T46U": value}}})

    def test_firmware_dir_must_be_a_string(self):
        with pytest.raises(ValueError, match=re.escape("phones.firmware_dir")):
            PhonesSettings.from_mapping({"firmware_dir": 3})


def test_secret_file_is_readable_by_this_process(fw):
    """Sanity: the refusals above are provd's doing, not file permissions."""
    assert os.access(fw.parent / "secret.txt", os.R_OK)

"""The phone page the actor answers through the Devices passthrough (issue 11.5)."""

from __future__ import annotations

import html

import attrs
import pytest

from provd.actors.state import phone_data
from provd.phones.fetch import FetchRecord
from provd.phones.page import MASK, FilePreview, PageData, file_preview, page, respond
from provd.phones.render import Renderer
from provd.store.records import PhoneRecord

MAC = "805ec0aa0001"
SIP_PASSWORD = "Sip-Secret-<&>-91"
DEVICE_PASSWORD = "d" * 32
TURN = "Turn-Secret-77"
NOW = 1_790_000_000.0

RECORD = PhoneRecord(
    mac=MAC,
    code="123",
    hwid="hw-alice",
    usename="alice",
    cn='Alice <script>alert("x")</script>',
    password=SIP_PASSWORD,
    domain="example.com",
    dns="pbx.example.com",
    sysclient_password=DEVICE_PASSWORD,
    admin_password="Admin-Pwd-55",
    web_password="Web-Pwd-66",
    state="provisioned",
    online=True,
    revision=4,
    created=NOW - 7200,
    updated=NOW - 60,
    config={
        "MEDIA": {"type": "MEDIA", "turnServer": "turn.example.com", "turnPassword": TURN},
        "NTP": {"type": "NTP", "tz": "Europe/Berlin", "ntp1": "ntp.example.com"},
    },
)
FETCH = FetchRecord(
    time=NOW - 120,
    address="127.0.0.1",
    user_agent="Yealink SIP-T46S 66.86.0.15 80:5e:c0:aa:00:01",
    vendor="yealink",
    model="T46S",
    firmware="66.86.0.15",
    file=f"{MAC}.cfg",
    mac=MAC,
)


def data(record=RECORD, fetches=(FETCH,), file=None) -> PageData:
    if file is None:
        file = file_preview(Renderer(), phone_data(record), record, fetches[0] if fetches else None)
    return PageData(mac=MAC, record=record, fetches=tuple(fetches), file=file, now=NOW)


def get(path: str = "/", method: str = "GET") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: device\r\n\r\n".encode()


def split(response: bytes) -> tuple[str, dict[str, str], bytes]:
    head, _, body = response.partition(b"\r\n\r\n")
    status, *lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return status, headers, body


class TestHttp:
    def test_get_answers_the_html_page_with_its_length(self):
        """GET / is a complete HTML response framed by Content-Length."""
        status, headers, body = split(respond(get(), data()))
        assert status.startswith("HTTP/1.1 200")
        assert headers["content-type"] == "text/html; charset=utf-8"
        assert int(headers["content-length"]) == len(body)
        assert body.startswith(b"<!DOCTYPE html>") and body.endswith(b"</html>")
        assert "default-src 'none'" in headers["content-security-policy"]

    def test_head_has_the_headers_but_no_body(self):
        """HEAD: same status and length, no body."""
        _, get_headers, _ = split(respond(get(), data()))
        status, headers, body = split(respond(get(method="HEAD"), data()))
        assert status.startswith("HTTP/1.1 200") and body == b""
        assert headers["content-length"] == get_headers["content-length"]

    @pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
    def test_other_methods_405(self, method):
        """Only GET and HEAD: anything else is 405 with Allow."""
        status, headers, _ = split(respond(get(method=method), data()))
        assert status.startswith("HTTP/1.1 405") and headers["allow"] == "GET, HEAD"

    def test_unknown_path_404_and_garbage_400(self):
        """An unknown path is 404; bytes h11 cannot parse as a request are 400."""
        assert split(respond(get("/admin.xml"), data()))[0].startswith("HTTP/1.1 404")
        assert respond(b"\x00\x01garbage\r\n\r\n", data()).startswith(b"HTTP/1.1 400")

    def test_file_subpage_is_the_masked_file_as_text(self):
        """/file: the file the phone would get, plain text, no secret in it."""
        status, headers, body = split(respond(get("/file?x=1"), data()))
        assert status.startswith("HTTP/1.1 200")
        assert headers["content-type"] == "text/plain; charset=utf-8"
        text = body.decode()
        assert "account.1.user_name = alice" in text
        assert MASK in text and SIP_PASSWORD not in text


class TestContent:
    def test_shows_phone_user_lifecycle_fetches_items_and_file(self):
        """Vendor, model, firmware (from the fetch), user, state with times, online, the
        fetch (time, address, file), the items and the file are all on the page."""
        text = page(data())
        for expected in (
            "Yealink",
            "T46S",
            "66.86.0.15",
            "alice@example.com",
            "provisioned",
            "online",
            "127.0.0.1",
            f"{MAC}.cfg",
            "2 min ago",
            "turn.example.com",
            "Europe/Berlin",
            "account.1.user_name = alice",
        ):
            assert expected in text, expected

    def test_every_value_is_escaped(self):
        """A display name with markup is shown as text, never as markup."""
        text = page(data())
        assert "<script>" not in text
        assert html.escape('Alice <script>alert("x")</script>') in text

    def test_no_secret_anywhere_in_the_response(self):
        """SIP, device, admin, web and TURN passwords appear nowhere, raw or escaped, even
        when one sneaks into a displayed value (here the display name)."""
        record = attrs.evolve(RECORD, cn=f"Alice {DEVICE_PASSWORD}")
        for path in ("/", "/file"):
            body = respond(get(path), data(record)).decode()
            for secret in (SIP_PASSWORD, DEVICE_PASSWORD, "Admin-Pwd-55", "Web-Pwd-66", TURN):
                assert secret not in body and html.escape(secret) not in body, (path, secret)
        assert MASK in respond(get(), data(record)).decode()

    def test_lifecycle_with_registration_shown(self):
        """The phone's lifecycle (issue 11.1: state, step times, registration address,
        last error, the not-registered flag) is rendered from any object with those
        attributes (read with defaults, as the registration checker keeps them)."""

        @attrs.frozen(kw_only=True)
        class Lifecycle:  # the shape of provd.store.records.Lifecycle (issue 11.1)
            mac: str
            state: str = "pending"
            since: float = 0.0
            provisioned_at: float = 0.0
            fetched_at: float = 0.0
            registered_at: float = 0.0
            checked_at: float = 0.0
            addr: str = ""
            error: str = ""
            warned: bool = False

        life = Lifecycle(
            mac=MAC,
            state="registered",
            since=NOW - 30,
            provisioned_at=NOW - 3600,
            fetched_at=NOW - 120,
            registered_at=NOW - 30,
            checked_at=NOW - 5,
            addr="192.0.2.10:5061",
            error="GetRegs timed out <once>",
        )
        text = page(attrs.evolve(data(), lifecycle=life))
        assert '<span class="state s-registered" id="state">registered</span>' in text
        assert "192.0.2.10:5061" in text and "registration address" in text
        assert "30 s ago" in text and "60 min ago" in text and "5 s ago" in text
        assert "GetRegs timed out &lt;once&gt;" in text
        assert "not registered in time" not in text
        warned = page(attrs.evolve(data(), lifecycle=attrs.evolve(life, warned=True)))
        assert "not registered in time" in warned

    def test_registration_fields_on_the_record_also_shown(self):
        """Without a lifecycle object, fields of that name on the record are shown."""

        @attrs.frozen(kw_only=True)
        class Registered(PhoneRecord):
            registered_at: float = 0.0
            registration_address: str = ""

        record = Registered(
            **attrs.asdict(RECORD, recurse=False),
            registered_at=NOW - 30,
            registration_address="192.0.2.11:5060",
        )
        text = page(data(record=record))
        assert "192.0.2.11:5060" in text and "30 s ago" in text

    def test_before_any_fetch_and_unknown_phone(self):
        """No fetch yet: the OUI names the vendor, the model waits; an unknown MAC says so."""
        text = page(data(fetches=(), file=FilePreview(error="not served yet")))
        assert "Yealink" in text and "not known until it fetches" in text
        assert "No fetch yet" in text and "not served yet" in text
        gone = page(PageData(mac=MAC, record=None, now=NOW))
        assert "does not know the phone 80:5e:c0:aa:00:01" in gone

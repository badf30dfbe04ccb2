"""Rendering: golden files per vendor and kind, parsed back; masking; the cache."""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from provd.phones import Identification, Kind, Renderer, Vendor, identify
from provd.phones.account import MASK

from .phones_fixtures import DISPLAY, PASSWORD, TURN_PASSWORD, make_phone

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("PROVD_UPDATE_GOLDEN") == "1"

# (golden file, path requested, User-Agent)
CASES = [
    ("yealink_common.cfg", "/y000000000028.cfg", "Yealink SIP-T46G 28.72.0.1"),
    ("yealink_phone.cfg", "/001565a1b2c3.cfg", "Yealink SIP-T46G 28.72.0.1 00:15:65:a1:b2:c3"),
    ("snom_common.htm", "/snomD785.htm", ""),
    ("snom_phone.xml", "/snomD785-001565A1B2C3.htm", ""),
    ("grandstream_phone.xml", "/Grandstream/cfg001565a1b2c3.xml", ""),
    ("fanvil_common.cfg", "/f0X4hw1.100.cfg", ""),
    ("fanvil_phone.cfg", "/fanvil/001565a1b2c3.cfg", ""),
    ("poly_master.cfg", "/000000000000.cfg", ""),
    ("poly_common.cfg", "/common.cfg", ""),
    ("poly_user.cfg", "/001565a1b2c3-user.cfg", ""),
    ("gigaset_phone.xml", "/gigaset/001565A1B2C3.xml", ""),
]


def render(renderer: Renderer, path: str, ua: str = "", **phone_overrides) -> str:
    ident = identify(path, ua)
    phone = make_phone(**phone_overrides) if ident.per_phone else None
    return renderer.render(phone, ident).content.decode("utf-8")


def parse_xml(data: bytes) -> ET.Element:
    """Parse our own rendered output (trusted, so the stdlib parser is fine)."""
    return ET.fromstring(data)  # noqa: S314


def parse_lines(text: str, sep: str) -> dict[str, str]:
    """Yealink ``key = value`` / Fanvil ``Key   :value`` lines into a dict (last wins)."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith(("#", "<")) or sep not in line:
            continue
        key, _, value = line.partition(sep)
        out[key.strip()] = value.strip() if sep == "=" else value
    return out


class TestGolden:
    @pytest.mark.parametrize(("golden", "path", "ua"), CASES)
    def test_matches_golden_file(self, renderer, golden, path, ua):
        """Each file renders exactly as its golden file (PROVD_UPDATE_GOLDEN=1 rewrites)."""
        text = render(renderer, path, ua)
        target = GOLDEN / golden
        if UPDATE:
            target.write_text(text, encoding="utf-8")
        assert text == target.read_text(encoding="utf-8")

    @pytest.mark.parametrize(
        ("golden", "path", "ua"),
        [c for c in CASES if c[0].endswith((".xml", ".htm"))]
        + [c for c in CASES if c[0].startswith("poly_")],
    )
    def test_xml_parses(self, renderer, golden, path, ua):
        """Every XML output is well-formed."""
        parse_xml(render(renderer, path, ua).encode())


class TestParsedValues:
    def test_yealink(self, renderer):
        """Yealink's file carries the account, codecs, NTP and Berlin's DST rule."""
        cfg = parse_lines(render(renderer, "/001565a1b2c3.cfg", "Yealink SIP-T46G 1.2.3"), "=")
        assert cfg["account.1.outbound_proxy.1.address"] == "pbx.example.com"
        assert cfg["account.1.sip_server.1.address"] == "example.com"
        assert cfg["account.1.sip_server.1.port"] == "5061"
        assert cfg["account.1.sip_server.1.transport_type"] == "2"
        assert cfg["account.1.user_name"] == "zoe"
        assert cfg["account.1.auth_name"] == "IP-HW-0042"
        assert cfg["account.1.password"] == PASSWORD
        assert cfg["account.1.display_name"] == DISPLAY
        assert cfg["account.1.codec.g722.priority"] == "1"
        assert cfg["account.1.codec.g729.priority"] == "5"
        assert cfg["account.1.codec.g723_53.enable"] == "0"
        assert cfg["local_time.ntp_server1"] == "ntp1.example.com"
        assert cfg["local_time.start_time"] == "3/5/7/2"
        assert cfg["static.sip.nat_turn.password"] == TURN_PASSWORD

    def test_fanvil(self, renderer):
        """Fanvil's file carries the account, TLS code 3, codecs and the time zone."""
        cfg = parse_lines(render(renderer, "/fanvil/001565a1b2c3.cfg"), ":")
        assert cfg["SIP1 Register Addr"] == "pbx.example.com"
        assert cfg["SIP1 Register Port"] == "5061"
        assert cfg["SIP1 Transport"] == "3"
        assert cfg["SIP1 Phone Number"] == "zoe"
        assert cfg["SIP1 Register User"] == "IP-HW-0042"
        assert cfg["SIP1 Register Pswd"] == PASSWORD
        assert cfg["SIP1 Display Name"] == DISPLAY
        assert cfg["SIP1 VoiceCodecMap"] == "G722,opus,PCMA,PCMU,G729"
        assert cfg["SNTP Server"] == "ntp1.example.com"
        assert (cfg["Time Zone"], cfg["DST Start Mon"]) == ("4", "3")

    def test_snom(self, renderer):
        """Snom's XML carries the account, codec list, NTP and DST."""
        root = parse_xml(render(renderer, "/snomD785-001565A1B2C3.htm").encode())
        s = {el.tag: el.text or "" for el in root.iter()}
        assert s["user_outbound"] == "pbx.example.com:5061;transport=tls"
        assert s["user_host"] == "example.com"
        assert (s["user_name"], s["user_pname"], s["user_pass"]) == ("zoe", "IP-HW-0042", PASSWORD)
        assert s["user_realname"] == DISPLAY
        assert s["codec_priority_list"].startswith("g722,opus,pcma,pcmu,g729")
        assert s["ntp_server"] == "ntp1.example.com ntp2.example.com"
        assert s["dst"] == "3600 03.05.07 02:00:00 10.05.07 03:00:00"

    def test_grandstream(self, renderer):
        """Grandstream's P-values carry the account, codecs and POSIX time zone."""
        root = parse_xml(render(renderer, "/cfg001565a1b2c3.xml").encode())
        p = {el.tag: el.text or "" for el in root.find("config")}
        assert (p["P47"], p["P48"], p["P130"]) == ("example.com", "pbx.example.com:5061", "2")
        assert (p["P35"], p["P36"], p["P34"], p["P3"]) == ("zoe", "IP-HW-0042", PASSWORD, DISPLAY)
        slots = [p[n] for n in ("P57", "P58", "P59", "P60", "P61", "P62", "P46", "P98")]
        assert slots == ["9", "123", "8", "0", "18", "18", "18", "18"]
        assert p["P30"] == "ntp1.example.com"
        assert p["P64"] == "CET-1CEST-2,M3.5.0/02:00:00,M10.5.0/03:00:00"

    def test_poly(self, renderer):
        """Poly's attributes carry the account, codec priorities and gmtOffset."""
        root = parse_xml(render(renderer, "/001565a1b2c3-user.cfg").encode())
        attrs = {k: v for el in root.iter() for k, v in el.attrib.items()}
        assert attrs["reg.1.server.1.address"] == "pbx.example.com"
        assert (attrs["reg.1.server.1.port"], attrs["reg.1.server.1.transport"]) == ("5061", "TLS")
        assert attrs["reg.1.address"] == "zoe@example.com"
        assert attrs["reg.1.auth.userId"] == "IP-HW-0042"
        assert attrs["reg.1.auth.password"] == PASSWORD
        assert attrs["reg.1.displayName"] == DISPLAY
        assert attrs["voice.codecPref.G722"] == "1"
        assert attrs["tcpIpApp.sntp.address"] == "ntp1.example.com"
        assert attrs["tcpIpApp.sntp.gmtOffset"] == "3600"
        assert attrs["tcpIpApp.ice.password"] == TURN_PASSWORD

    def test_gigaset(self, renderer):
        """Gigaset's quoted values carry the account."""
        root = parse_xml(render(renderer, "/gigaset/001565A1B2C3.xml").encode())
        items = {el.get("ID"): el.get("value") for el in root.iter("SYMB_ITEM")}
        assert items["BS_IP_Data1.aucS_SIP_PASSWORD"] == f'"{PASSWORD}"'
        assert items["BS_IP_Data1.aucS_SIP_SERVER"] == '"pbx.example.com"'
        assert items["BS_IP_Data3.aucS_SIP_LOGIN_ID"] == '"IP-HW-0042"'
        assert items["BS_IP_Data1.aucS_SIP_DISPLAYNAME"] == f'"{DISPLAY}"'

    def test_tcp_transport(self):
        """With TCP chosen, Yealink gets port 5060 and transport 1."""
        cfg = parse_lines(
            render(Renderer("tcp", year=2025), "/001565a1b2c3.cfg", "Yealink SIP-T46G 1.2"), "="
        )
        assert (
            cfg["account.1.sip_server.1.port"],
            cfg["account.1.sip_server.1.transport_type"],
        ) == (
            "5060",
            "1",
        )

    def test_newline_cannot_inject_a_line(self, renderer):
        """A display name with a newline can't add a setting to a line-based file."""
        text = render(
            renderer,
            "/001565a1b2c3.cfg",
            "Yealink SIP-T46G 1.2",
            cn="Eve\naccount.1.password = pwned",
        )
        assert not re.search(r"^account\.1\.password = pwned", text, re.M)

    def test_missing_items_render(self, renderer):
        """A phone without NTP, MEDIA or coder items still renders, in UTC with defaults."""
        cfg = parse_lines(
            render(renderer, "/001565a1b2c3.cfg", "Yealink SIP-T46G 1.2", config={}), "="
        )
        assert cfg["local_time.time_zone"] == "0"
        assert cfg["account.1.codec.g722.priority"] == "1"
        assert cfg["static.sip.nat_turn.enable"] == "0"


class TestMasking:
    @pytest.mark.parametrize(("golden", "path", "ua"), [c for c in CASES if "common" not in c[0]])
    def test_no_secret_left(self, renderer, golden, path, ua):
        """With mask_secrets no SIP or TURN password remains in any file."""
        ident = identify(path, ua)
        text = renderer.render(make_phone(), ident, mask_secrets=True).content.decode()
        for secret in ("s3<", "s3&lt;", "turn<", "turn&lt;"):
            assert secret not in text

    def test_mask_shown(self, renderer):
        """The mask appears where the password was."""
        ident = identify("/001565a1b2c3.cfg", "Yealink SIP-T46G 1.2")
        text = renderer.render(make_phone(), ident, mask_secrets=True).content.decode()
        assert f"account.1.password = {MASK}" in text

    def test_per_phone_file_needs_a_phone(self, renderer):
        """Rendering a per-phone file without PhoneData is a caller error."""
        with pytest.raises(ValueError, match="per-phone"):
            renderer.render(None, identify("/001565a1b2c3.cfg", "Yealink SIP-T46G 1.2"))


class TestCache:
    @pytest.fixture
    def spied(self, renderer, monkeypatch):
        calls = []
        original = renderer._render_uncached

        def spy(env, name, context):
            calls.append(name)
            return original(env, name, context)

        monkeypatch.setattr(renderer, "_render_uncached", spy)
        return renderer, calls

    IDENT = Identification(Vendor.YEALINK, Kind.PHONE, "001565a1b2c3.cfg", "001565a1b2c3", True)

    def test_same_revision_is_cached(self, spied):
        """A second render of the same phone and revision doesn't render again."""
        renderer, calls = spied
        first = renderer.render(make_phone(), self.IDENT)
        second = renderer.render(make_phone(), self.IDENT)
        assert first == second and len(calls) == 1

    def test_new_revision_renders(self, spied):
        """A new revision renders again, with the new data."""
        renderer, calls = spied
        renderer.render(make_phone(revision=1), self.IDENT)
        out = renderer.render(make_phone(revision=2, password="new"), self.IDENT)
        assert len(calls) == 2 and b"account.1.password = new" in out.content

    def test_cache_is_bounded(self, phone):
        """The cache keeps at most cache_size files."""
        renderer = Renderer(year=2025, cache_size=3)
        for rev in range(10):
            renderer.render(make_phone(revision=rev), self.IDENT)
        assert len(renderer._cache) == 3

    def test_reload_picks_up_edited_override(self, tmp_path):
        """After reload() an edited override template is used; before it, the cache answers."""
        (tmp_path / "yealink").mkdir()
        template = tmp_path / "yealink" / "phone.cfg.j2"
        template.write_text("one {{ account.user }}\n")
        renderer = Renderer(templates=tmp_path, year=2025)
        assert renderer.render(make_phone(), self.IDENT).content == b"one zoe\n"
        template.write_text("two {{ account.user }}\n")
        assert renderer.render(make_phone(), self.IDENT).content == b"one zoe\n"
        renderer.reload()
        assert renderer.render(make_phone(), self.IDENT).content == b"two zoe\n"

    def test_override_falls_back_to_packaged(self, tmp_path):
        """Templates missing from the override directory come from the package."""
        renderer = Renderer(templates=tmp_path, year=2025)
        assert b"account.1.user_name = zoe" in renderer.render(make_phone(), self.IDENT).content

"""Issue 10, "Found" items 1-7 and 9: each test failed on the code before the fix."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from structlog.testing import capture_logs

from provd.phones import Renderer, identify, parse_user_agent
from provd.phones.settings import PhonesSettings
from tests.phones.phones_fixtures import make_phone

GXP17 = "Grandstream Model HW GXP1780 SW 1.0.1.133 DevId 001565a1b2c3"
GXP21 = "Grandstream Model HW GXP2170 SW 1.0.11.3 DevId 001565a1b2c3"
N670 = "Gigaset N670 IP PRO/83.V2.49.1+build.1a2b3c4;001565A1B2C3"
N720 = "Gigaset N720 DM PRO/70.108.00.000.000;001565A1B2C3"
N510 = "Gigaset N510 IP PRO/42.250.00.000.000;001565A1B2C3"

#: P64's fixed values we know of, plus "customize" (GXP17xx template).
P64_FIXED = {"CET-1CEST-2,M3.5.0/02:00:00,M10.5.0/03:00:00", "customize"}


def render(path: str, ua: str = "", renderer: Renderer | None = None, **overrides) -> str:
    renderer = renderer or Renderer("tls", year=2025)
    return renderer.render(make_phone(**overrides), identify(path, ua)).content.decode()


def xml(text: str) -> ET.Element:
    return ET.fromstring(text.encode())  # noqa: S314 - our own output


def config(zone: str = "Europe/Berlin", **media) -> dict:
    base = make_phone().config
    return {
        **base,
        "NTP": {**base["NTP"], "tz": zone},
        "MEDIA": {**base["MEDIA"], **media},
    }


def grandstream(ua: str = GXP21, **overrides) -> dict[str, str]:
    root = xml(render("/cfg001565a1b2c3.xml", ua, **overrides))
    return {el.tag: el.text or "" for el in root.find("config")}


def lines(text: str, sep: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        if sep in line and not line.startswith(("#", "<")):
            key, _, value = line.partition(sep)
            out[key.strip()] = value.strip()
    return out


class TestGrandstream:
    @pytest.mark.parametrize("zone", ["America/New_York", "Asia/Kolkata", "Australia/Sydney"])
    def test_p64_only_fixed_values_custom_rule_in_p246(self, zone):
        """A zone outside P64's list gets P64=customize and its POSIX rule in P246."""
        p = grandstream(config=config(zone))
        assert p["P64"] in P64_FIXED
        assert p["P64"] == "customize" and p["P246"]

    def test_dhcp_cannot_override_zone(self):
        """P143=0 keeps DHCP option 2 from overriding the zone."""
        assert grandstream()["P143"] == "0"

    @pytest.mark.parametrize(("ua", "opus"), [(GXP17, "125"), (GXP21, "123")])
    def test_opus_code_per_model_family(self, ua, opus):
        """Opus gets the vocoder code of the model family's own template."""
        assert grandstream(ua)["P58"] == opus

    def test_eight_codec_slots(self):
        """P46 and P98 are filled too, so no default codec comes back."""
        p = grandstream(config={"PHONE": {"coder": "G711A"}})
        slots = [p[n] for n in ("P57", "P58", "P59", "P60", "P61", "P62", "P46", "P98")]
        assert slots == ["8"] * 8

    def test_stun_sets_nat_traversal(self):
        """STUN comes with P52=1 (NAT traversal on)."""
        p = grandstream()
        assert (p["P52"], p["P76"]) == ("1", "stun.example.com:3478")

    def test_strict_tls_profile_verifies_certificates(self):
        """TLS profile "strict" switches certificate checks on."""
        assert (grandstream()["P2311"], grandstream()["P2367"]) == ("1", "1")

    def test_srtp_with_tls(self):
        """Over TLS with a strict profile SRTP is forced (P183=2)."""
        assert grandstream()["P183"] == "2"


class TestSnom:
    def test_timezone_set_with_the_rule(self):
        """Berlin gets Snom's GER+1 code, consistent with utc_offset/dst."""
        root = xml(render("/snomD785-001565A1B2C3.htm"))
        s = {el.tag: el.text or "" for el in root.iter()}
        assert s["timezone"] == "GER+1" and s["utc_offset"] == "3600"

    def test_timezone_explicitly_empty_without_a_code(self):
        """A zone without a Snom code gets an empty timezone so utc_offset/dst apply."""
        root = xml(render("/snomD785-001565A1B2C3.htm", config=config("Asia/Kolkata")))
        el = root.find("phone-settings/timezone")
        assert el is not None and (el.text or "") == "" and el.get("perm") == "R"


class TestYealink:
    def test_time_zone_name_is_yealinks_own(self):
        """Berlin is Yealink's "Germany(Berlin)", never the IANA name."""
        cfg = lines(render("/001565a1b2c3.cfg", "Yealink SIP-T46S 66.86.0.15"), "=")
        assert cfg["local_time.time_zone_name"] == "Germany(Berlin)"

    def test_no_iana_name_for_unlisted_zone(self):
        """A zone without a Yealink name gets none (the offset and rule still apply)."""
        cfg = lines(
            render("/001565a1b2c3.cfg", "Yealink SIP-T46S 1.2", config=config("Asia/Kolkata")), "="
        )
        assert "local_time.time_zone_name" not in cfg
        assert cfg["local_time.time_zone"] == "+5:30"


class TestPoly:
    def attrs(self, renderer: Renderer | None = None) -> dict[str, str]:
        root = xml(render("/001565a1b2c3-user.cfg", renderer=renderer))
        return {k: v for el in root.iter() for k, v in el.attrib.items()}

    def test_ntp_overrides_dhcp(self):
        """NTP server and offset override DHCP."""
        a = self.attrs()
        assert a["tcpIpApp.sntp.address.overrideDHCP"] == "1"
        assert a["tcpIpApp.sntp.gmtOffset.overrideDHCP"] == "1"

    def test_ice_enabled_host_and_port_apart(self):
        """ICE is on, and the STUN/TURN hosts carry no port (ports are separate items)."""
        a = self.attrs()
        assert a["tcpIpApp.ice.mode"] == "Standard"
        assert (a["tcpIpApp.ice.stun.server"], a["tcpIpApp.ice.stun.udpPort"]) == (
            "stun.example.com",
            "3478",
        )
        assert (a["tcpIpApp.ice.turn.server"], a["tcpIpApp.ice.turn.udpPort"]) == (
            "turn.example.com",
            "3479",
        )

    def test_operator_ca_rolled_out(self, tmp_path):
        """The operator's CA PEM lands in the phone's trust store, line breaks intact."""
        pem = "-----BEGIN CERTIFICATE-----\nMIIBxTCCAW+g\n-----END CERTIFICATE-----\n"
        (tmp_path / "ca.pem").write_text(pem)
        settings = PhonesSettings(ca_file=str(tmp_path / "ca.pem"))
        a = self.attrs(Renderer("tls", year=2025, settings=settings))
        assert a["sec.TLS.customCaCert.1"] == pem.strip()


class TestFanvil:
    def test_nat_type_for_2x_firmware(self):
        """2.x files use "SIP1 NAT Type", not 1.x's "SIP1 Use Stun"."""
        text = render("/fanvil/001565a1b2c3.cfg")
        assert "SIP1 Use Stun" not in text
        assert lines(text, ":")["SIP1 NAT Type"] == "1"

    @pytest.mark.parametrize(
        "name", ["F0000X600000.cfg", "F0V5UV200000.cfg", "fanvil_x4u_v2_hwv2_0.txt"]
    )
    def test_model_common_names_served(self, name):
        """The model-common names real Fanvil phones ask for are served."""
        ident = identify(f"/{name}", "Fanvil X4U 2.12.4 0c383e000001")
        out = Renderer("tls", year=2025).render(None, ident)
        assert out.content.startswith(b"<<VOIP CONFIG FILE>>")

    @pytest.mark.parametrize(("zone", "hour"), [("Europe/Berlin", "3"), ("America/New_York", "2")])
    def test_autumn_dst_hour_is_the_wall_clock_before_the_change(self, zone, hour):
        """ "DST End Hour" is the local (summer) hour at which clocks go back."""
        cfg = lines(render("/fanvil/001565a1b2c3.cfg", config=config(zone)), ":")
        assert cfg["DST End Hour"] == hour


class TestGigaset:
    def test_n670_gets_the_nx70_format(self):
        """N670 gets <provisioning> with TLS transport, active account, zone and codecs."""
        root = xml(render("/gigaset/001565a1b2c3.xml", N670))
        assert root.tag == "provisioning"
        p = {el.get("name"): el.get("value") for el in root.iter("param")}
        assert p["SipProvider.0.TransportProtocol"] == "3"
        assert p["SipAccount.00000.Active"] == "1"
        assert p["DmGlobal.0.TimeZone"] == "Europe/Berlin"
        assert p["SipProvider.0.AudioCodecs"] == "G722,G711A,G711U,G729"

    def test_n720_gets_its_own_items(self):
        """N720 gets BS_VOIP_Data items with the account active, zone code and vocoders."""
        root = xml(render("/gigaset/001565A1B2C3.xml", N720))
        items = {el.get("ID"): el.get("value") for el in root.iter("SYMB_ITEM")}
        assert items["BS_VOIP_Data.astVoipAccounts[0].ucB_SIP_ACCOUNT_IS_ACTIVE_1"] == "1"
        assert items["BS_IP_Data.uiI_TIME_TIMEZONE"] == "0x1b"
        vocoder = "BS_VOIP_Data.astVoipAccounts[0].aucI_SIP_PREFERRED_VOCODER[%]"
        assert items[vocoder] == "0x05,0x01,0x00,0x03,0xff"

    def test_n510_has_active_flag_zone_and_codecs(self):
        """N510 gets the account-active flag, time zone code and vocoder list."""
        root = xml(render("/gigaset/001565A1B2C3.xml", N510))
        items = {el.get("ID"): el.get("value") for el in root.iter("SYMB_ITEM")}
        assert items["BS_IP_Data1.ucB_SIP_ACCOUNT_IS_ACTIVE_1"] == "0x1"
        assert items["BS_IP_Data1.uiI_TIME_TIMEZONE"] == "0x1b"
        assert items["BS_IP_Data1.ucI_SIP_PREFERRED_VOCODER"] == "0x05,0x01,0x00,0x03,0xff"


class TestTurnTls:
    def test_turns_keeps_tls_and_its_port(self):
        """A turns: URL stays TLS TURN with default port 5349."""
        from provd.phones import items

        turn = items.turn({"MEDIA": {"turnServer": "turns:turn.example.com"}})
        assert turn is not None and turn.tls and turn.server.port == 5349

    def test_no_silent_plain_turn_downgrade(self):
        """A vendor without TLS TURN gets no TURN at all, and a warning says so."""
        cfg_ = config(turnServer="turns:turn.example.com:5349")
        with capture_logs() as logs:
            text = render("/001565a1b2c3.cfg", "Yealink SIP-T46S 1.2", config=cfg_)
        assert "static.sip.nat_turn.enable = 0" in text
        assert "turn.example.com" not in text
        assert any(e["event"] == "phones.turns_unsupported" for e in logs)


class TestIdentification:
    @pytest.mark.parametrize(
        ("ua", "model", "firmware"),
        [
            ("N720-DM-PRO/70.040.00.000.000", "N720 DM PRO", "70.040.00.000.000"),
            ("N510 IP PRO/42.245.00.000.000", "N510 IP PRO", "42.245.00.000.000"),
            ("Yealink SIP VP59 91.283.0.35 80:5e:c0:7a:11:22", "VP59", "91.283.0.35"),
        ],
    )
    def test_user_agents_parse(self, ua, model, firmware):
        """Brandless Gigaset and the Yealink VP59 User-Agents give model and firmware."""
        info = parse_user_agent(ua)
        assert info is not None
        assert (info.model, info.firmware) == (model, firmware)

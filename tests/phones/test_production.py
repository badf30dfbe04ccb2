"""Issue 10 item 8: the production values every vendor's file carries, and their sources."""

from __future__ import annotations

import re
import sqlite3
import xml.etree.ElementTree as ET

import pytest
import sqlite_utils

from provd.actors.state import phone_data
from provd.cli.main import main
from provd.phones import Renderer, identify
from provd.phones.account import MASK
from provd.phones.settings import PhonesSettings
from provd.store import schema
from provd.store.database import Database

from .phones_fixtures import PASSWORD, make_phone

ADMIN = "Adm1n<&pw"

#: One per vendor family: (name, path, User-Agent).
FAMILIES = [
    ("yealink", "/001565a1b2c3.cfg", "Yealink SIP-T46S 66.86.0.15 00:15:65:a1:b2:c3"),
    ("snom", "/snomD785-001565A1B2C3.htm", ""),
    ("grandstream-gxp21xx", "/cfg001565a1b2c3.xml", "Grandstream Model HW GXP2170 SW 1.0.11.3"),
    ("grandstream-gxp17xx", "/cfg001565a1b2c3.xml", "Grandstream Model HW GXP1780 SW 1.0.1.133"),
    ("fanvil", "/fanvil/001565a1b2c3.cfg", "Fanvil X4U 2.12.4 001565a1b2c3"),
    ("poly", "/001565a1b2c3-user.cfg", ""),
    ("gigaset-n510", "/gigaset/001565A1B2C3.xml", "Gigaset N510 IP PRO/42.250.00.000.000"),
    ("gigaset-n720", "/gigaset/001565A1B2C3.xml", "Gigaset N720 DM PRO/70.108.00.000.000"),
    ("gigaset-nx70", "/gigaset/001565a1b2c3.xml", "Gigaset N670 IP PRO/83.V2.49.1+build.1"),
]
IDS = [f[0] for f in FAMILIES]

SETTINGS = PhonesSettings(
    provisioning_url="https://provd.example.com:8091/",
    resync_interval=3600,
    firmware={
        "yealink": {"T46S": "https://fw.example.com/T46S.rom"},
        "grandstream": {"*": "https://fw.example.com/gs"},
        "fanvil": {"X4U": "https://fw.example.com/x4u.z"},
        "poly": {"*": "https://fw.example.com/poly"},
        "gigaset": {"N670 IP PRO": "https://fw.example.com/n670.bin"},
    },
    ca_url="https://provd.example.com:8091/ca.pem",
    voicemail_number="*95",
)


def render(
    path: str, ua: str, settings: PhonesSettings = SETTINGS, transport: str = "tls", **kw
) -> str:
    phone = make_phone(admin_password=ADMIN, admin_password_source="devices", **kw)
    renderer = Renderer(transport, year=2025, settings=settings)
    return renderer.render(phone, identify(path, ua), mask_secrets=False).content.decode()


def escaped(value: str) -> tuple[str, ...]:
    """A value as it may appear in a file: raw or XML-escaped."""
    return (value, value.replace("&", "&amp;").replace("<", "&lt;"))


class TestEveryVendor:
    @pytest.mark.parametrize(("name", "path", "ua"), FAMILIES, ids=IDS)
    def test_admin_password(self, name, path, ua):
        """The phone's web/admin password is in every family's file."""
        text = render(path, ua)
        assert any(v in text for v in escaped(ADMIN))

    @pytest.mark.parametrize(("name", "path", "ua"), FAMILIES, ids=IDS)
    def test_admin_password_masked(self, name, path, ua):
        """Masked rendering hides the admin password too."""
        phone = make_phone(admin_password=ADMIN, admin_password_source="devices")
        out = Renderer(year=2025, settings=SETTINGS).render(
            phone, identify(path, ua), mask_secrets=True
        )
        assert not any(v in out.content.decode() for v in escaped(ADMIN))

    @pytest.mark.parametrize(
        ("name", "path", "ua"),
        [f for f in FAMILIES if not f[0].startswith("gigaset-n")],
        ids=[i for i in IDS if not i.startswith("gigaset-n")],
    )
    def test_provisioning_pinned(self, name, path, ua):
        """Files that take a provisioning server get provd's URL."""
        assert "https://provd.example.com:8091/" in render(path, ua)

    @pytest.mark.parametrize(("name", "path", "ua"), FAMILIES, ids=IDS)
    def test_voicemail_number(self, name, path, ua):
        """The operator's voicemail number is in every family's file."""
        assert "*95" in render(path, ua)

    @pytest.mark.parametrize(
        ("name", "path", "ua", "firmware"),
        [
            (*FAMILIES[0], "https://fw.example.com/T46S.rom"),
            (*FAMILIES[2], "https://fw.example.com/gs"),
            (*FAMILIES[4], "https://fw.example.com/x4u.z"),
            (*FAMILIES[5], "https://fw.example.com/poly"),
            (*FAMILIES[8], "https://fw.example.com/n670.bin"),
        ],
        ids=["yealink", "grandstream", "fanvil", "poly", "gigaset-nx70"],
    )
    def test_firmware_url_per_model(self, name, path, ua, firmware):
        """The operator's firmware URL for the model is in the file."""
        assert firmware in render(path, ua)

    def test_no_firmware_for_an_unlisted_model(self):
        """A model without a firmware entry gets no firmware URL."""
        text = render("/001565a1b2c3.cfg", "Yealink SIP-T48S 66.86.0.15")
        assert "static.firmware.url" not in text


class TestValues:
    def test_resync_interval(self):
        """The resync interval arrives in each vendor's unit."""
        assert "static.auto_provision.repeat.minutes = 60" in render(*FAMILIES[0][1:])
        assert '<settings_refresh_timer perm="R">3600<' in render(*FAMILIES[1][1:])
        assert "<P193>60</P193>" in render(*FAMILIES[2][1:])
        assert 'prov.polling.period="3600"' in render(*FAMILIES[5][1:])

    def test_srtp_off_over_tcp(self):
        """Over TCP no SRTP is asked for."""
        text = render(*FAMILIES[0][1:], transport="tcp")
        assert "account.1.srtp_encryption = 0" in text

    def test_srtp_optional_with_a_lenient_profile(self):
        """Over TLS with a non-strict profile SRTP is offered, not forced."""
        cfg = {**make_phone().config, "TLS_PROFILE": {"profile": "compatible"}}
        assert "account.1.srtp_encryption = 1" in render(*FAMILIES[0][1:], config=cfg)

    def test_language_and_tones_from_the_zone(self):
        """Europe/Berlin gives German language and German tones."""
        text = render(*FAMILIES[0][1:])
        assert "lang.gui = German" in text and "voice.tone.country = Germany" in text

    def test_operator_overrides_country_and_language(self):
        """phones.country / phones.language win over the zone."""
        settings = PhonesSettings(country="FR", language="en")
        text = render(*FAMILIES[1][1:], settings=settings)
        assert '<tone_scheme perm="R">FRA<' in text and ">English</language>" in text

    def test_grandstream_tones_from_the_zone(self):
        """Europe/Berlin gives Grandstream German call-progress tones (P4000..P4003)."""
        text = render(*FAMILIES[2][1:])
        assert "<P4000>f1=425;</P4000>" in text
        assert "<P4001>f1=425,c=100/400;</P4001>" in text
        assert "<P4002>f1=425,c=48/48;</P4002>" in text
        assert "<P4003>f1=425,c=24/24;</P4003>" in text

    def test_grandstream_tones_follow_the_operator_country(self):
        """phones.country = US gives the North American two-frequency tones."""
        text = render(*FAMILIES[2][1:], settings=PhonesSettings(country="US"))
        assert "<P4000>f1=350,f2=440;</P4000>" in text
        assert "<P4001>f1=440,f2=480,c=200/400;</P4001>" in text

    def test_poly_tones_from_the_zone(self):
        """Poly gets the country's chords, the unused second component zeroed."""
        text = render(*FAMILIES[5][1:])
        assert 'tone.chord.callProg.dialTone.freq.1="425"' in text
        assert 'tone.chord.callProg.dialTone.freq.2="0"' in text
        assert 'tone.chord.callProg.busyTone.onDur="480"' in text
        assert 'tone.chord.callProg.ringback.offDur="4000"' in text

    def test_poly_tones_follow_the_operator_country(self):
        """phones.country = FR gives the French 440 Hz chords."""
        text = render(*FAMILIES[5][1:], settings=PhonesSettings(country="FR"))
        assert 'tone.chord.callProg.dialTone.freq.1="440"' in text
        assert 'tone.chord.callProg.ringback.onDur="1500"' in text

    def test_fanvil_language_and_tones_from_the_zone(self):
        """Europe/Berlin gives Fanvil German language and tone set 2."""
        text = render(*FAMILIES[4][1:])
        assert "Default Language   :de\n" in text
        assert "Select Your Tone   :2\n" in text

    def test_fanvil_operator_overrides(self):
        """phones.country / phones.language win for Fanvil too."""
        text = render(*FAMILIES[4][1:], settings=PhonesSettings(country="FR", language="it"))
        assert "Select Your Tone   :25\n" in text and "Default Language   :it\n" in text

    @pytest.mark.parametrize("index", [2, 4, 5], ids=["grandstream", "fanvil", "poly"])
    def test_unknown_country_leaves_the_phone_tones(self, index):
        """A country without a tone table (Japan) leaves the phone's own tones."""
        cfg = {**make_phone().config, "NTP": {"tz": "Asia/Tokyo"}}
        text = render(*FAMILIES[index][1:], config=cfg)
        assert "P4000" not in text and "tone.chord" not in text and "Select Your Tone" not in text

    def test_explain_names_the_tone_source(self):
        """render --explain says where the tones came from."""
        phone = make_phone()
        renderer = Renderer("tls", year=2025, settings=PhonesSettings(country="US"))
        _, sources = renderer.explain(phone, identify(*FAMILIES[2][1:]), mask_secrets=True)
        assert sources["tones"] == "country US (operator config phones.country)"

    def test_pnp_loops_off(self):
        """Vendor PnP/redirect loops are switched off."""
        assert "static.auto_provision.pnp_enable = 0" in render(*FAMILIES[0][1:])
        assert "<P145>0</P145>" in render(*FAMILIES[2][1:])
        assert 'device.prov.ztpEnabled="0"' in render(*FAMILIES[5][1:])
        assert 'SipMulticastEnabled" value="0"' in render(*FAMILIES[8][1:])

    def test_ca_url(self):
        """The operator CA URL goes to the vendors that download it."""
        assert "static.trusted_certificates.url = https://provd" in render(*FAMILIES[0][1:])


class TestSettings:
    @pytest.mark.parametrize(
        ("data", "key"),
        [
            ({"resync_interval": 5}, "phones.resync_interval"),
            ({"provisioning_url": "ftp://x"}, "phones.provisioning_url"),
            ({"country": "DEU"}, "phones.country"),
            ({"language": "German"}, "phones.language"),
            ({"firmware": {"nokia": {}}}, "phones.firmware.nokia"),
            ({"firmware": {"yealink": {"T46S": "file:///x"}}}, "phones.firmware.yealink.T46S"),
        ],
    )
    def test_bad_values_name_the_key(self, data, key):
        """A bad production setting is refused naming its key."""
        with pytest.raises(ValueError, match=re.escape(key)):
            PhonesSettings.from_mapping(data)

    def test_firmware_lookup_ignores_case_and_spaces(self):
        """Models match case- and space-insensitively; "*" is the vendor default."""
        s = PhonesSettings.from_mapping(
            {"firmware": {"gigaset": {"N670 IP PRO": "http://a", "*": "http://b"}}}
        )
        assert s.firmware_url("gigaset", "n670ippro") == "http://a"
        assert s.firmware_url("gigaset", "N720") == "http://b"
        assert s.firmware_url("yealink", "T46S") == ""


def _insert(db: Database, mac: str) -> None:
    db.upsert_phone(
        mac=mac, code="c", hwid="h", usename="u", cn="U", password=PASSWORD, domain="d", dns="p"
    )


class TestAdminPasswordStore:
    def test_each_new_phone_gets_its_own_random_password(self, tmp_path):
        """provd stores a different random web password per new phone."""
        db = Database(str(tmp_path / "p.db"))
        _insert(db, "001565000001")
        _insert(db, "001565000002")
        a, b = db.phone("001565000001"), db.phone("001565000002")
        assert re.fullmatch(r"[0-9a-f]{18}", a.web_password) and a.web_password != b.web_password

    def test_devices_password_wins_and_bumps_the_revision(self, tmp_path):
        """Devices' administrative password replaces provd's in the file and re-renders."""
        db = Database(str(tmp_path / "p.db"))
        _insert(db, "001565000001")
        before = db.phone("001565000001")
        assert phone_data(before).admin_password == before.web_password
        assert phone_data(before).admin_password_source == "provd"
        db.set_admin_password("001565000001", "from-devices")
        after = db.phone("001565000001")
        assert after.revision == before.revision + 1
        assert (phone_data(after).admin_password, phone_data(after).admin_password_source) == (
            "from-devices",
            "devices",
        )
        db.set_admin_password("001565000001", "from-devices")
        assert db.phone("001565000001").revision == after.revision

    def test_migration_gives_existing_phones_random_passwords(self, tmp_path):
        """Upgrading a v1 store gives every existing phone its own password."""
        path = str(tmp_path / "old.db")
        old = sqlite_utils.Database(sqlite3.connect(path))
        schema._v1(old)
        old.conn.execute("PRAGMA user_version = 1")
        for mac in ("001565000001", "001565000002"):
            old["phones"].insert({"mac": mac, "code": "c", "state": "provisioned"})
        old.conn.commit()
        old.conn.close()
        db = Database(path)
        passwords = {db.phone(m).web_password for m in ("001565000001", "001565000002")}
        assert len(passwords) == 2 and all(re.fullmatch(r"[0-9a-f]{18}", p) for p in passwords)


class TestCli:
    @pytest.fixture
    def store(self, tmp_path, monkeypatch):
        db_path = tmp_path / "p.db"
        config = tmp_path / "provd.toml"
        config.write_text(
            f'[store]\npath = "{db_path}"\n[phones]\nvoicemail_number = "*95"\n'
            '[phones.firmware.yealink]\nT46S = "https://fw.example.com/T46S.rom"\n'
        )
        monkeypatch.setenv("PROVD_CONFIG", str(config))
        db = Database(str(db_path))
        _insert(db, "805ec0000001")
        db.put_config_item("805ec0000001", "NTP", {"tz": "Europe/Berlin"})
        return db

    def test_render_explain_names_the_sources(self, store, capsys):
        """--explain lists Devices, operator config and default sources."""
        assert main(["render", "805ec0000001", "--model", "T46S", "--explain"]) == 0
        out = capsys.readouterr().out
        assert "static.firmware.url = https://fw.example.com/T46S.rom" in out
        explain = out[out.index("# explain") :]
        assert re.search(r"firmware_url\s+operator config phones.firmware.yealink", explain)
        assert re.search(r"time_zone\s+Devices NTP.tz \(Europe/Berlin\)", explain)
        assert re.search(r"admin_password\s+provd, random per phone", explain)
        assert re.search(r"stun\s+default", explain)
        assert MASK in out and PASSWORD not in out

    def test_phones_show_secrets(self, store, capsys):
        """phones show masks the web password; --show-secrets prints it."""
        secret = store.phone("805ec0000001").web_password
        assert main(["phones", "show", "805ec0000001"]) == 0
        assert secret not in capsys.readouterr().out
        assert main(["phones", "show", "805ec0000001", "--show-secrets"]) == 0
        assert f"{secret} (provd, random)" in capsys.readouterr().out


def test_every_xml_family_parses():
    """Every XML family renders well-formed with all production values."""
    for _name, path, ua in FAMILIES:
        text = render(path, ua)
        if text.startswith("<?xml"):
            ET.fromstring(text.encode())  # noqa: S314 - our own output

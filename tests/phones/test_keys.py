"""Function keys: the data model, its operator sources, the store, and every vendor's file."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from provd.actors.state import phone_data
from provd.cli.main import main
from provd.phones import Renderer, identify
from provd.phones.keys import Key, OperatorKeys, keys_from
from provd.phones.settings import PhonesSettings
from provd.store.database import Database

from .phones_fixtures import make_phone

KEYS = (Key("line", "", "Line 1"), Key("blf", "201", "Anna"), Key("speed", "*95", "Mailbox"))


def render(path: str, ua: str = "", **kw) -> str:
    renderer = Renderer("tls", year=2025, **kw.pop("renderer", {}))
    return renderer.render(make_phone(**kw), identify(path, ua)).content.decode()


class TestModel:
    @pytest.mark.parametrize(
        ("text", "key"),
        [
            ("blf:201:Anna", Key("blf", "201", "Anna")),
            ("speed:*95", Key("speed", "*95", "")),
            ("line::Line 1", Key("line", "", "Line 1")),
        ],
    )
    def test_parse(self, text, key):
        """kind:target:label parses; the label is optional."""
        assert Key.parse(text) == key

    @pytest.mark.parametrize(
        ("text", "why"),
        [
            ("dial:201:x", "kind must be one of"),
            ("blf::Anna", "needs a target"),
            ("speed:20 1:x", "key target"),
        ],
    )
    def test_bad_key_says_why(self, text, why):
        """A bad key is refused with the reason."""
        with pytest.raises(ValueError, match=why):
            Key.parse(text)

    def test_settings_name_the_bad_entry(self):
        """A bad key in [phones.keys] names category and position."""
        with pytest.raises(ValueError, match=re.escape("phones.keys.reception[2]")):
            PhonesSettings.from_mapping({"keys": {"reception": ["blf:201:A", "nope:1"]}})

    def test_tables_and_strings_mix(self):
        """Keys may be strings or tables."""
        keys = keys_from(["blf:201:A", {"kind": "speed", "target": "*95"}], "x")
        assert keys == (Key("blf", "201", "A"), Key("speed", "*95", ""))


class TestOperatorKeys:
    SOURCE = OperatorKeys({"reception": KEYS, "*": (Key("speed", "100", "Desk"),)})

    def test_phone_keys_win(self):
        """A phone's own keys win over its category's."""
        phone = make_phone(keys=(Key("blf", "300", "Bo"),), key_category="reception")
        assert self.SOURCE.keys(phone) == (Key("blf", "300", "Bo"),)

    def test_category_keys(self):
        """Without own keys, the category's keys apply."""
        assert self.SOURCE.keys(make_phone(key_category="reception")) == KEYS

    def test_default_keys(self):
        """Without a known category, the "*" keys apply."""
        assert self.SOURCE.keys(make_phone(key_category="lab")) == (Key("speed", "100", "Desk"),)


class TestVendors:
    def test_yealink_linekeys(self):
        """Yealink gets linekey.N.type 15/16/13 with value and label."""
        text = render("/001565a1b2c3.cfg", "Yealink SIP-T46S 1.2", keys=KEYS)
        assert "linekey.1.type = 15" in text
        assert "linekey.2.type = 16\nlinekey.2.line = 1\nlinekey.2.value = 201" in text
        assert "linekey.3.type = 13" in text and "linekey.3.label = Mailbox" in text

    def test_snom_fkeys(self):
        """Snom gets fkeys: line, blf <sip:user@domain>, speed."""
        root = ET.fromstring(render("/snomD785-001565A1B2C3.htm", keys=KEYS).encode())  # noqa: S314
        fkeys = [el.text for el in root.iter("fkey")]
        assert fkeys == ["line", "blf <sip:201@example.com>", "speed *95"]

    def test_grandstream_mpk(self):
        """Grandstream gets the MPK block P23000 + 5(n-1)."""
        root = ET.fromstring(render("/cfg001565a1b2c3.xml", keys=KEYS).encode())  # noqa: S314
        p = {el.tag: el.text or "" for el in root.find("config")}
        assert (p["P23005"], p["P23007"], p["P23008"]) == ("BLF", "Anna", "201")
        assert (p["P23010"], p["P23013"]) == ("SpeedDial", "*95")

    def test_fanvil_fkeys(self):
        """Fanvil gets Fkey type 1 with /ba for BLF and /f for speed dial."""
        text = render("/fanvil/001565a1b2c3.cfg", keys=KEYS)
        assert re.search(r"^Fkey2 Value\s*:201@1/ba$", text, re.M)
        assert re.search(r"^Fkey3 Value\s*:\*95@1/f$", text, re.M)

    def test_poly_resource_list(self):
        """Poly gets BLF and speed dials as attendant.resourceList, lines as a count."""
        root = ET.fromstring(render("/001565a1b2c3-user.cfg", keys=KEYS).encode())  # noqa: S314
        a = {k: v for el in root.iter() for k, v in el.attrib.items()}
        assert a["attendant.resourceList.1.address"] == "201@example.com"
        assert a["attendant.resourceList.2.label"] == "Mailbox"
        assert a["reg.1.lineKeys"] == "1"

    def test_category_keys_from_settings(self):
        """Operator keys per category reach the file."""
        settings = PhonesSettings.from_mapping({"keys": {"*": ["blf:777:Ops"]}})
        text = render("/001565a1b2c3.cfg", "Yealink SIP-T46S 1.2", renderer={"settings": settings})
        assert "linekey.1.value = 777" in text

    def test_pluggable_source(self):
        """Any object with keys(phone) can be the key source."""

        class Pbx:
            def keys(self, phone):
                return (Key("blf", "555", "From PBX"),)

        text = render("/001565a1b2c3.cfg", "Yealink SIP-T46S 1.2", renderer={"key_source": Pbx()})
        assert "linekey.1.label = From PBX" in text


class TestStoreAndCli:
    @pytest.fixture
    def db(self, tmp_path, monkeypatch):
        config = tmp_path / "provd.toml"
        config.write_text(
            f'[store]\npath = "{tmp_path / "p.db"}"\n'
            f'[control]\nsocket = "{tmp_path / "none.sock"}"\n'
            '[phones.keys]\nreception = ["speed:100:Desk"]\n'
        )
        monkeypatch.setenv("PROVD_CONFIG", str(config))
        db = Database(str(tmp_path / "p.db"))
        db.upsert_phone(
            mac="805ec0000001", code="c", hwid="h", usename="u", cn="U", password="p",
            domain="d", dns="x",
        )  # fmt: skip
        return db

    def test_store_roundtrip_bumps_revision(self, db):
        """Stored keys come back in phone_data, and the revision moves."""
        before = db.phone("805ec0000001").revision
        db.set_phone_keys("805ec0000001", category="reception", keys=[KEYS[1].as_dict()])
        record = db.phone("805ec0000001")
        assert record.revision == before + 1
        data = phone_data(record)
        assert (data.key_category, data.keys) == ("reception", (KEYS[1],))

    def test_cli_sets_and_shows(self, db, capsys):
        """provd phones keys sets the category and keys and shows the effective ones."""
        assert main(["phones", "keys", "805ec0000001", "--category", "reception"]) == 0
        assert re.search(r"^1 +speed +100 +Desk$", capsys.readouterr().out, re.M)
        assert main(["phones", "keys", "805ec0000001", "--set", "blf:201:Anna"]) == 0
        out = capsys.readouterr().out
        assert "per phone" in out and re.search(r"^1 +blf +201 +Anna$", out, re.M)
        assert main(["phones", "keys", "805ec0000001", "--clear"]) == 0
        assert "phones.keys.reception" in capsys.readouterr().out

    def test_cli_refuses_bad_key(self, db, capsys):
        """A bad key is refused, naming it, and nothing is stored."""
        assert main(["phones", "keys", "805ec0000001", "--set", "dial:1"]) == 2
        assert "--set[1]" in capsys.readouterr().err
        assert db.phone("805ec0000001").keys == ()

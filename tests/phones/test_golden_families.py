"""Golden files per vendor and model family, with every production value set.

Fixed input: Europe/Berlin (DST), STUN and TURN, five coders, TLS profile "Strict" over TLS,
a Devices admin password, three function keys (line, BLF, speed dial) and the operator
settings of ``test_production.SETTINGS``.
``PROVD_UPDATE_GOLDEN=1`` rewrites the files; review the diff before committing it.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from provd.phones import Renderer, identify
from provd.phones.keys import Key

from .phones_fixtures import make_phone
from .test_production import ADMIN, FAMILIES, IDS, SETTINGS

GOLDEN = Path(__file__).parent / "golden" / "families"
UPDATE = os.environ.get("PROVD_UPDATE_GOLDEN") == "1"
EXT = {".cfg": ".cfg", ".htm": ".xml", ".xml": ".xml"}


def _render(path: str, ua: str) -> str:
    keys = (Key("line", "", "Line 1"), Key("blf", "201", "Anna"), Key("speed", "*95", "Mailbox"))
    phone = make_phone(admin_password=ADMIN, admin_password_source="devices", keys=keys)
    renderer = Renderer("tls", year=2025, settings=SETTINGS)
    return renderer.render(phone, identify(path, ua)).content.decode("utf-8")


@pytest.mark.parametrize(("name", "path", "ua"), FAMILIES, ids=IDS)
def test_family_matches_golden_file(name, path, ua):
    """Each family's file renders exactly as pinned."""
    text = _render(path, ua)
    target = GOLDEN / (name + EXT[Path(path).suffix])
    if UPDATE:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    assert text == target.read_text(encoding="utf-8")


@pytest.mark.parametrize(("name", "path", "ua"), FAMILIES, ids=IDS)
def test_family_xml_is_well_formed(name, path, ua):
    """Every XML family output parses."""
    text = _render(path, ua)
    if text.startswith("<?xml"):
        ET.fromstring(text.encode())  # noqa: S314 - our own output
    else:
        assert name in ("yealink", "fanvil")

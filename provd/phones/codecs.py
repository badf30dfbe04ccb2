"""From innovaphone coder names (``PHONE.coder``) to each vendor's codec names and order.

Devices sends the coder preference as a comma-separated string (``"G722,OPUS-WB,G711A"``)
or a JSON list, case-insensitive. We normalise to canonical innovaphone names, drop what we
don't know, and then map per vendor, skipping codecs the vendor lacks. Two innovaphone
coders may map to one vendor codec (OPUS-NB and OPUS-WB are both "opus" to a phone); the
first one in preference order wins.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

#: Canonical innovaphone coder names provd understands.
KNOWN = ("G722", "OPUS-WB", "OPUS-NB", "G711A", "G711U", "G729", "G723")

#: Used when ``PHONE.coder`` is absent or names nothing we know: wideband first.
DEFAULT_ORDER: tuple[str, ...] = ("G722", "OPUS-WB", "G711A", "G711U", "G729")

_ALIASES = {
    "G729A": "G729",
    "G729AB": "G729",
    "G711MU": "G711U",
    "PCMA": "G711A",
    "PCMU": "G711U",
    "OPUS": "OPUS-WB",
}

# Vendor codec names (from each vendor's configuration reference).
YEALINK = {
    "G722": "g722",
    "OPUS-WB": "opus",
    "OPUS-NB": "opus",
    "G711A": "pcma",
    "G711U": "pcmu",
    "G729": "g729",
    "G723": "g723_53",
}
#: Every Yealink codec the templates switch off when not preferred.
YEALINK_ALL = ("g722", "opus", "pcma", "pcmu", "g729", "g723_53")

SNOM = {
    "G722": "g722",
    "OPUS-WB": "opus",
    "OPUS-NB": "opus",
    "G711A": "pcma",
    "G711U": "pcmu",
    "G729": "g729",
    "G723": "g723",
}

# Grandstream "vocoder" codes for the codec choice slots (phones.md, corrections; Grandstream
# GXP17xx 1.0.1.x / GXP21xx 1.0.11.x config templates): PCMU 0, PCMA 8, G.722 9, G.729 18,
# G.723.1 4. Opus has no fixed code: it differs per model family (125 on GXP17xx, 123 on
# GXP21xx), see :data:`provd.phones.families.GRANDSTREAM_OPUS`.
GRANDSTREAM = {
    "G722": 9,
    "G711A": 8,
    "G711U": 0,
    "G729": 18,
    "G723": 4,
}
#: The eight codec choice slots, in preference order (GXP templates: "Codec choice 1..8").
GRANDSTREAM_SLOT_NAMES = ("P57", "P58", "P59", "P60", "P61", "P62", "P46", "P98")
GRANDSTREAM_SLOTS = len(GRANDSTREAM_SLOT_NAMES)

# Gigaset N510/N720 vocoder ids (wazo-provd-plugins ``wazo_gigaset/N510/templates/base.tpl``:
# "0x00(G.711ulaw),0x01(G.711alaw),0x02(G.726),0x03(G.729),0x05(G722)"); no Opus.
GIGASET = {
    "G722": 0x05,
    "G711A": 0x01,
    "G711U": 0x00,
    "G729": 0x03,
}

# Gigaset N670/N870 codec names (SipProvider.0.AudioCodecs, see the nx70 template).
GIGASET_NX70 = {
    "G722": "G722",
    "G711A": "G711A",
    "G711U": "G711U",
    "G729": "G729",
}

FANVIL = {
    "G722": "G722",
    "OPUS-WB": "opus",
    "OPUS-NB": "opus",
    "G711A": "PCMA",
    "G711U": "PCMU",
    "G729": "G729",
    "G723": "G723",
}

# Poly has no G.723.
POLY = {
    "G722": "G722",
    "OPUS-WB": "Opus",
    "OPUS-NB": "Opus",
    "G711A": "G711_A",
    "G711U": "G711_Mu",
    "G729": "G729_AB",
}
#: Every Poly codec the templates set; 0 disables one.
POLY_ALL = ("G722", "Opus", "G711_A", "G711_Mu", "G729_AB")


def parse_coders(value: Any) -> tuple[str, ...]:
    """Canonical innovaphone coder names from a ``PHONE.coder`` value, in order.

    Accepts a comma/semicolon/space separated string, a JSON list in a string, or a list.
    Unknown names are skipped, duplicates dropped. Returns :data:`DEFAULT_ORDER` when
    nothing usable is left. Never raises.
    """
    items: Iterable[Any]
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                decoded = json.loads(text)
            except ValueError:
                decoded = None
            items = decoded if isinstance(decoded, list) else re.split(r"[\s,;\[\]\"']+", text)
        else:
            items = re.split(r"[\s,;]+", text)
    elif isinstance(value, (list, tuple)):
        items = value
    else:
        items = ()
    result: list[str] = []
    for item in items:
        if not isinstance(item, str):
            continue
        name = item.strip().upper()
        name = _ALIASES.get(name, name)
        if name in KNOWN and name not in result:
            result.append(name)
    return tuple(result) or DEFAULT_ORDER


def coders_from_config(config: Mapping[str, Mapping[str, Any]]) -> tuple[str, ...]:
    """The coder order from a :class:`PhoneData` ``config`` (``PHONE.coder``)."""
    phone = config.get("PHONE") or {}
    return parse_coders(phone.get("coder") if isinstance(phone, Mapping) else None)


def vendor_codecs(coders: Sequence[str], table: Mapping[str, Any]) -> list[Any]:
    """Map canonical coders through a vendor table, keeping order, skipping unknowns."""
    result: list[Any] = []
    for coder in coders:
        name = table.get(coder)
        if name is not None and name not in result:
            result.append(name)
    return result


def priorities(
    coders: Sequence[str], table: Mapping[str, str], every: Sequence[str]
) -> list[tuple[str, int]]:
    """``(vendor name, priority)`` for every codec in ``every``; 0 means disabled.

    For vendors (Yealink, Poly) whose files carry one enable/priority entry per codec, so a
    codec not preferred is switched off rather than left at the phone's default.
    """
    chosen = vendor_codecs(coders, table)
    return [(name, chosen.index(name) + 1 if name in chosen else 0) for name in every]


def grandstream_slots(coders: Sequence[str], opus: int | None = 123) -> list[tuple[str, int]]:
    """``(P-value, vocoder code)`` for all eight slots; unused slots repeat the last choice.

    Grandstream fills empty slots (including ``P46`` and ``P98``) with its own defaults,
    which would re-enable codecs the PBX did not ask for; repeating the last chosen one
    avoids that. ``opus`` is the model family's Opus code, or None to leave Opus out.
    """
    table: dict[str, int] = dict(GRANDSTREAM)
    if opus is not None:
        table["OPUS-WB"] = table["OPUS-NB"] = opus
    chosen = vendor_codecs(coders, table) or [GRANDSTREAM["G711A"]]
    codes = (chosen + [chosen[-1]] * GRANDSTREAM_SLOTS)[:GRANDSTREAM_SLOTS]
    return list(zip(GRANDSTREAM_SLOT_NAMES, codes, strict=True))


def gigaset_vocoders(coders: Sequence[str], size: int = 5) -> str:
    """Gigaset's preferred-vocoder list: ``0x05,0x01,...`` padded with ``0xff`` to ``size``."""
    chosen = vendor_codecs(coders, GIGASET) or [GIGASET["G711A"]]
    codes = [f"0x{c:02x}" for c in chosen][:size]
    return ",".join(codes + ["0xff"] * (size - len(codes)))

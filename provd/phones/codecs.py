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

# Grandstream P57..P62 take RTP payload type numbers.
GRANDSTREAM = {
    "G722": 9,
    "OPUS-WB": 123,
    "OPUS-NB": 123,
    "G711A": 8,
    "G711U": 0,
    "G729": 18,
    "G723": 4,
}
GRANDSTREAM_SLOTS = 6

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


def grandstream_slots(coders: Sequence[str]) -> list[int]:
    """Payload types for P57..P62; unused slots repeat the last choice.

    Grandstream fills empty slots with its own defaults, which would re-enable codecs the
    PBX did not ask for; repeating the last chosen one avoids that.
    """
    chosen = vendor_codecs(coders, GRANDSTREAM) or [GRANDSTREAM["G711A"]]
    return (chosen + [chosen[-1]] * GRANDSTREAM_SLOTS)[:GRANDSTREAM_SLOTS]

"""What each vendor's phone sends when it boots: real User-Agent shapes and file names.

Used to pose as a phone: by ``provd demo``, the benchmarks and the end-to-end tests. The
User-Agents follow the vendors' documented formats (see ``tests/phones/test_identify.py``
for the real-world strings they are checked against).
"""

from __future__ import annotations

import attrs

from .identify import Vendor


@attrs.frozen
class PhoneRequest:
    path: str
    user_agent: str


_MODEL = {
    Vendor.YEALINK: "T46S",
    Vendor.SNOM: "D785",
    Vendor.GRANDSTREAM: "GXP2170",
    Vendor.FANVIL: "X4U",
    Vendor.POLY: "VVX411",
    Vendor.GIGASET: "N720",
}

_AGENT = {
    Vendor.YEALINK: "Yealink SIP-T46S 66.86.0.15 {colon}",
    Vendor.SNOM: "Mozilla/4.0 (compatible; snomD785-SIP 10.1.73.16 1.1.5-IFX-05.01.12 {MAC})",
    Vendor.GRANDSTREAM: "Grandstream Model HW GXP2170 SW 1.0.11.3 DevId {mac}",
    Vendor.FANVIL: "Fanvil X4U 2.12.4 {mac}",
    Vendor.POLY: "FileTransport PolycomVVX-VVX_411-UA/5.9.5.0614",
    Vendor.GIGASET: "Gigaset N720 DM PRO/70.108.00.000.000;{MAC}",
}

_PHONE_FILE = {
    Vendor.YEALINK: "/{mac}.cfg",
    Vendor.SNOM: "/{MAC}.xml",
    Vendor.GRANDSTREAM: "/Grandstream/cfg{mac}.xml",
    Vendor.FANVIL: "/{mac}.cfg",
    Vendor.POLY: "/{mac}-user.cfg",
    Vendor.GIGASET: "/{MAC}.xml",
}


#: Other model families: (vendor, model) -> (per-phone file, User-Agent).
_FAMILY: dict[tuple[Vendor, str], tuple[str, str]] = {
    (Vendor.GRANDSTREAM, "GXP1780"): (
        "/Grandstream/cfg{mac}.xml",
        "Grandstream Model HW GXP1780 SW 1.0.1.133 DevId {mac}",
    ),
    (Vendor.GIGASET, "N510"): ("/{MAC}.xml", "Gigaset N510 IP PRO/42.250.00.000.000;{MAC}"),
    # N670/N870 ask for a lowercase <mac>.xml (wazo-provd-plugins Nx70 common.py).
    (Vendor.GIGASET, "N670"): ("/{mac}.xml", "Gigaset N670 IP PRO/83.V2.49.1+build.6e4b2d3;{MAC}"),
}

#: One (vendor, model) per vendor model family, for the demo.
FAMILIES: list[tuple[Vendor, str]] = [
    *((vendor, name) for vendor, name in _MODEL.items()),
    *_FAMILY,
]


def model(vendor: Vendor, name: str | None = None) -> str:
    return name or _MODEL[vendor]


def phone_request(vendor: Vendor, mac: str, model: str | None = None) -> PhoneRequest:
    """The per-phone file request of ``vendor``'s ``model`` (default: the vendor's usual one)
    with ``mac`` (12 lowercase hex)."""
    fmt = {
        "mac": mac,
        "MAC": mac.upper(),
        "colon": ":".join(mac[i : i + 2] for i in range(0, 12, 2)),
    }
    path, agent = _FAMILY.get((vendor, model or ""), (_PHONE_FILE[vendor], _AGENT[vendor]))
    return PhoneRequest(path.format(**fmt), agent.format(**fmt))

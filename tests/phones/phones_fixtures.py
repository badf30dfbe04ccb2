"""The fixed phone the phone tests render from (importable by test modules)."""

from __future__ import annotations

from typing import Any

from provd.phones import PhoneData

PASSWORD = "s3<&\"'cr3t"
TURN_PASSWORD = "turn<&\"'pw"
DISPLAY = "Zoë Ångström-Müller"


def make_phone(mac: str = "001565a1b2c3", **overrides: Any) -> PhoneData:
    """The fixed phone golden files are rendered from."""
    values: dict[str, Any] = {
        "mac": mac,
        "hwid": "IP-HW-0042",
        "usename": "zoe",
        "cn": DISPLAY,
        "password": PASSWORD,
        "domain": "example.com",
        "dns": "pbx.example.com",
        "config": {
            "PHONE": {"coder": "G722,OPUS-WB,G711A,G711u,G729"},
            "NTP": {"ntp1": "ntp1.example.com", "ntp2": "ntp2.example.com", "tz": "Europe/Berlin"},
            "MEDIA": {
                "stunServer": "stun.example.com:3478",
                "turnServer": "turn.example.com:3479",
                "turnUser": "turnuser",
                "turnPassword": TURN_PASSWORD,
            },
            "TLS_PROFILE": {"profile": "Strict"},
            "SOMETHING_NEW": {"x": 1},
        },
        "revision": 7,
    }
    values.update(overrides)
    return PhoneData(**values)

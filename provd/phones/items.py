"""Typed views of the Devices configuration items the phone files use.

``PhoneData.config`` holds items as Devices sent them (``NTP``, ``MEDIA``, ``TLS_PROFILE``,
``PHONE``, ...), loosely typed. Templates get these small frozen values instead, so a
missing or oddly typed field degrades to "not configured" in one place rather than in six
templates. Unknown item types are ignored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from attrs import frozen


@frozen
class HostPort:
    """A server address as phones want it: host and port apart."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@frozen
class Turn:
    """A TURN server with its credentials (``MEDIA.turnPassword`` arrives decrypted).

    ``tls`` is True for a ``turns:`` URL (RFC 7065): the phone must reach the TURN server
    over TLS (default port 5349). A vendor whose file has no TLS-TURN setting gets no TURN
    at all rather than a silent plain-TURN downgrade (phones.md, corrections).
    """

    server: HostPort
    user: str
    password: str
    tls: bool = False


@frozen
class TlsPolicy:
    """What the phone's TLS client should do, derived from ``TLS_PROFILE.profile``.

    innovaphone names TLS profiles; phones have a "verify the server certificate" switch and
    sometimes a minimum version. Mapping (case-insensitive): ``strict``, ``secure``,
    ``high`` -> verify the PBX certificate, TLS 1.2 minimum; ``compatible``, ``legacy``,
    ``low`` -> don't verify, TLS 1.0 minimum; anything else, or none -> don't verify, TLS 1.2
    minimum (PBX certificates are often self-signed or from a private CA the phone lacks).
    """

    profile: str
    verify_server: bool
    min_version: str


_HOST_PORT = re.compile(
    r"\[(?P<v6>[0-9A-Fa-f:.]+)\](?::(?P<p6>\d{1,5}))?|(?P<h>[^:\s/]+)(?::(?P<p>\d{1,5}))?"
)
_STRICT = {"strict", "secure", "high"}
_COMPATIBLE = {"compatible", "legacy", "low"}


def _item(config: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    item = config.get(name)
    return item if isinstance(item, Mapping) else {}


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def parse_host_port(value: Any, default_port: int) -> HostPort | None:
    """``host[:port]`` (optionally ``stun:``/``turn:``/``turns:`` prefixed, IPv6 in brackets)."""
    text = _text(value)
    text = re.sub(r"^(?:stuns?|turns?):(?://)?", "", text, flags=re.IGNORECASE)
    text = text.split("?", 1)[0]
    if not text:
        return None
    m = _HOST_PORT.fullmatch(text)
    if m is None:
        return None
    host = m["v6"] or m["h"]
    port = int(m["p6"] or m["p"] or default_port)
    if not 0 < port < 65536:
        return None
    return HostPort(host, port)


def ntp_servers(config: Mapping[str, Any]) -> list[str]:
    """``NTP.ntp1`` and ``NTP.ntp2``, the configured ones, in order."""
    ntp = _item(config, "NTP")
    return [s for s in (_text(ntp.get("ntp1")), _text(ntp.get("ntp2"))) if s]


def time_zone(config: Mapping[str, Any]) -> str:
    """``NTP.tz`` (an IANA name), or ``""`` when absent."""
    return _text(_item(config, "NTP").get("tz"))


def stun(config: Mapping[str, Any]) -> HostPort | None:
    """``MEDIA.stunServer``, default port 3478."""
    return parse_host_port(_item(config, "MEDIA").get("stunServer"), 3478)


def turn(config: Mapping[str, Any]) -> Turn | None:
    """``MEDIA.turnServer`` with ``turnUser`` / ``turnPassword``.

    Default port 3478, or 5349 for ``turns:`` (RFC 7065 section 3.1), which also sets
    :attr:`Turn.tls`.
    """
    media = _item(config, "MEDIA")
    raw = _text(media.get("turnServer"))
    tls = raw.lower().startswith("turns:")
    server = parse_host_port(raw, 5349 if tls else 3478)
    if server is None:
        return None
    return Turn(server, _text(media.get("turnUser")), _text(media.get("turnPassword")), tls)


def tls_policy(config: Mapping[str, Any]) -> TlsPolicy:
    """The :class:`TlsPolicy` for ``TLS_PROFILE.profile``."""
    profile = _text(_item(config, "TLS_PROFILE").get("profile"))
    key = profile.lower()
    if key in _STRICT:
        return TlsPolicy(profile, verify_server=True, min_version="1.2")
    if key in _COMPATIBLE:
        return TlsPolicy(profile, verify_server=False, min_version="1.0")
    return TlsPolicy(profile, verify_server=False, min_version="1.2")

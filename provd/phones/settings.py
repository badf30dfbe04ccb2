"""The ``[phones]`` configuration section: typed, with defaults and units.

Unlike hypercorn's config, a misspelt key is rejected and named, so an operator's typo
can't silently leave the phone server open or on the wrong port.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any

from attrs import fields, frozen

SECONDS = 1.0


@frozen(kw_only=True)
class PhonesSettings:
    """Settings of the phone-facing HTTP(S) server.

    Attributes:
        listen: ``host:port`` to bind (``[v6]:port`` for IPv6); port 0 picks a free port.
        tls_cert: PEM certificate chain file; with ``tls_key``, serve HTTPS.
        tls_key: PEM private key file.
        username: HTTP Basic user phones must send; empty means no authentication.
        password: HTTP Basic password.
        templates: operator directory whose templates override the packaged ones.
        sip_transport: ``"tls"`` (port 5061) or ``"tcp"`` (5060) for SIP account 1.
        prefix_miss_limit: misses allowed per IPv6 /64 per ``miss_window`` (one host may
            hold a whole /64, so a scanner rotating within it is counted as one).
        global_miss_rate: misses per second, over all clients, the global budget refills
            at (a token bucket against scanners rotating their source address).
        global_miss_burst: the global budget's size: misses allowed at once.
        anonymous_vendors: vendors whose per-phone files are served to a request whose
            User-Agent carries no MAC (or names no vendor); the others' phones always send
            their MAC, so such a request is refused (403).
        trusted_proxies: addresses or networks of reverse proxies whose
            ``X-Forwarded-For`` names the real client; empty: the header is ignored.
        miss_limit: misses (404/403/bad credentials) allowed per client address per window.
        miss_window: the sliding window, in seconds.
    """

    listen: str = "127.0.0.1:8091"
    tls_cert: str = ""
    tls_key: str = ""
    username: str = ""
    password: str = ""
    templates: str = ""
    sip_transport: str = "tls"
    prefix_miss_limit: int = 100
    global_miss_rate: float = 20.0
    global_miss_burst: int = 400
    anonymous_vendors: tuple[str, ...] = ("poly", "gigaset")
    trusted_proxies: tuple[str, ...] = ()
    miss_limit: int = 20
    miss_window: float = 60.0 * SECONDS

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> PhonesSettings:
        """Build from the parsed ``[phones]`` table.

        Raises:
            ValueError: an unknown key, a wrong type or an invalid value; the message names
                the key, e.g. ``"phones.sip_transport: must be 'tls' or 'tcp'"``.
        """
        known = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, value in data.items():
            if key not in known:
                raise ValueError(f"phones.{key}: unknown setting")
            values[key] = _check(key, value)
        settings = cls(**values)
        if bool(settings.tls_cert) != bool(settings.tls_key):
            raise ValueError("phones.tls_cert: tls_cert and tls_key must be set together")
        if settings.password and not settings.username:
            raise ValueError("phones.password: set only together with phones.username")
        return settings

    @property
    def tls(self) -> bool:
        """Whether the server speaks HTTPS."""
        return bool(self.tls_cert and self.tls_key)


_STRINGS = ("listen", "tls_cert", "tls_key", "username", "password", "templates", "sip_transport")


def _check(key: str, value: Any) -> Any:
    if key in _HARDENING:
        return _check_hardening(key, value)
    if key in _STRINGS:
        if not isinstance(value, str):
            raise ValueError(f"phones.{key}: must be a string")
        if key == "sip_transport" and value not in ("tls", "tcp"):
            raise ValueError("phones.sip_transport: must be 'tls' or 'tcp'")
        if key == "listen" and not _valid_listen(value):
            raise ValueError("phones.listen: must be 'host:port' with a port 0-65535")
        return value
    if key == "miss_limit":
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError("phones.miss_limit: must be an integer >= 1")
        return value
    if key == "miss_window":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ValueError("phones.miss_window: must be a number of seconds > 0")
        return float(value)
    raise ValueError(f"phones.{key}: unknown setting")  # pragma: no cover - guarded above


def _valid_listen(value: str) -> bool:
    m = re.fullmatch(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-]+):(\d{1,5})", value)
    return m is not None and int(m[1]) <= 65535


#: Vendors provd knows, for ``anonymous_vendors`` (the values of ``identify.Vendor``).
VENDORS = ("yealink", "snom", "grandstream", "fanvil", "poly", "gigaset")

_HARDENING = (
    "prefix_miss_limit",
    "global_miss_rate",
    "global_miss_burst",
    "anonymous_vendors",
    "trusted_proxies",
)


def _check_hardening(key: str, value: Any) -> Any:
    """Throttling budget, User-Agent policy and trusted proxies (issue 8)."""
    if key in ("prefix_miss_limit", "global_miss_burst"):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"phones.{key}: must be an integer >= 1")
        return value
    if key == "global_miss_rate":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ValueError("phones.global_miss_rate: must be a number of misses per second > 0")
        return float(value)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        what = "vendor names" if key == "anonymous_vendors" else "addresses or networks"
        raise ValueError(f"phones.{key}: must be a list of {what}")
    if key == "anonymous_vendors":
        for vendor in value:
            if vendor not in VENDORS:
                raise ValueError(
                    f"phones.anonymous_vendors: unknown vendor {vendor!r} "
                    f"(one of {', '.join(VENDORS)})"
                )
        return tuple(value)
    for entry in value:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ValueError(
                f"phones.trusted_proxies: {entry!r} is no IP address or network"
            ) from None
    return tuple(value)

"""The ``[phones]`` configuration section: typed, with defaults and units.

Unlike hypercorn's config, a misspelt key is rejected and named, so an operator's typo
can't silently leave the phone server open or on the wrong port.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urljoin

from attrs import field, fields, frozen

from provd.phones.firmware import FirmwareRefused, check_name
from provd.phones.keys import Key, keys_from

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
        provisioning_url: the URL phones reach provd's files at; written into every file
            (pins the phone to provd, vendor redirect/PnP loops off). Empty: not pinned.
        resync_interval: seconds between a phone's periodic re-fetches of its file.
        firmware: ``{vendor: {model: url}}`` firmware file per model (operator-given);
            a model without an entry gets no firmware URL (the phone keeps its firmware).
        ca_file: PEM file with the operator CA certificate(s) for the PBX/TURN TLS
            certificates; inlined where the vendor takes PEM text.
        ca_url: where phones download that CA file (vendors that take a URL).
        country: ISO 3166 alpha-2 country for tones/language; empty: from the time zone.
        language: ISO 639-1 language of the phone UI; empty: the country's.
        voicemail_number: number the phone's message key dials (MWI/voicemail).
        keys: function keys per Devices category (``"*"``: phones without one), each a
            list of ``"kind:target:label"`` (kind ``line``, ``blf`` or ``speed``).
        firmware_dir: directory whose files provd serves read-only at ``/firmware/<name>``;
            a ``firmware`` entry that is a plain name (no ``http(s)://``) means that file,
            at ``provisioning_url`` + ``firmware/<name>``. Empty: nothing served.
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
    provisioning_url: str = ""
    resync_interval: float = 86400.0 * SECONDS
    firmware: Mapping[str, Mapping[str, str]] = field(factory=dict)
    ca_file: str = ""
    ca_url: str = ""
    country: str = ""
    language: str = ""
    voicemail_number: str = ""
    keys: Mapping[str, tuple[Key, ...]] = field(factory=dict)
    firmware_dir: str = ""
    #: NTP server written into every phone's file instead of Devices' ``NTP.ntp1/ntp2``
    #: (empty: Devices' servers).
    time_server: str = ""
    #: IANA time zone used instead of Devices' ``NTP.tz`` (empty: Devices' zone).
    time_zone: str = ""

    def firmware_url(self, vendor: str, model: str | None) -> str:
        """The operator's firmware URL for ``vendor``'s ``model`` (case-insensitive), or ``""``."""
        return self._firmware_link(self.firmware_entry(vendor, model))

    def firmware_entry(self, vendor: str, model: str | None) -> str:
        """The ``phones.firmware`` entry as written: a URL or a file name in firmware_dir."""
        models = self.firmware.get(vendor, {})
        wanted = (model or "").replace(" ", "").upper()
        for name, url in models.items():
            if name.replace(" ", "").upper() == wanted:
                return url
        return models.get("*", "")

    def _firmware_link(self, value: str) -> str:
        """``value`` as the phone's URL: a plain file name is provd's own ``/firmware/``."""
        if not value or re.match(r"https?://", value):
            return value
        return urljoin(self.provisioning_url, "firmware/" + quote(value))

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
        _check_firmware_names(settings)
        return settings

    @property
    def tls(self) -> bool:
        """Whether the server speaks HTTPS."""
        return bool(self.tls_cert and self.tls_key)


_STRINGS = ("listen", "tls_cert", "tls_key", "username", "password", "templates", "sip_transport")
_MORE_STRINGS = ("provisioning_url", "ca_file", "ca_url", "voicemail_number")
#: A host name or address (with an optional port) for ``time_server``.
_HOST = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9.\-]{0,252})|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?")
_VENDORS = ("yealink", "snom", "grandstream", "fanvil", "poly", "gigaset")


def _check_more(key: str, value: Any) -> Any:
    """The production settings (issue 10); ``None`` when ``key`` is not one of them."""
    if key in _MORE_STRINGS:
        if not isinstance(value, str):
            raise ValueError(f"phones.{key}: must be a string")
        if key in ("provisioning_url", "ca_url") and value and not re.match(r"https?://", value):
            raise ValueError(f"phones.{key}: must be an http:// or https:// URL")
        return value
    if key == "resync_interval":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 60:
            raise ValueError("phones.resync_interval: must be a number of seconds >= 60")
        return float(value)
    if key == "country":
        if not isinstance(value, str) or not re.fullmatch(r"(?:[A-Za-z]{2})?", value):
            raise ValueError("phones.country: must be a two-letter ISO 3166 code or empty")
        return value.upper()
    if key == "language":
        if not isinstance(value, str) or not re.fullmatch(r"(?:[a-z]{2})?", value):
            raise ValueError("phones.language: must be a two-letter ISO 639-1 code or empty")
        return value
    if key == "time_server":
        if not isinstance(value, str) or (value and not _HOST.fullmatch(value)):
            raise ValueError("phones.time_server: must be a host name or address, or empty")
        return value
    if key == "time_zone":
        if not isinstance(value, str) or (value and not _known_zone(value)):
            raise ValueError("phones.time_zone: must be an IANA time zone name, or empty")
        return value
    if key == "firmware_dir":
        if not isinstance(value, str):
            raise ValueError("phones.firmware_dir: must be a string")
        return value
    if key == "keys":
        if not isinstance(value, Mapping):
            raise ValueError("phones.keys: must be a table of category = [keys]")
        return {str(c): keys_from(v, f"phones.keys.{c}") for c, v in value.items()}
    if key == "firmware":
        if not isinstance(value, Mapping):
            raise ValueError("phones.firmware: must be a table of vendor tables")
        out: dict[str, dict[str, str]] = {}
        for vendor, models in value.items():
            if vendor not in _VENDORS:
                raise ValueError(f"phones.firmware.{vendor}: unknown vendor")
            if not isinstance(models, Mapping):
                raise ValueError(f"phones.firmware.{vendor}: must be a table model = URL")
            for model, url in models.items():
                if not isinstance(url, str) or not (
                    re.match(r"https?://", url) or _is_firmware_name(url)
                ):
                    raise ValueError(
                        f"phones.firmware.{vendor}.{model}: must be an http(s) URL or a file"
                        " name under phones.firmware_dir"
                    )
            out[vendor] = dict(models)
        return out
    return None


def _known_zone(name: str) -> bool:
    """Whether ``name`` is an IANA zone the system's tz database knows."""
    import zoneinfo

    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


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
    checked = _check_more(key, value)
    if checked is not None:
        return checked
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


def _is_firmware_name(value: str) -> bool:
    """A relative file name under ``phones.firmware_dir`` (no scheme, no ``..``, no ``/``-start)."""
    if ":" in value:  # a URL of another scheme (ftp://, file:...) is no file name
        return False
    try:
        check_name(value)
    except FirmwareRefused:
        return False
    return True


def _check_firmware_names(settings: PhonesSettings) -> None:
    """A plain firmware file name needs provd to serve it and to know its own URL."""
    for vendor, models in settings.firmware.items():
        for model, value in models.items():
            if re.match(r"https?://", value):
                continue
            if not settings.firmware_dir:
                raise ValueError(
                    f"phones.firmware.{vendor}.{model}: a file name needs phones.firmware_dir"
                )
            if not settings.provisioning_url:
                raise ValueError(
                    f"phones.firmware.{vendor}.{model}: a file name needs phones.provisioning_url"
                    " (provd's own URL, the base of /firmware/)"
                )

"""The values every vendor template renders, and where each one came from.

:func:`build` turns a :class:`PhoneData` (Devices items), the operator's ``[phones]``
settings and provd's defaults into the template context. Every non-trivial value is also
recorded in a ``sources`` map (value name -> "Devices ...", "operator config ...",
"default ..."), which ``provd render --explain`` prints.

Production rules (phones.md, "What a production file also carries"):

* SRTP follows the SIP transport and TLS profile: over TLS, a strict profile makes SRTP
  mandatory, any other profile offers it (``optional``); over TCP, it is off.
* A ``turns:`` TURN server is kept as TLS TURN; vendors in :data:`TURN_TLS_VENDORS` get
  it, the others get no TURN at all (logged) rather than a plain-TURN downgrade.
* The admin password is the one Devices deployed, else provd's per-phone random one.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import structlog
from attrs import evolve
from markupsafe import Markup, escape

from provd.phones import codecs, families, items, regional, timezones
from provd.phones.account import MASK, SipAccount
from provd.phones.identify import Identification, Vendor
from provd.phones.keys import Key, KeySource, OperatorKeys
from provd.phones.model import PhoneData
from provd.phones.pbx import FavouriteKeys, PbxDirectory
from provd.phones.settings import PhonesSettings

log = structlog.get_logger()

# Transport codes each vendor's file uses for TLS / TCP.
TRANSPORT: dict[Vendor, dict[str, Any]] = {
    Vendor.YEALINK: {"tls": 2, "tcp": 1},  # account.1.sip_server.1.transport_type
    Vendor.GRANDSTREAM: {"tls": 2, "tcp": 1},  # P130
    Vendor.FANVIL: {"tls": 3, "tcp": 1},  # SIP1 Transport
    Vendor.POLY: {"tls": "TLS", "tcp": "TCPOnly"},  # reg.1.server.1.transport
    # N670/N870 SipProvider.N.TransportProtocol: udp 1, tcp 2, tls 3 (wazo-provd-plugins
    # wazo_gigaset/Nx70_83_v2_62_1/common.py, _SIP_TRANSPORT). N720 ucSIP_PREFERRED_
    # TRANSPORT_LAYER takes the IP protocol number (17 = UDP in the N720 template; 6 = TCP);
    # for TLS the N720 takes TCP plus the "secure SIP" switch (see the template).
    Vendor.GIGASET: {"tls": 3, "tcp": 2},
}

#: Vendors whose files have a TLS-TURN setting. None of the templates has one yet (no vendor
#: reference we checked names one), so a ``turns:`` server is left out for all of them.
TURN_TLS_VENDORS: frozenset[Vendor] = frozenset()

DEFAULT = "default"


@functools.lru_cache(maxsize=8)
def _read_ca(path: str, mtime: float) -> str:
    return Path(path).read_text(encoding="ascii").strip()


def ca_pem(path: str) -> str:
    """The operator's CA PEM text, re-read when the file changes; ``""`` if unreadable."""
    if not path:
        return ""
    try:
        return _read_ca(path, Path(path).stat().st_mtime)
    except (OSError, UnicodeDecodeError) as exc:
        log.error("phones.ca_file_unreadable", path=path, error=str(exc))
        return ""


def srtp_mode(transport: str, policy: items.TlsPolicy) -> str:
    """``"off"``, ``"optional"`` or ``"mandatory"`` for SIP ``transport`` and TLS profile."""
    if transport != "tls":
        return "off"
    return "mandatory" if policy.verify_server else "optional"


def build(
    phone: PhoneData,
    request: Identification,
    *,
    transport: str,
    settings: PhonesSettings,
    family: str,
    mask_secrets: bool,
    year: int,
    key_source: KeySource | None = None,
    pbx: PbxDirectory | None = None,
) -> tuple[dict[str, Any], dict[str, str]]:
    """The template context for ``phone``'s file and the source of each value.

    Returns:
        ``(context, sources)``.
    """
    vendor = request.vendor
    config = phone.config
    src: dict[str, str] = {}
    account = SipAccount.from_phone(phone, transport)
    src["account"] = "Devices ProvisioningPhone (usename, hwid, dns, domain, cn)"
    src["transport"] = f"operator config phones.sip_transport ({transport})"
    turn = items.turn(config)
    turn_dropped = False
    if turn is not None and turn.tls and vendor not in TURN_TLS_VENDORS:
        log.warning(
            "phones.turns_unsupported", mac=phone.mac, vendor=str(vendor), server=str(turn.server)
        )
        turn, turn_dropped = None, True
    admin = phone.admin_password
    if mask_secrets:
        account = account.masked()
        if turn is not None:
            turn = evolve(turn, password=MASK)
        admin = MASK if admin else ""
    src["turn"] = (
        "Devices MEDIA.turnServer (turns: left out, no TLS TURN for this vendor)"
        if turn_dropped
        else ("Devices MEDIA.turnServer" if turn else DEFAULT + " (none)")
    )
    stun = items.stun(config)
    src["stun"] = "Devices MEDIA.stunServer" if stun else DEFAULT + " (none)"
    coders = codecs.coders_from_config(config)
    has_coder = isinstance(config.get("PHONE"), dict) and "coder" in config["PHONE"]
    src["codecs"] = "Devices PHONE.coder" if has_coder else f"default {','.join(coders)}"
    zone = settings.time_zone or items.time_zone(config)
    tz = timezones.zone_rules(zone, year)
    src["time_zone"] = (
        f"operator setting phones.time_zone ({zone})"
        if settings.time_zone
        else (f"Devices NTP.tz ({zone})" if zone else "default UTC")
    )
    if tz.fallback:
        log.warning("phones.unknown_time_zone", mac=phone.mac, tz=zone)
    ntp = [settings.time_server] if settings.time_server else items.ntp_servers(config)
    src["ntp"] = (
        "operator setting phones.time_server"
        if settings.time_server
        else ("Devices NTP.ntp1/ntp2" if ntp else DEFAULT + " (none: phone's own)")
    )
    tls = items.tls_policy(config)
    src["tls"] = (
        f"Devices TLS_PROFILE.profile ({tls.profile})" if tls.profile else DEFAULT + " (no verify)"
    )
    srtp = srtp_mode(transport, tls)
    src["srtp"] = f"transport {transport} + TLS profile -> {srtp}"
    country = settings.country or regional.country_of(tz.name)
    src["country"] = (
        "operator config phones.country"
        if settings.country
        else (f"time zone {tz.name}" if country else DEFAULT + " (none)")
    )
    language = settings.language or regional.language_of(country)
    src["language"] = (
        "operator config phones.language" if settings.language else f"country {country or '-'}"
    )
    src["tones"] = (
        f"country {country} (operator config phones.country)"
        if settings.country
        else (f"country {country} (time zone)" if country else DEFAULT + " (phone's own)")
    )
    src["admin_password"] = {
        "devices": "Devices administrative password (0x0003)",
        "provd": "provd, random per phone (store)",
    }.get(phone.admin_password_source, DEFAULT + " (none)")
    firmware = settings.firmware_url(vendor.value, request.model)
    src["firmware_url"] = (
        f"operator config phones.firmware.{vendor.value}" if firmware else DEFAULT + " (none)"
    )
    if firmware and firmware != settings.firmware_entry(vendor.value, request.model):
        src["firmware_url"] += " (file in phones.firmware_dir, served by provd)"
    src["provisioning_url"] = (
        "operator config phones.provisioning_url"
        if settings.provisioning_url
        else DEFAULT + " (not pinned)"
    )
    default_resync = PhonesSettings().resync_interval
    src["resync_interval"] = (
        f"default {default_resync:.0f} s"
        if settings.resync_interval == default_resync
        else "operator config phones.resync_interval"
    )
    pem = ca_pem(settings.ca_file)
    src["ca"] = "operator config phones.ca_file/ca_url" if pem or settings.ca_url else "none"
    src["voicemail"] = (
        "operator config phones.voicemail_number" if settings.voicemail_number else "none"
    )
    context: dict[str, Any] = {
        "file": request.file,
        "mac": phone.mac,
        "family": family,
        "account": account,
        "coders": coders,
        "ntp": ntp,
        "tz": tz,
        "stun": stun,
        "turn": turn,
        "tls": tls,
        "srtp": srtp,
        "transport_code": TRANSPORT.get(vendor, {}).get(transport, ""),
        "admin_password": admin,
        "firmware_url": firmware,
        "provisioning_url": settings.provisioning_url,
        "resync": int(settings.resync_interval),
        "ca_pem": pem,
        "ca_url": settings.ca_url,
        "country": country,
        "language": language,
        "voicemail": settings.voicemail_number,
    }
    source = key_source if key_source is not None else OperatorKeys(settings.keys)
    if pbx is not None:  # the PBX's favourites fill the positions after the operator's keys
        source = FavouriteKeys(source, pbx)
    keys = source.keys(phone)
    context["keys"] = keys
    src["keys"] = (
        source.source(phone)
        if isinstance(source, (OperatorKeys, FavouriteKeys))
        else type(source).__name__
    )
    node, src["dial_plan"] = pbx.node_for(phone) if pbx is not None else (None, "none")
    context["node"] = node
    _dial_plan(context, vendor, node.rewrites() if node is not None else [])
    context["vendor_keys"] = vendor_keys(vendor, keys, account.domain or account.registrar)
    # PEM text in an XML attribute keeps its line breaks only as character references.
    context["ca_pem_attr"] = Markup("&#10;").join(escape(line) for line in pem.splitlines())
    _vendor_values(context, vendor, family, coders, tz, country, language)
    return context, src


def _dial_plan(context: dict[str, Any], vendor: Vendor, rules: list[tuple[str, str]]) -> None:
    """``dial_plan``: the PBX node's prefixes in the vendor's words (empty: none written;
    :mod:`provd.phones.regional` names each setting's source)."""
    value: Any = ""
    if rules and vendor is Vendor.YEALINK:
        value = regional.yealink_dial_plan(rules)
    elif rules and vendor is Vendor.SNOM:
        value = regional.snom_dial_plan(rules)
    elif rules and vendor is Vendor.GRANDSTREAM:
        value = regional.grandstream_dial_plan(rules)
    elif rules and vendor is Vendor.POLY:
        value = regional.poly_dial_plan(rules)
    context["dial_plan"] = value


# Function key encodings per vendor.
# Yealink linekey.N.type: 15 line, 16 BLF, 13 speed dial (phones.md; Yealink admin guide).
_YEALINK_KEY = {"line": 15, "blf": 16, "speed": 13}
# Grandstream MPK block P23000 + 5 (n-1): mode, account, label, value (wazo-provd-plugins
# wazo_grandstream/common/common.py, _add_mpk and FUNCKEY_TYPES).
_GRANDSTREAM_KEY = {"line": "Line", "blf": "BLF", "speed": "SpeedDial"}


def vendor_keys(vendor: Vendor, keys: tuple[Key, ...], domain: str) -> list[dict[str, Any]]:
    """Each key in the vendor's own words, numbered from 1."""
    out: list[dict[str, Any]] = []
    for n, key in enumerate(keys, 1):
        entry: dict[str, Any] = {"n": n, "label": key.label or key.target, "target": key.target}
        if vendor is Vendor.YEALINK:
            entry["type"] = _YEALINK_KEY[key.kind]
            entry["value"] = key.target
        elif vendor is Vendor.SNOM:
            # Snom fkey values: "line", "blf <sip:user@domain>", "speed <number>" (phones.md)
            entry["value"] = {
                "line": "line",
                "blf": f"blf <sip:{key.target}@{domain}>",
                "speed": f"speed {key.target}",
            }[key.kind]
        elif vendor is Vendor.GRANDSTREAM:
            entry["base"] = 23000 + (n - 1) * 5
            entry["type"] = _GRANDSTREAM_KEY[key.kind]
        elif vendor is Vendor.FANVIL:
            # Fanvil DSS key type 1 (memory key) "<number>@<line>/ba" BLF, "/f" speed dial;
            # type 2 line key (wazo-provd-plugins wazo_fanvil/common/common.py).
            entry["type"] = 2 if key.kind == "line" else 1
            entry["value"] = {
                "line": "SIP1",
                "blf": f"{key.target}@1/ba",
                "speed": f"{key.target}@1/f",
            }[key.kind]
        elif vendor is Vendor.POLY:
            if key.kind == "line":
                continue  # line keys are a count: reg.1.lineKeys
            entry["n"] = len(out) + 1
            entry["address"] = f"{key.target}@{domain}" if key.kind == "blf" else key.target
            entry["type"] = "normal" if key.kind == "blf" else "automata"
        else:
            continue  # Gigaset bases have no programmable keys
        out.append(entry)
    return out


def _vendor_values(
    context: dict[str, Any],
    vendor: Vendor,
    family: str,
    coders: tuple[str, ...],
    tz: timezones.ZoneRules,
    country: str,
    language: str,
) -> None:
    if vendor is Vendor.YEALINK:
        context["codecs"] = codecs.priorities(coders, codecs.YEALINK, codecs.YEALINK_ALL)
        context["time"] = timezones.yealink(tz)
        context["lang"] = regional.YEALINK_LANGUAGE.get(language, "")
        context["tones"] = regional.YEALINK_TONES.get(country, "")
    elif vendor is Vendor.SNOM:
        names = [*codecs.vendor_codecs(coders, codecs.SNOM), "telephone-event"]
        context["codec_list"] = ",".join(names)
        context["time"] = timezones.snom(tz, country)
        context["lang"] = regional.SNOM_LANGUAGE.get(language, "")
        context["tones"] = regional.SNOM_TONES.get(country, "")
    elif vendor is Vendor.GRANDSTREAM:
        opus = families.GRANDSTREAM_OPUS.get(family, 123)
        context["codec_slots"] = codecs.grandstream_slots(coders, opus)
        context["time"] = timezones.grandstream(tz)
        context["lang"] = language if language in regional.GRANDSTREAM_LANGUAGE else ""
        context["tones"] = regional.grandstream_tones(country)
    elif vendor is Vendor.FANVIL:
        context["codec_list"] = ",".join(codecs.vendor_codecs(coders, codecs.FANVIL))
        context["time"] = timezones.fanvil(tz)
        context["lang"] = regional.FANVIL_LANGUAGE.get(language, "")
        context["tones"] = regional.FANVIL_TONES.get(country, "")
    elif vendor is Vendor.POLY:
        context["codecs"] = codecs.priorities(coders, codecs.POLY, codecs.POLY_ALL)
        context["time"] = timezones.poly(tz)
        context["lang"] = regional.POLY_LANGUAGE.get(language, "")
        context["tones"] = regional.poly_tones(country)
    elif vendor is Vendor.GIGASET:
        context["vocoders"] = codecs.gigaset_vocoders(coders)
        context["vocoder_names"] = ",".join(codecs.vendor_codecs(coders, codecs.GIGASET_NX70))
        # N510/N720: IP protocol number (17 UDP in the N720 template, 6 TCP). No TLS value
        # is documented for these bases: TLS is sent as TCP (see README, Gigaset).
        context["legacy_transport"] = 6
        context["tz_code"] = f"0x{timezones.gigaset_code(tz):x}"
        context["tz_name"] = timezones.gigaset_nx70_zone(tz)
        context["tones"] = (
            regional.GIGASET_NX70_TONES.get(country, "Retail")
            if family == "nx70"
            else regional.GIGASET_TONE_CODE.get(country, "")
        )

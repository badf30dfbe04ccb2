"""Who is asking, for what: vendor, model, firmware and MAC from a request.

A phone names itself twice: by its User-Agent and by the file it asks for (phones.md, "How a
phone finds provd"). Neither is enough alone: ``<mac>.cfg`` is asked for by Yealink, Fanvil
and Poly alike, and many phones send no MAC in their User-Agent. So :func:`identify`
decides the vendor by path shape first, then by User-Agent, then by the MAC's OUI, and
refuses a request whose User-Agent and path carry different MACs.

Error contract: :func:`parse_user_agent`, :func:`parse_path` and :func:`vendor_for_oui`
never raise on any string; :func:`identify` raises only :class:`IdentifyError` subclasses,
each carrying the HTTP status the server should answer with.
"""

from __future__ import annotations

import enum
import re

from attrs import frozen

_MAC_RE = re.compile(r"[0-9a-f]{12}")


class Vendor(enum.StrEnum):
    """Phone vendors provd provisions."""

    YEALINK = "yealink"
    SNOM = "snom"
    GRANDSTREAM = "grandstream"
    FANVIL = "fanvil"
    POLY = "poly"
    GIGASET = "gigaset"


#: OUIs (first 6 hex digits of the MAC) per vendor: phones.md plus a few seen in the field.
OUIS: dict[str, Vendor] = {
    "001565": Vendor.YEALINK,
    "805ec0": Vendor.YEALINK,
    "249ad8": Vendor.YEALINK,
    "44dbd2": Vendor.YEALINK,
    "000413": Vendor.SNOM,
    "000b82": Vendor.GRANDSTREAM,
    "c074ad": Vendor.GRANDSTREAM,
    "ec74d7": Vendor.GRANDSTREAM,
    "0c383e": Vendor.FANVIL,
    "0ca8a7": Vendor.FANVIL,
    "0004f2": Vendor.POLY,
    "64167f": Vendor.POLY,
    "482567": Vendor.POLY,
    "7c2f80": Vendor.GIGASET,
    "589ec6": Vendor.GIGASET,
}

#: Sub-folders phones are commonly pointed at (case-insensitive), and the vendor each implies.
FOLDERS: dict[str, Vendor] = {
    "yealink": Vendor.YEALINK,
    "snom": Vendor.SNOM,
    "grandstream": Vendor.GRANDSTREAM,
    "fanvil": Vendor.FANVIL,
    "poly": Vendor.POLY,
    "polycom": Vendor.POLY,
    "gigaset": Vendor.GIGASET,
}


class Kind(enum.StrEnum):
    """What a requested file is, which selects the template."""

    COMMON = "common"  #: model-common file: no per-phone data, served to anyone authorised
    PHONE = "phone"  #: per-phone configuration
    MASTER = "master"  #: Poly master file (``000000000000.cfg`` or ``<mac>.cfg``)
    USER = "user"  #: Poly ``<mac>-user.cfg``


def normalize_mac(raw: str) -> str | None:
    """12 lowercase hex digits from a MAC with or without ``:``/``-`` separators, or None."""
    if not isinstance(raw, str):
        return None
    text = raw.strip().lower().replace(":", "").replace("-", "")
    if not _MAC_RE.fullmatch(text) or text == "000000000000":
        return None
    return text


def vendor_for_oui(mac: str) -> Vendor | None:
    """The vendor owning ``mac``'s OUI, or None (also for an invalid MAC)."""
    norm = normalize_mac(mac)
    return OUIS.get(norm[:6]) if norm else None


# --- User-Agent ----------------------------------------------------------------------------


@frozen
class UserAgentInfo:
    """What a User-Agent says: vendor, model, firmware and, if sent, the MAC (normalised)."""

    vendor: Vendor
    model: str
    firmware: str
    mac: str | None = None


_MAC_TEXT = r"[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5}|[0-9A-Fa-f]{12}"

# "Yealink SIP-T46G 28.72.0.1 00:15:65:4a:a9:37", "Yealink SIP VP-T49G 51.80.0.10 ...",
# "Yealink W60B 77.81.0.35 80:5e:c0:09:ab:dc", "Yealink-T46G 28.71.0.81 28.1.0.128.0.0.0",
# and the VP59 (Android based), which separates "SIP" and the model by a space:
# "Yealink SIP VP59 91.283.0.35 80:5e:c0:7a:11:22"
_YEALINK = re.compile(
    r"^yealink(?:\s+SIP(?:\s+VP)?-|\s+SIP\s+(?=VP\d)|-|\s+)(?P<model>[A-Za-z0-9_]+(?:-[A-Za-z0-9_]+)*)"
    rf"\s+(?P<fw>\d+(?:\.\d+)+)(?:\s+(?P<mac>{_MAC_TEXT}))?(?:\s.*)?$",
    re.IGNORECASE,
)
# "Mozilla/4.0 (compatible; snomD785-SIP 10.1.33.33 2010.12-00004-g9ba52f5 000413922D24 ...)"
_SNOM = re.compile(
    r"\bsnom(?P<model>[A-Za-z0-9]+)(?:-SIP\s+|/)(?P<fw>\d+(?:\.\d+)+)(?P<rest>[^\n]*)",
    re.IGNORECASE,
)
_SNOM_MAC = re.compile(r"(?<![0-9A-Fa-f])([0-9A-Fa-f]{12})(?![0-9A-Fa-f])")
# "Grandstream Model HW GXP2170 SW 1.0.11.3 DevId c074ad123456",
# "Grandstream Model HW GXP2200 V2.2A SW 1.0.1.33 DevId 000b82462d97"
_GRANDSTREAM = re.compile(
    r"^Grandstream\s+Model\s+HW\s+(?P<model>\S+)(?:\s+V\S+)?\s+SW\s+(?P<fw>\S+)"
    r"(?:\s+DevId\s+(?P<mac>[0-9A-Fa-f]{12}))?",
    re.IGNORECASE,
)
# Older firmware: "Grandstream GXP1400 1.0.4.13"
_GRANDSTREAM_OLD = re.compile(
    r"^Grandstream\s+(?P<model>[A-Z]{2,}[A-Za-z0-9_-]*)\s+(?P<fw>\d+(?:\.\d+)+)", re.IGNORECASE
)
# "Fanvil X5U-V2 2.12.1 0c383e0a1b2c", "Fanvil X4U Pro 2.4.2 0c383e112233"
_FANVIL = re.compile(
    r"^Fanvil\s+(?P<model>[A-Za-z][A-Za-z0-9]*(?:-[A-Za-z0-9]+)*(?:\s?Pro)?)"
    r"\s+(?P<fw>\d+(?:\.\d+)+)(?:\s+(?P<mac>[0-9A-Fa-f]{12}))?",
    re.IGNORECASE,
)
# "FileTransport PolycomVVX-VVX_410-UA/5.9.5.0614 Type/Application"
_POLY = re.compile(
    r"^FileTransport\s+Poly(?:com)?\w*?-(?P<model>\w+?)-UA/(?P<fw>\d+(?:\.\d+)*)", re.IGNORECASE
)
# "Gigaset N510 IP PRO/42.250.00.000.000;7C2F80D2E3F4", and without brand, MAC or both
# (wazo-provd-plugins ``wazo_gigaset/common/common.py`` lists them as seen in the field):
# "N720-DM-PRO/70.040.00.000.000", "N510 IP PRO/42.245.00.000.000",
# "Gigaset N870 IP PRO/83.V2.11.0+build.a546b91;7C2F80E0D605"
_GIGASET = re.compile(
    r'^"?(?P<brand>Gigaset\s+)?(?P<model>[A-Za-z0-9][\w -]*?)/(?P<fw>[^;/\s"]+)'
    r'(?:;(?P<mac>[0-9A-Fa-f]{12})?)?(?:;Handset=\d+)?"?$',
)
# Gigaset base models are "N" + three digits, optionally " IP PRO" / "-DM-PRO" etc.
_GIGASET_MODEL = re.compile(r"N\d{3}(?:[ -][A-Z]{1,4})*(?:[ -]PRO)?E?")


def parse_user_agent(ua: str | None) -> UserAgentInfo | None:
    """Vendor, model, firmware and MAC from a phone's User-Agent, or None if not a phone we know.

    Never raises.
    """
    if not isinstance(ua, str) or not ua or len(ua) > 512:
        return None
    ua = ua.strip()
    if m := _YEALINK.match(ua):
        return UserAgentInfo(Vendor.YEALINK, m["model"], m["fw"], _mac(m["mac"]))
    if m := _GRANDSTREAM.match(ua):
        return UserAgentInfo(Vendor.GRANDSTREAM, m["model"], m["fw"], _mac(m["mac"]))
    if m := _GRANDSTREAM_OLD.match(ua):
        return UserAgentInfo(Vendor.GRANDSTREAM, m["model"], m["fw"])
    if m := _FANVIL.match(ua):
        return UserAgentInfo(Vendor.FANVIL, m["model"], m["fw"], _mac(m["mac"]))
    if m := _POLY.match(ua):
        return UserAgentInfo(Vendor.POLY, m["model"], m["fw"])
    if m := _SNOM.search(ua):
        macs = _SNOM_MAC.findall(m["rest"])
        return UserAgentInfo(Vendor.SNOM, m["model"], m["fw"], _mac(macs[-1]) if macs else None)
    if m := _GIGASET.match(ua):
        mac = _mac(m["mac"])
        model = m["model"].strip().replace("-", " ")
        # Without the brand the shape is too generic; accept it only with a Gigaset MAC or
        # a Gigaset base model name.
        if (
            m["brand"]
            or (mac is not None and OUIS.get(mac[:6]) is Vendor.GIGASET)
            or _GIGASET_MODEL.fullmatch(m["model"].strip())
        ):
            return UserAgentInfo(Vendor.GIGASET, model, m["fw"], mac)
    return None


def _mac(raw: str | None) -> str | None:
    return normalize_mac(raw) if raw else None


# --- Path ----------------------------------------------------------------------------------


@frozen
class FileRequest:
    """A file name phones really request, and which vendors could be asking for it.

    Attributes:
        name: the file name as requested (no folder).
        candidates: ``(vendor, kind)`` pairs this path shape fits, most specific first.
        mac: the MAC in the file name (normalised), or None for model-common files.
        model: a model hint from the file name (``snomD785`` -> ``D785``), or None.
        folder: the vendor sub-folder it was requested under, or None at the root.
    """

    name: str
    candidates: tuple[tuple[Vendor, Kind], ...]
    mac: str | None = None
    model: str | None = None
    folder: Vendor | None = None


_M = r"(?P<mac>[0-9A-Fa-f]{12})"
# (regex, candidates, model group or None); order matters: the first match wins.
_FILES: list[tuple[re.Pattern[str], tuple[tuple[Vendor, Kind], ...]]] = [
    (re.compile(r"000000000000\.cfg"), ((Vendor.POLY, Kind.MASTER),)),
    (re.compile(r"common\.cfg", re.I), ((Vendor.POLY, Kind.COMMON),)),
    (re.compile(rf"{_M}-user\.cfg", re.I), ((Vendor.POLY, Kind.USER),)),
    (re.compile(r"y(?P<model>\d{12})\.cfg", re.I), ((Vendor.YEALINK, Kind.COMMON),)),
    (
        re.compile(rf"{_M}\.cfg", re.I),
        ((Vendor.YEALINK, Kind.PHONE), (Vendor.FANVIL, Kind.PHONE), (Vendor.POLY, Kind.MASTER)),
    ),
    (
        re.compile(r"f0(?P<model>[A-Za-z0-9-]+?)hw\d+(?:\.\d+)*\.cfg", re.I),
        ((Vendor.FANVIL, Kind.COMMON),),
    ),
    (re.compile(r"F0V00(?P<model>[A-Za-z0-9]{7})\.cfg", re.I), ((Vendor.FANVIL, Kind.COMMON),)),
    # Fanvil 2.x model-common names seen in real boots (phones.md, corrections):
    # "F0000X600000.cfg", "F0V5UV200000.cfg" (F0 + ten characters naming model/hardware)
    # and "fanvil_x4u_v2_hwv2_0.txt".
    (re.compile(r"F0[A-Za-z0-9]{10}\.cfg", re.I), ((Vendor.FANVIL, Kind.COMMON),)),
    (re.compile(r"fanvil_[a-z0-9_]+\.txt", re.I), ((Vendor.FANVIL, Kind.COMMON),)),
    (re.compile(rf"snom(?P<model>[A-Za-z0-9]+)-{_M}\.htm", re.I), ((Vendor.SNOM, Kind.PHONE),)),
    (re.compile(r"snom(?P<model>[A-Za-z0-9]+)\.htm", re.I), ((Vendor.SNOM, Kind.COMMON),)),
    (re.compile(rf"cfg{_M}(?:\.xml)?", re.I), ((Vendor.GRANDSTREAM, Kind.PHONE),)),
    (re.compile(rf"{_M}\.xml", re.I), ((Vendor.SNOM, Kind.PHONE), (Vendor.GIGASET, Kind.PHONE))),
]

_MAX_PATH = 256


def parse_path(path: str | None) -> FileRequest | None:
    """The file a phone asks for, at the root or under one vendor sub-folder, or None.

    Rejects path traversal, empty or odd segments and names no phone requests. Never raises.
    """
    if not isinstance(path, str) or not path or len(path) > _MAX_PATH:
        return None
    if any(ch in path for ch in ("\\", "\x00", "%", "?", "#")) or not path.startswith("/"):
        return None
    parts = path[1:].split("/")
    if any(p in ("", ".", "..") for p in parts) or len(parts) > 2:
        return None
    folder: Vendor | None = None
    if len(parts) == 2:
        folder = FOLDERS.get(parts[0].lower())
        if folder is None:
            return None
    name = parts[-1]
    for regex, candidates in _FILES:
        m = regex.fullmatch(name)
        if m is None:
            continue
        groups = m.groupdict()
        mac = None
        if groups.get("mac") is not None:
            mac = normalize_mac(groups["mac"])
            if mac is None:
                return None
        if folder is not None:
            candidates = tuple(c for c in candidates if c[0] is folder)
            if not candidates:
                return None
        model = groups.get("model")
        if candidates[0][0] is Vendor.FANVIL and model and name.upper().startswith("F0V00"):
            model = model.rstrip("0")
        if candidates[0][0] is Vendor.YEALINK and model:
            model = None  # the number is Yealink's model code, not a model name
        return FileRequest(name=name, candidates=candidates, mac=mac, model=model, folder=folder)
    return None


# --- Both ----------------------------------------------------------------------------------


class IdentifyError(Exception):
    """A request provd won't serve; :attr:`status` is the HTTP status to answer with."""

    status = 404


class NotRecognised(IdentifyError):
    """The path is no file we serve, or the vendor can't be told apart (404)."""

    status = 404


class MacMismatch(IdentifyError):
    """User-Agent and path carry different MACs: someone asks for another phone's file (403)."""

    status = 403


@frozen
class Identification:
    """A request we will answer: which vendor's which file, for which phone.

    Attributes:
        vendor: the phone's vendor.
        kind: the file kind (selects the template).
        file: the requested file name.
        mac: the phone's MAC: from the path, else from the User-Agent, else None.
        per_phone: True when the file is per-phone (its MAC came from the path).
        model: from the User-Agent, else from the file name, else None.
        firmware: from the User-Agent, or None.
    """

    vendor: Vendor
    kind: Kind
    file: str
    mac: str | None = None
    per_phone: bool = False
    model: str | None = None
    firmware: str | None = None


def identify(path: str | None, user_agent: str | None) -> Identification:
    """Decide who asks for what.

    Args:
        path: the request path (already percent-decoded, no query string).
        user_agent: the User-Agent header, or None.

    Returns:
        The :class:`Identification` of the request.

    Raises:
        NotRecognised: the path is no file we serve, or the vendor stays ambiguous.
        MacMismatch: both path and User-Agent carry a MAC and they differ.
    """
    request = parse_path(path)
    if request is None:
        raise NotRecognised(f"not a provisioning file: {path!r}")
    ua = parse_user_agent(user_agent)
    if request.mac and ua and ua.mac and ua.mac != request.mac:
        raise MacMismatch(f"User-Agent MAC {ua.mac} asks for {request.mac}'s file")
    vendors = [vendor for vendor, _ in request.candidates]
    if len(vendors) == 1:
        vendor = vendors[0]
    elif ua is not None and ua.vendor in vendors:
        vendor = ua.vendor
    else:
        oui_vendor = vendor_for_oui(request.mac or (ua.mac if ua else None) or "")
        if oui_vendor not in vendors:
            raise NotRecognised(f"cannot tell which vendor asks for {request.name!r}")
        vendor = oui_vendor  # type: ignore[assignment]
    kind = dict(request.candidates)[vendor]
    same_vendor_ua = ua if ua is not None and ua.vendor is vendor else None
    return Identification(
        vendor=vendor,
        kind=kind,
        file=request.name,
        mac=request.mac or (same_vendor_ua.mac if same_vendor_ua else None),
        per_phone=request.mac is not None,
        model=(same_vendor_ua.model if same_vendor_ua else None) or request.model,
        firmware=same_vendor_ua.firmware if same_vendor_ua else None,
    )

"""Country, language and tone scheme: derived from the time zone, overridable by the operator.

Devices sends an IANA zone (``NTP.tz``) but no country or language. The zone's country comes
from the time-zone database's own ``zone.tab`` (the system's, else the ``tzdata`` package's);
the language is that country's main language. The operator can override both
(``phones.country``, ``phones.language``). Each vendor then wants its own words for the
language and for the tone scheme; the tables below name their sources. A country or language
a vendor's table lacks gives ``""`` and the template leaves the phone's default.
"""

from __future__ import annotations

import functools
import zoneinfo
from importlib import resources
from pathlib import Path
from typing import Any

#: Main language (ISO 639-1) per country (ISO 3166 alpha-2), for the countries whose
#: language at least one vendor table below knows.
COUNTRY_LANGUAGE: dict[str, str] = {
    "DE": "de", "AT": "de", "CH": "de", "LI": "de", "LU": "fr", "BE": "nl", "NL": "nl",
    "FR": "fr", "MC": "fr", "IT": "it", "SM": "it", "VA": "it", "ES": "es", "AD": "es",
    "MX": "es", "AR": "es", "CL": "es", "CO": "es", "PE": "es", "PT": "pt", "BR": "pt",
    "GB": "en", "IE": "en", "US": "en", "CA": "en", "AU": "en", "NZ": "en", "ZA": "en",
    "IN": "en", "SE": "sv", "NO": "no", "DK": "da", "FI": "fi", "PL": "pl", "CZ": "cs",
    "SK": "sk", "HU": "hu", "RU": "ru", "TR": "tr", "GR": "el",
}  # fmt: skip


def _zone_tab_text() -> str:
    for base in zoneinfo.TZPATH:
        path = Path(base) / "zone.tab"
        if path.is_file():
            return path.read_text(encoding="utf-8")
    try:  # the tzdata package (non-Linux installs)
        return resources.files("tzdata").joinpath("zoneinfo", "zone.tab").read_text("utf-8")
    except (ModuleNotFoundError, FileNotFoundError, OSError):  # pragma: no cover
        return ""


@functools.cache
def _zone_countries() -> dict[str, str]:
    table: dict[str, str] = {}
    for line in _zone_tab_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) >= 3:
            table[parts[2].strip()] = parts[0].strip().upper()
    return table


def country_of(zone: str) -> str:
    """The ISO 3166 alpha-2 country of IANA ``zone`` (``"DE"`` for Europe/Berlin), or ``""``."""
    return _zone_countries().get(zone, "")


def language_of(country: str) -> str:
    """The main language of ``country`` (ISO 639-1), ``"en"`` when unknown."""
    return COUNTRY_LANGUAGE.get(country.upper(), "en")


# --- vendor words ------------------------------------------------------------------------
# Yealink: ``lang.gui`` / ``lang.wui`` (Yealink T4x/T5x admin guide, "Language") and
# ``voice.tone.country`` (admin guide, "Tones": Custom, Australia, Austria, Brazil, Belgium,
# China, Czech, Denmark, Finland, France, Germany, Great Britain, Greece, Hungary, ...).
YEALINK_LANGUAGE = {
    "en": "English", "de": "German", "fr": "French", "it": "Italian", "es": "Spanish",
    "nl": "Dutch", "pt": "Portuguese", "pl": "Polish", "tr": "Turkish", "ru": "Russian",
    "sv": "Swedish", "cs": "Czech",
}  # fmt: skip
YEALINK_TONES = {
    "AU": "Australia", "AT": "Austria", "BR": "Brazil", "BE": "Belgium", "CN": "China",
    "CZ": "Czech", "DK": "Denmark", "FI": "Finland", "FR": "France", "DE": "Germany",
    "GB": "Great Britain", "GR": "Greece", "HU": "Hungary", "IN": "India", "IT": "Italy",
    "JP": "Japan", "MX": "Mexico", "NZ": "New Zealand", "NL": "Netherlands", "NO": "Norway",
    "PT": "Portugal", "ES": "Spain", "CH": "Switzerland", "SE": "Sweden", "RU": "Russia",
    "US": "United States", "CL": "Chile",
}  # fmt: skip
# Snom: ``language`` / ``web_language`` names (wazo-provd-plugins ``wazo_snom`` ``_LOCALE``)
# and ``tone_scheme`` (Snom wiki, tone_scheme: AUS AUT CHN DNK FRA GER GBR IND ITA JPN MEX
# NLD NOR NZL ESP SWE SWI USA).
SNOM_LANGUAGE = {
    "en": "English", "de": "Deutsch", "fr": "Français", "es": "Espanol", "it": "Italiano",
    "nl": "Nederlands",
}  # fmt: skip
SNOM_TONES = {
    "AU": "AUS", "AT": "AUT", "CN": "CHN", "DK": "DNK", "FR": "FRA", "DE": "GER",
    "GB": "GBR", "IN": "IND", "IT": "ITA", "JP": "JPN", "MX": "MEX", "NL": "NLD",
    "NO": "NOR", "NZ": "NZL", "ES": "ESP", "SE": "SWE", "CH": "SWI", "US": "USA",
}  # fmt: skip
# Grandstream ``P1362`` takes the two-letter language (wazo-provd-plugins
# ``wazo_grandstream/common/common.py`` ``LOCALE``); its tones are free tone strings per
# signal (P4000...), which provd leaves at the phone's defaults.
GRANDSTREAM_LANGUAGE = frozenset({"en", "de", "fr", "es", "it", "nl"})
# Poly ``lcl.ml.lang`` (Polycom UC Software admin guide, "Multilingual").
POLY_LANGUAGE = {
    "en": "English_United_States", "de": "German_Germany", "fr": "French_France",
    "es": "Spanish_Spain", "it": "Italian_Italy", "nl": "Dutch_Netherlands",
    "pt": "Portuguese_Portugal", "pl": "Polish_Poland", "ru": "Russian_Russia",
    "sv": "Swedish_Sweden", "no": "Norwegian_Norway", "da": "Danish_Denmark",
}  # fmt: skip
# Gigaset N510/N720 ``BS_AE_SwConfig.ucCountryCodeTone`` and N670/N870
# ``Telephony.0.ToneScheme`` (wazo-provd-plugins ``wazo_gigaset/common/common.py`` and
# ``Nx70_83_v2_62_1/common.py``, ``_LOCALE``).
GIGASET_TONE_CODE = {"DE": "0", "US": "1", "ES": "6", "FR": "7", "CA": "1"}
GIGASET_NX70_TONES = {"DE": "Germany", "ES": "Spain", "FR": "France", "US": "Retail"}

# --- call-progress tones -----------------------------------------------------------------
# Grandstream and Poly have no country switch for tones: each signal is a tone description.
# The national values below are the ones ITU-T E.180 Supplement 2 ("Various tones used in
# national networks") lists; a country not in the table leaves the phone's own tones.


def _t(freqs: tuple[int, ...], on: int = 0, off: int = 0) -> dict[str, Any]:
    return {"freqs": freqs, "on": on, "off": off}


#: country -> signal -> frequencies (Hz) and cadence (ms on/off; 0/0 = continuous).
CALL_PROGRESS: dict[str, dict[str, dict[str, Any]]] = {
    "DE": {"dial": _t((425,)), "ringback": _t((425,), 1000, 4000),
           "busy": _t((425,), 480, 480), "reorder": _t((425,), 240, 240)},
    "AT": {"dial": _t((420,)), "ringback": _t((420,), 1000, 5000),
           "busy": _t((420,), 400, 400), "reorder": _t((420,), 200, 200)},
    "CH": {"dial": _t((425,)), "ringback": _t((425,), 1000, 4000),
           "busy": _t((425,), 500, 500), "reorder": _t((425,), 200, 200)},
    "NL": {"dial": _t((425,)), "ringback": _t((425,), 1000, 4000),
           "busy": _t((425,), 500, 500), "reorder": _t((425,), 250, 250)},
    "BE": {"dial": _t((425,)), "ringback": _t((425,), 1000, 3000),
           "busy": _t((425,), 500, 500), "reorder": _t((425,), 167, 167)},
    "FR": {"dial": _t((440,)), "ringback": _t((440,), 1500, 3500),
           "busy": _t((440,), 500, 500), "reorder": _t((440,), 250, 250)},
    "US": {"dial": _t((350, 440)), "ringback": _t((440, 480), 2000, 4000),
           "busy": _t((480, 620), 500, 500), "reorder": _t((480, 620), 250, 250)},
    "CA": {"dial": _t((350, 440)), "ringback": _t((440, 480), 2000, 4000),
           "busy": _t((480, 620), 500, 500), "reorder": _t((480, 620), 250, 250)},
}  # fmt: skip

# Grandstream "Call Progress Tones" P-values (Grandstream GXP/GRP per-model config templates,
# "Dial Tone" P4000, "Ring Back Tone" P4001, "Busy Tone" P4002, "Reorder Tone" P4003), each
# "f1=<Hz>[,f2=<Hz>][,c=<on>/<off>];" with the cadence in units of 10 ms.
GRANDSTREAM_TONE_P = {"dial": "P4000", "ringback": "P4001", "busy": "P4002", "reorder": "P4003"}


def grandstream_tones(country: str) -> list[tuple[str, str]]:
    """``[(P-value, tone string)]`` for ``country``'s tones, ``[]`` when not in the table."""
    out: list[tuple[str, str]] = []
    for signal, tone in CALL_PROGRESS.get(country, {}).items():
        parts = [f"f{n}={hz}" for n, hz in enumerate(tone["freqs"], 1)]
        if tone["on"]:
            parts.append(f"c={tone['on'] // 10}/{tone['off'] // 10}")
        out.append((GRANDSTREAM_TONE_P[signal], ",".join(parts) + ";"))
    return out


# Poly chord sets (Polycom UC Software admin guide, "<chord/>": tone.chord.callProg.x.freq.y
# 0-1600 Hz for y = 1..6, .onDur / .offDur in ms, 0 = infinite; callProg chord names
# dialTone, busyTone, ringback, reorder). An unused second component is set to 0 so the
# phone's default (e.g. 440 Hz in the North American dial tone) does not stay mixed in.
POLY_CHORD = {"dial": "dialTone", "ringback": "ringback", "busy": "busyTone", "reorder": "reorder"}


def poly_tones(country: str) -> list[tuple[str, str]]:
    """``[(attribute, value)]`` of Poly ``tone.chord.callProg.*`` items for ``country``."""
    out: list[tuple[str, str]] = []
    for signal, tone in CALL_PROGRESS.get(country, {}).items():
        base = f"tone.chord.callProg.{POLY_CHORD[signal]}"
        freqs = (*tone["freqs"], 0)[:2]
        out += [(f"{base}.freq.{n}", str(hz)) for n, hz in enumerate(freqs, 1)]
        out += [(f"{base}.onDur", str(tone["on"])), (f"{base}.offDur", str(tone["off"]))]
    return out


# Fanvil: ``Default Language`` and ``Select Your Tone`` in the text file are the XML
# ``<phone><display><DefaultLanguage>`` and ``<mm><SelectYourTone>`` items (wazo-provd-plugins
# ``wazo_fanvil/common/templates/base-new.tpl``; the text file spells XML names with spaces,
# as ``SNTP Server`` for ``<SNTPServer>``). Languages: the two/three-letter codes of
# ``_NEW_SUPPORTED_LANGUAGES`` (Czech is ``cz``, Slovak ``slo``); tone numbers: ``_COUNTRY``
# (``wazo_fanvil/common/common.py``).
FANVIL_LANGUAGE = {
    "en": "en", "de": "de", "fr": "fr", "it": "it", "es": "es", "nl": "nl", "pt": "pt",
    "pl": "pl", "ru": "ru", "tr": "tr", "cs": "cz", "sk": "slo",
}  # fmt: skip
FANVIL_TONES = {
    "DE": "2", "NL": "5", "US": "11", "GB": "13", "CA": "18", "IT": "21", "FR": "25", "ES": "33",
}  # fmt: skip


# --- dial plan from the PBX node's prefixes ----------------------------------------------
# The rules come from :meth:`provd.phones.pbx.NodeInfo.rewrites`: ``[("+49", "0"),
# ("+", "00")]`` turns an E.164 number (call lists, directories) into what the PBX wants
# dialled. Fanvil and Gigaset get none: no documented provisioning key for such a rewrite
# was found (Fanvil documents the Dial Peer web page but not its config-file items, and no
# `+` pattern; Gigaset publishes no item id for its local area codes). What was searched:
# README, "PBX data in phone files".


def yealink_dial_plan(rules: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """``[(prefix, replace)]`` for Yealink ``dialplan.replace.prefix.N`` /
    ``dialplan.replace.replace.N`` (Yealink SIP-T2x/T4x admin guide, "Dial Plan" and
    "Replace Rule": the prefix is a pattern for the whole number, ``.`` any string, ``( )``
    a group, ``$1`` the first group in the replacement, e.g. prefix ``001(xxx)45(xx)``,
    replace ``9001$145$2``; ``+`` is not a pattern character)."""
    return [(f"{prefix}(.)", f"{replace}$1") for prefix, replace in rules]


def snom_dial_plan(rules: list[tuple[str, str]]) -> str:
    """Snom ``user_dp_str`` (Snom wiki "Dial Plan - Regular Expressions": entries
    ``!pattern!result!``, separated by spaces, the first match wins; ``\\d`` is the
    registrar; example "To change the + to 00")."""
    entries = []
    for prefix, replace in rules:
        pattern = "^" + prefix.replace("+", "\\+") + "(.*)"
        entries.append(f"!{pattern}!sip:{replace}\\1@\\d!")
    return " ".join(entries)


#: Grandstream's factory dial plan (GRP26xx admin guide, "Dial Plan", default setting).
GRANDSTREAM_DEFAULT_DIAL_PLAN = ("x+", "\\+x+", "*x+", "*xx*x+")


def grandstream_dial_plan(rules: list[tuple[str, str]]) -> str:
    """Grandstream account-1 dial plan ``P290`` (GXP/GRP admin guides, "Dial Plan":
    ``<2=011>`` replaces a leading 2 with 011; ``\\`` escapes ``+``): the rewrites, then
    the factory alternatives, so every number dialled today still passes."""
    parts = [f"<{prefix.replace('+', chr(92) + '+')}={replace}>x+" for prefix, replace in rules]
    return "{ " + " | ".join([*parts, *GRANDSTREAM_DEFAULT_DIAL_PLAN]) + " }"


def poly_dial_plan(rules: list[tuple[str, str]]) -> str:
    """Poly ``dialplan.digitmap`` (Polycom UC Software admin guide, "Digit Map": ``RxRyR``
    replaces x with y, only ``*``, ``#``, ``+`` and digits between the second and third R;
    ``x.T`` any number, sent after the inter-digit timeout): the rewrites, then any number
    and star codes (the factory map is North American)."""
    parts = [f"R{prefix}R{replace}Rx.T" for prefix, replace in rules]
    return "|".join([*parts, "x.T", "*x.T"])

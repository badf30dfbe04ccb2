"""From the IANA zone Devices sends (``NTP.tz``) to each vendor's time-zone encoding.

Theory of operation: phones don't know IANA names; each wants a standard offset plus a
daylight-saving rule in its own words. We derive both from the real time-zone database
(``zoneinfo``): we find the zone's offset changes in the given year (day by day, then a
binary search to the second), call the change into the larger offset the DST *start* and
the change back the DST *end*, and describe each as "n-th (or last) weekday of a month at a
local wall-clock time". That covers both hemispheres and zones whose "standard" time is the
summer one in tzdata (Europe/Dublin): standard is simply the smaller offset. A zone that
changes offset only once in the year (a permanent change) has no DST.

The rules are those of the given year (the current one by default): render caches key on
the year, so a zone whose rules change is picked up at the turn of the year.

Unknown or missing zones fall back to UTC with ``fallback=True``; nothing here raises.
"""

from __future__ import annotations

import calendar
import functools
import re
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from attrs import frozen

#: The zone used when ``NTP.tz`` is missing or unknown.
FALLBACK_ZONE = "UTC"

_DAY = 86400
_ZONE_NAME = re.compile(r"[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+)*")


@frozen
class Change:
    """One DST change, as the local wall-clock time just before it happens.

    Attributes:
        month: 1..12.
        day: day of the month in the rules' year.
        weekday: ISO weekday, 1 = Monday .. 7 = Sunday.
        week: occurrence of that weekday in the month, 1..4, or 5 for "the last one".
        hour: 0..23, local time before the change (standard time for a start, DST for an end).
        minute: 0..59.
    """

    month: int
    day: int
    weekday: int
    week: int
    hour: int
    minute: int


@frozen
class ZoneRules:
    """A zone's standard offset and DST rule for one year.

    Attributes:
        name: the IANA name used (``"UTC"`` after a fallback).
        year: the year the rules were derived for.
        std_offset: standard offset east of UTC, in seconds.
        std_abbr: abbreviation in standard time (``"CET"``, ``"+0530"`` style if numeric).
        dst_offset: offset east of UTC during DST, in seconds, or None without DST.
        dst_abbr: abbreviation during DST, or None.
        start: when DST starts, or None.
        end: when DST ends, or None.
        fallback: True when the requested zone was missing or unknown.
    """

    name: str
    year: int
    std_offset: int
    std_abbr: str
    dst_offset: int | None = None
    dst_abbr: str | None = None
    start: Change | None = None
    end: Change | None = None
    fallback: bool = False

    @property
    def has_dst(self) -> bool:
        """Whether the zone observes daylight saving time in :attr:`year`."""
        return self.start is not None and self.end is not None and self.dst_offset is not None

    @property
    def dst_save(self) -> int:
        """Seconds added during DST (0 without DST)."""
        return (self.dst_offset - self.std_offset) if self.dst_offset is not None else 0


def zone_rules(name: str | None, year: int | None = None) -> ZoneRules:
    """Standard offset and DST rule of IANA zone ``name`` in ``year`` (default: this year).

    Never raises: a missing, malformed or unknown ``name`` gives UTC with ``fallback=True``.
    """
    if year is None:
        year = datetime.now(UTC).year
    return _zone_rules(name if isinstance(name, str) else "", year)


@functools.lru_cache(maxsize=512)
def _zone_rules(name: str, year: int) -> ZoneRules:
    tz = _load(name)
    if tz is None:
        return ZoneRules(
            name=FALLBACK_ZONE, year=year, std_offset=0, std_abbr="UTC", fallback=name != ""
        )
    changes = _transitions(tz, year)
    up = next((c for c in changes if c[2] > c[1]), None)
    down = next((c for c in changes if c[2] < c[1]), None)
    if up is None or down is None:
        # No DST this year (possibly one permanent change): use the year-end offset.
        end = datetime(year, 12, 31, 12, tzinfo=UTC).astimezone(tz)
        offset = int(end.utcoffset().total_seconds())  # type: ignore[union-attr]
        return ZoneRules(name=name, year=year, std_offset=offset, std_abbr=_abbr(tz, end))
    up_at, _, dst = up
    down_at, _, std = down
    return ZoneRules(
        name=name,
        year=year,
        std_offset=std,
        std_abbr=_abbr(tz, down_at + timedelta(seconds=1)),
        dst_offset=dst,
        dst_abbr=_abbr(tz, up_at + timedelta(seconds=1)),
        start=_change(up_at, up[1]),
        end=_change(down_at, down[1]),
    )


def _load(name: str) -> ZoneInfo | None:
    if not name or len(name) > 64 or not _ZONE_NAME.fullmatch(name):
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def _offset_at(tz: ZoneInfo, ts: int) -> int:
    return int(datetime.fromtimestamp(ts, tz).utcoffset().total_seconds())  # type: ignore[union-attr]


def _transitions(tz: ZoneInfo, year: int) -> list[tuple[datetime, int, int]]:
    """Offset changes whose local date falls in ``year``: (UTC instant, before, after)."""
    first = int(datetime(year, 1, 1, tzinfo=UTC).timestamp()) - _DAY
    last = int(datetime(year + 1, 1, 1, tzinfo=UTC).timestamp()) + _DAY
    found: list[tuple[datetime, int, int]] = []
    prev_ts, prev = first, _offset_at(tz, first)
    for ts in range(first + _DAY, last + 1, _DAY):
        cur = _offset_at(tz, ts)
        if cur != prev:
            lo, hi = prev_ts, ts  # offset(lo) == prev, offset(hi) != prev
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if _offset_at(tz, mid) == prev:
                    lo = mid
                else:
                    hi = mid
            instant = datetime.fromtimestamp(hi, UTC)
            if (instant + timedelta(seconds=prev)).year == year:
                found.append((instant, prev, cur))
        prev_ts, prev = ts, cur
    return found


def _abbr(tz: ZoneInfo, when: datetime) -> str:
    return when.astimezone(tz).tzname() or "UTC"


def _change(instant: datetime, offset_before: int) -> Change:
    local = instant + timedelta(seconds=offset_before)
    return Change(
        month=local.month,
        day=local.day,
        weekday=local.isoweekday(),
        week=_week_of(local.date()),
        hour=local.hour,
        minute=local.minute,
    )


def _week_of(day: date) -> int:
    if day.day + 7 > calendar.monthrange(day.year, day.month)[1]:
        return 5  # the last such weekday of the month: how rules like "last Sunday" read
    return (day.day - 1) // 7 + 1


def _hm(seconds: int, *, plus: bool = True) -> str:
    """``+1``, ``+5:30``, ``-3:30``, ``0``: the hour[:minute] offset notation phones use."""
    if seconds == 0:
        return "0"
    sign = "-" if seconds < 0 else ("+" if plus else "")
    hours, rest = divmod(abs(seconds), 3600)
    minutes = rest // 60
    return f"{sign}{hours}:{minutes:02d}" if minutes else f"{sign}{hours}"


# --- Yealink -------------------------------------------------------------------------------
# local_time.* (Yealink admin guide): time_zone "+1"/"+5:30"; summer_time 0 off, 1 on,
# 2 automatic (from the phone's own AutoDST table, which we don't rely on); dst_time_type
# 0 by date "M/D/H", 1 by week "M/W/D/H" with W 5 = last week and D 1 = Monday .. 7 = Sunday;
# offset_time in minutes.


def yealink_by_week(change: Change) -> str:
    """A Yealink week-based DST time: ``month/week/weekday/hour``."""
    return f"{change.month}/{change.week}/{change.weekday}/{change.hour}"


def yealink_by_date(change: Change) -> str:
    """A Yealink fixed-date DST time: ``month/day/hour`` (valid only for the rules' year)."""
    return f"{change.month}/{change.day}/{change.hour}"


#: IANA zone -> Yealink's own ``local_time.time_zone_name`` (Yealink T4x/T5x admin guide,
#: "Time Zone Name" list). Zones not listed get no name: the phone then shows the first
#: name of the offset, and the explicit ``summer_time`` rule below still applies.
YEALINK_ZONE_NAMES: dict[str, str] = {
    "Europe/Berlin": "Germany(Berlin)",
    "Europe/Paris": "France(Paris)",
    "Europe/Rome": "Italy(Rome)",
    "Europe/Madrid": "Spain(Madrid)",
    "Europe/Amsterdam": "Netherlands(Amsterdam)",
    "Europe/Vienna": "Austria(Vienna)",
    "Europe/Brussels": "Belgium(Brussels)",
    "Europe/Stockholm": "Sweden(Stockholm)",
    "Europe/Oslo": "Norway(Oslo)",
    "Europe/Warsaw": "Poland(Warsaw)",
    "Europe/London": "United Kingdom(London)",
    "Europe/Dublin": "Ireland(Dublin)",
    "Europe/Helsinki": "Finland(Helsinki)",
    "Europe/Athens": "Greece(Athens)",
    "Europe/Moscow": "Russia(Moscow)",
    "America/New_York": "United States-Eastern Time",
    "America/Chicago": "United States-Central Time",
    "America/Denver": "United States-Mountain Time",
    "America/Los_Angeles": "United States-Pacific Time",
    "America/Anchorage": "United States-Alaska Time",
    "Asia/Tokyo": "Japan(Tokyo)",
    "Asia/Shanghai": "China(Beijing)",
}


def yealink(rules: ZoneRules) -> dict[str, str]:
    """Yealink ``local_time.*`` settings, in file order.

    ``time_zone_name`` is Yealink's own name (:data:`YEALINK_ZONE_NAMES`), never the IANA
    name, which the phone does not know; unlisted zones get no name.
    """
    out = {"local_time.time_zone": _hm(rules.std_offset)}
    name = YEALINK_ZONE_NAMES.get(rules.name)
    if name is not None:
        out["local_time.time_zone_name"] = name
    out["local_time.summer_time"] = "1" if rules.has_dst else "0"
    if rules.has_dst:
        assert rules.start is not None and rules.end is not None
        out["local_time.dst_time_type"] = "1"
        out["local_time.start_time"] = yealink_by_week(rules.start)
        out["local_time.end_time"] = yealink_by_week(rules.end)
        out["local_time.offset_time"] = str(rules.dst_save // 60)
    return out


# --- Snom ----------------------------------------------------------------------------------
# Snom's ``timezone`` takes its own codes (GER+1, USA-5, ...) for which we found no complete
# table, so we send the offset-based settings instead: ``utc_offset`` in seconds and ``dst``
# as Snom documents it: "<save seconds> MM.WW.DD HH:MM:SS MM.WW.DD HH:MM:SS", WW 05 = last
# week, DD 01 = Monday .. 07 = Sunday.


def snom_dst(rules: ZoneRules) -> str:
    """Snom's ``dst`` value, or ``""`` without DST."""
    if not rules.has_dst:
        return ""
    assert rules.start is not None and rules.end is not None

    def one(c: Change) -> str:
        return f"{c.month:02d}.{c.week:02d}.{c.weekday:02d} {c.hour:02d}:{c.minute:02d}:00"

    return f"{rules.dst_save} {one(rules.start)} {one(rules.end)}"


#: Countries whose Snom ``timezone`` code is "<ISO 3166 alpha-3><offset hours>" (``GER+1``,
#: ``USA-5``): the Snom wiki's timezone table, and the shape wazo-provd-plugins
#: (``wazo_snom/common/common.py``, ``_add_timezone``) sends for these locales. Snom uses
#: ``GER`` for Germany, not ISO's ``DEU``.
SNOM_COUNTRIES: dict[str, str] = {
    "DE": "GER",
    "US": "USA",
    "ES": "ESP",
    "FR": "FRA",
    "IT": "ITA",
    "NL": "NLD",
}


def snom_timezone(rules: ZoneRules, country: str | None) -> str:
    """Snom's ``timezone`` code, or ``""`` when none is known for this zone.

    The Snom wiki: ``timezone`` overrides ``utc_offset``/``dst`` unless it is set empty, so
    a zone without a known code gets an explicitly empty ``timezone`` and the explicit rule.
    A code is only used for whole-hour zones with DST (a country code names that country's
    DST rule: Arizona is not ``USA-7``).
    """
    prefix = SNOM_COUNTRIES.get(country or "")
    if prefix is None or rules.fallback or not rules.has_dst or rules.std_offset % 3600:
        return ""
    return f"{prefix}{rules.std_offset // 3600:+d}"


def snom(rules: ZoneRules, country: str | None = None) -> dict[str, str]:
    """Snom ``timezone``, ``utc_offset`` and ``dst`` settings, in file order."""
    return {
        "timezone": snom_timezone(rules, country),
        "utc_offset": str(rules.std_offset),
        "dst": snom_dst(rules),
    }


# --- Grandstream (POSIX TZ, P64) ------------------------------------------------------------


def _posix_abbr(abbr: str) -> str:
    return abbr if re.fullmatch(r"[A-Za-z]{3,}", abbr) else f"<{abbr}>"


def _posix_time(seconds: int) -> str:
    hours, rest = divmod(abs(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{hours}"
    if minutes or secs:
        text += f":{minutes:02d}"
    if secs:
        text += f":{secs:02d}"
    return ("-" if seconds < 0 else "") + text


def _posix_rule(c: Change) -> str:
    rule = f"M{c.month}.{c.week}.{c.weekday % 7}"
    at = c.hour * 3600 + c.minute * 60
    return rule if at == 7200 else f"{rule}/{_posix_time(at)}"


def posix_tz(rules: ZoneRules) -> str:
    """The POSIX TZ string, e.g. ``CET-1CEST-2,M3.5.0,M10.5.0/3`` (offsets are west-positive)."""
    text = f"{_posix_abbr(rules.std_abbr)}{_posix_time(-rules.std_offset)}"
    if rules.has_dst:
        assert rules.start is not None and rules.end is not None and rules.dst_offset is not None
        text += f"{_posix_abbr(rules.dst_abbr or 'DST')}{_posix_time(-rules.dst_offset)}"
        text += f",{_posix_rule(rules.start)},{_posix_rule(rules.end)}"
    return text


#: POSIX rules that are among ``P64``'s fixed values, in the spelling ``P64`` takes
#: (Grandstream GXP17xx 1.0.1.133 config template, P64 option list; wazo-provd-plugins
#: ``wazo_grandstream/common/common.py`` ``TZ_NAME``). Anything else is ``customize``.
GRANDSTREAM_P64: dict[str, str] = {
    "CET-1CEST-2,M3.5.0,M10.5.0/3": "CET-1CEST-2,M3.5.0/02:00:00,M10.5.0/03:00:00",
}

#: Longest self-defined rule ``P246`` holds (GXP17xx template: "max 64 characters").
P246_MAX = 64


def grandstream(rules: ZoneRules) -> dict[str, str]:
    """Grandstream time-zone P-values: ``P64`` (fixed list) and, when custom, ``P246``.

    ``P64`` only takes values from its fixed list; a free POSIX rule goes in ``P246``
    ("self-defined time zone") with ``P64=customize``. ``P143=0`` stops DHCP option 2
    from overriding the zone (phones.md, corrections; GXP17xx template).
    """
    posix = posix_tz(rules)
    fixed = GRANDSTREAM_P64.get(posix)
    if fixed is not None:
        return {"P64": fixed, "P246": "", "P143": "0"}
    if len(posix) > P246_MAX:  # pragma: no cover - no tzdata rule is this long
        posix = posix_tz(ZoneRules(rules.name, rules.year, rules.std_offset, rules.std_abbr))
    return {"P64": "customize", "P246": posix, "P143": "0"}


# --- Gigaset -------------------------------------------------------------------------------
# N510/N720 ``uiI_TIME_TIMEZONE`` codes by standard offset (hours, minutes), with automatic
# DST (``ucB_TIME_USE_AUTOMATIC_DST``): wazo-provd-plugins ``wazo_gigaset/common/common.py``
# ``_TZ_GIGASET``. (The N510 template's comment lists a few different codes for older
# firmware; we follow the table the plugin sends.)
GIGASET_CODES: dict[tuple[int, int], int] = {
    (-12, 0): 0x00, (-11, 0): 0x01, (-10, 0): 0x02, (-9, 0): 0x03, (-8, 0): 0x04,
    (-7, 0): 0x07, (-6, 0): 0x09, (-5, 0): 0x0D, (-4, 0): 0x10, (-3, 0): 0x12,
    (-2, 0): 0x16, (-1, 0): 0x18, (0, 0): 0x1A, (1, 0): 0x1B, (2, 0): 0x20,
    (3, 0): 0x28, (4, 0): 0x2C, (4, 30): 0x2D, (5, 0): 0x2F, (5, 30): 0x30,
    (5, 45): 0x31, (6, 0): 0x33, (6, 30): 0x35, (7, 0): 0x36, (8, 0): 0x38,
    (9, 0): 0x3D, (9, 30): 0x40, (10, 0): 0x43, (11, 0): 0x47, (12, 0): 0x48,
    (13, 0): 0x50,
}  # fmt: skip

#: Zone names N670/N870 accept in ``DmGlobal.0.TimeZone`` (a subset of IANA names), and the
#: stand-in per standard offset for the others: wazo-provd-plugins
#: ``wazo_gigaset/Nx70_83_v2_62_1/common.py`` (``_VALID_TZ_GIGASET``, ``_FALLBACK_TZ``).
GIGASET_NX70_ZONES = frozenset(
    """Pacific/Honolulu America/Anchorage America/Los_Angeles America/Denver America/Chicago
    America/New_York America/Caracas America/Sao_Paulo Europe/Dublin Europe/Lisbon
    Europe/London Europe/Amsterdam Europe/Andorra Europe/Belgrade Europe/Berlin
    Europe/Bratislava Europe/Brussels Europe/Budapest Europe/Copenhagen Europe/Gibraltar
    Europe/Ljubljana Europe/Luxembourg Europe/Madrid Europe/Malta Europe/Monaco Europe/Oslo
    Europe/Paris Europe/Prague Europe/Rome Europe/Sarajevo Europe/Skopje Europe/Stockholm
    Europe/Tirane Europe/Vaduz Europe/Vienna Europe/Warsaw Europe/Zagreb Europe/Zurich
    Africa/Cairo Europe/Athens Europe/Bucharest Europe/Chisinau Europe/Helsinki
    Europe/Kaliningrad Europe/Kiev Europe/Riga Europe/Sofia Europe/Tallinn Europe/Vilnius
    Europe/Istanbul Europe/Minsk Europe/Moscow Asia/Dubai Europe/Samara Asia/Karachi
    Asia/Dhaka Asia/Hong_Kong Asia/Tokyo Australia/Adelaide Australia/Darwin
    Australia/Brisbane Australia/Sydney Pacific/Noumea""".split()  # noqa: SIM905
)
GIGASET_NX70_FALLBACK: dict[int, str] = {
    -10: "Pacific/Honolulu", -9: "America/Anchorage", -8: "America/Los_Angeles",
    -7: "America/Denver", -6: "America/Chicago", -5: "America/New_York",
    -4: "America/Caracas", -3: "America/Sao_Paulo", 0: "Europe/London", 1: "Europe/Berlin",
    2: "Europe/Athens", 3: "Europe/Moscow", 4: "Asia/Dubai", 5: "Asia/Karachi",
    6: "Asia/Dhaka", 8: "Asia/Hong_Kong", 9: "Asia/Tokyo", 10: "Australia/Sydney",
    11: "Pacific/Noumea",
}  # fmt: skip


def gigaset_code(rules: ZoneRules) -> int:
    """The N510/N720 ``uiI_TIME_TIMEZONE`` code; the nearest whole hour if not listed."""
    hours, rest = divmod(abs(rules.std_offset), 3600)
    sign = -1 if rules.std_offset < 0 else 1
    code = GIGASET_CODES.get((sign * hours, rest // 60))
    return code if code is not None else GIGASET_CODES.get((sign * hours, 0), 0x1A)


def gigaset_nx70_zone(rules: ZoneRules) -> str:
    """The N670/N870 ``DmGlobal.0.TimeZone`` name: the zone itself if the base knows it."""
    if rules.name in GIGASET_NX70_ZONES:
        return rules.name
    return GIGASET_NX70_FALLBACK.get(round(rules.std_offset / 3600), "Europe/London")


# --- Fanvil --------------------------------------------------------------------------------
# ``--DateTime Config--`` in Fanvil's text config. Observed files pair "Time Zone :4" with
# "Time Zone Name :UTC+1" and "Time Zone :0" with London, so Time Zone is the offset in
# quarter hours. DST Rule Mode 0 is by week (Wday 0 = Sunday, Week 5 = last). DST Type 2
# (manual rule) is our reading of the web UI's off/automatic/manual choice: to be confirmed.


def fanvil(rules: ZoneRules) -> dict[str, str]:
    """Fanvil time-zone and DST settings, in file order."""
    name = "UTC" if rules.std_offset == 0 else f"UTC{_hm(rules.std_offset)}"
    out = {
        "Time Zone": str(rules.std_offset // 900),
        "Time Zone Name": name,
        "DST Type": "2" if rules.has_dst else "0",
    }
    if rules.has_dst:
        assert rules.start is not None and rules.end is not None
        out["DST Rule Mode"] = "0"
        out["DST Min Offset"] = str(rules.dst_save // 60)
        for prefix, c in (("Start", rules.start), ("End", rules.end)):
            out[f"DST {prefix} Mon"] = str(c.month)
            out[f"DST {prefix} Week"] = str(c.week)
            out[f"DST {prefix} Wday"] = str(c.weekday % 7)
            out[f"DST {prefix} Hour"] = str(c.hour)
    return out


# --- Poly ----------------------------------------------------------------------------------
# tcpIpApp.sntp.* (UC Software admin guide): gmtOffset in seconds; DST by month, dayOfWeek
# (1 = Sunday .. 7 = Saturday) and date 1/8/15/22 for the first..fourth occurrence, or
# dayOfWeek.lastInMonth = 1; time is the hour. Poly always shifts by one hour.


def poly(rules: ZoneRules) -> dict[str, str]:
    """Poly ``tcpIpApp.sntp.*`` time settings, in file order."""
    out = {
        "tcpIpApp.sntp.gmtOffset": str(rules.std_offset),
        "tcpIpApp.sntp.daylightSavings.enable": "1" if rules.has_dst else "0",
    }
    if rules.has_dst:
        assert rules.start is not None and rules.end is not None
        out["tcpIpApp.sntp.daylightSavings.fixedDayEnable"] = "0"
        for prefix, c in (("start", rules.start), ("stop", rules.end)):
            base = f"tcpIpApp.sntp.daylightSavings.{prefix}"
            out[f"{base}.month"] = str(c.month)
            out[f"{base}.date"] = str((min(c.week, 4) - 1) * 7 + 1)
            out[f"{base}.time"] = str(c.hour)
            out[f"{base}.dayOfWeek"] = str(c.weekday % 7 + 1)
            out[f"{base}.dayOfWeek.lastInMonth"] = "1" if c.week == 5 else "0"
    return out

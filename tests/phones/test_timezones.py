"""Time zones: rules derived from zoneinfo, and each vendor's encoding of them."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from provd.phones import timezones as tz


def last_weekday(year: int, month: int, iso_weekday: int) -> int:
    """Day of month of the last ``iso_weekday`` in ``month`` (computed independently)."""
    day = datetime(year, month + 1, 1) - timedelta(days=1) if month < 12 else datetime(year, 12, 31)
    while day.isoweekday() != iso_weekday:
        day -= timedelta(days=1)
    return day.day


def offset_at(zone: str, *args: int) -> int:
    return int(datetime(*args, tzinfo=ZoneInfo(zone)).utcoffset().total_seconds())


class TestRules:
    @pytest.mark.parametrize("year", [2024, 2025, 2026])
    def test_berlin_starts_last_sunday_of_march(self, year):
        """Berlin's DST starts on the last Sunday of March at 02:00 and ends the last of October."""
        rules = tz.zone_rules("Europe/Berlin", year)
        assert (rules.std_offset, rules.dst_offset) == (3600, 7200)
        assert rules.start == tz.Change(3, last_weekday(year, 3, 7), 7, 5, 2, 0)
        assert rules.end == tz.Change(10, last_weekday(year, 10, 7), 7, 5, 3, 0)

    def test_sydney_southern_hemisphere(self):
        """Sydney's DST starts in October and ends in April, first Sunday each."""
        rules = tz.zone_rules("Australia/Sydney", 2025)
        assert rules.std_offset == offset_at("Australia/Sydney", 2025, 7, 1) == 36000
        assert rules.dst_offset == offset_at("Australia/Sydney", 2025, 1, 1) == 39600
        assert (rules.start.month, rules.start.week, rules.start.weekday) == (10, 1, 7)
        assert (rules.end.month, rules.end.week, rules.end.hour) == (4, 1, 3)

    def test_kolkata_half_hour_no_dst(self):
        """Kolkata is UTC+5:30 all year."""
        rules = tz.zone_rules("Asia/Kolkata", 2025)
        assert (rules.std_offset, rules.has_dst, rules.start) == (19800, False, None)

    def test_new_york_second_sunday_march(self):
        """New York: DST from the second Sunday of March to the first Sunday of November."""
        rules = tz.zone_rules("America/New_York", 2025)
        assert (rules.std_offset, rules.dst_save) == (-18000, 3600)
        assert (rules.start.month, rules.start.day, rules.start.week) == (3, 9, 2)
        assert (rules.end.month, rules.end.day, rules.end.week, rules.end.hour) == (11, 2, 1, 2)

    def test_dublin_negative_dst_reads_as_summer_time(self):
        """Dublin's winter 'negative DST' in tzdata still gives standard UTC+0, summer +1."""
        rules = tz.zone_rules("Europe/Dublin", 2025)
        assert (rules.std_offset, rules.dst_offset, rules.start.month) == (0, 3600, 3)

    @pytest.mark.parametrize("name", ["Mars/Olympus", "", None, "../../etc/passwd", "Europe", 42])
    def test_unknown_zone_falls_back_to_utc(self, name):
        """Missing, unknown or malformed zones give UTC without raising."""
        rules = tz.zone_rules(name, 2025)  # type: ignore[arg-type]
        assert (rules.name, rules.std_offset, rules.has_dst) == ("UTC", 0, False)

    def test_unknown_zone_is_flagged(self):
        """A named but unknown zone is marked as a fallback."""
        assert tz.zone_rules("Mars/Olympus", 2025).fallback is True


class TestVendors:
    def test_yealink_berlin(self):
        """Yealink gets +1, summer_time 1 and week-based start/end with Sunday = 7."""
        out = tz.yealink(tz.zone_rules("Europe/Berlin", 2025))
        assert out["local_time.time_zone"] == "+1"
        assert out["local_time.time_zone_name"] == "Germany(Berlin)"
        assert out["local_time.summer_time"] == "1"
        assert out["local_time.dst_time_type"] == "1"
        assert (out["local_time.start_time"], out["local_time.end_time"]) == ("3/5/7/2", "10/5/7/3")
        assert out["local_time.offset_time"] == "60"

    def test_yealink_kolkata(self):
        """Yealink gets +5:30 and DST off for Kolkata."""
        out = tz.yealink(tz.zone_rules("Asia/Kolkata", 2025))
        assert out["local_time.time_zone"] == "+5:30"
        assert out["local_time.summer_time"] == "0"
        assert "local_time.start_time" not in out

    def test_yealink_by_date(self):
        """The fixed-date form reads month/day/hour."""
        rules = tz.zone_rules("America/New_York", 2025)
        assert tz.yealink_by_date(rules.start) == "3/9/2"

    @pytest.mark.parametrize(
        ("zone", "expected"),
        [
            ("Europe/Berlin", "CET-1CEST-2,M3.5.0,M10.5.0/3"),
            ("America/New_York", "EST5EDT4,M3.2.0,M11.1.0"),
            ("Australia/Sydney", "AEST-10AEDT-11,M10.1.0,M4.1.0/3"),
            ("Asia/Kolkata", "IST-5:30"),
            ("America/St_Johns", "NST3:30NDT2:30,M3.2.0,M11.1.0"),
            ("Nope/Nope", "UTC0"),
        ],
    )
    def test_grandstream_posix(self, zone, expected):
        """The POSIX TZ string for Grandstream P64 matches the zone's rules."""
        assert tz.posix_tz(tz.zone_rules(zone, 2025)) == expected

    def test_posix_quotes_numeric_abbreviations(self):
        """Numeric abbreviations are written in POSIX's quoted form."""
        assert tz.posix_tz(tz.zone_rules("America/Sao_Paulo", 2025)) == "<-03>3"

    def test_snom_berlin(self):
        """Snom's dst follows its documented Germany example exactly."""
        out = tz.snom(tz.zone_rules("Europe/Berlin", 2025))
        assert out["utc_offset"] == "3600"
        assert out["dst"] == "3600 03.05.07 02:00:00 10.05.07 03:00:00"

    def test_snom_no_dst(self):
        """Snom gets an empty dst without daylight saving."""
        assert tz.snom(tz.zone_rules("Asia/Kolkata", 2025))["dst"] == ""

    def test_fanvil_quarter_hours(self):
        """Fanvil's Time Zone counts quarter hours: 22 for UTC+5:30."""
        out = tz.fanvil(tz.zone_rules("Asia/Kolkata", 2025))
        assert (out["Time Zone"], out["Time Zone Name"], out["DST Type"]) == ("22", "UTC+5:30", "0")

    def test_fanvil_sydney_rule(self):
        """Fanvil's DST fields carry Sydney's October start, Sunday as 0."""
        out = tz.fanvil(tz.zone_rules("Australia/Sydney", 2025))
        assert (out["DST Start Mon"], out["DST Start Week"], out["DST Start Wday"]) == (
            "10",
            "1",
            "0",
        )
        assert (out["DST End Mon"], out["DST End Hour"]) == ("4", "3")

    def test_poly_new_york(self):
        """Poly: gmtOffset in seconds, second Sunday as date 8, Sunday as 1."""
        out = tz.poly(tz.zone_rules("America/New_York", 2025))
        prefix = "tcpIpApp.sntp.daylightSavings."
        assert out["tcpIpApp.sntp.gmtOffset"] == "-18000"
        assert out[prefix + "enable"] == "1"
        assert (out[prefix + "start.month"], out[prefix + "start.date"]) == ("3", "8")
        assert out[prefix + "start.dayOfWeek"] == "1"
        assert out[prefix + "start.dayOfWeek.lastInMonth"] == "0"

    def test_poly_last_sunday(self):
        """Poly marks Berlin's last Sundays with lastInMonth."""
        out = tz.poly(tz.zone_rules("Europe/Berlin", 2025))
        assert out["tcpIpApp.sntp.daylightSavings.stop.dayOfWeek.lastInMonth"] == "1"

"""Coder preferences from Devices, and their vendor mappings."""

from __future__ import annotations

import pytest

from provd.phones import codecs


class TestParse:
    def test_comma_list_case_insensitive(self):
        """A comma list in any case becomes canonical names in the same order."""
        assert codecs.parse_coders("g722, opus-wb,G711a,G711u,g729A") == (
            "G722",
            "OPUS-WB",
            "G711A",
            "G711U",
            "G729",
        )

    def test_json_list(self):
        """A JSON list in a string is accepted."""
        assert codecs.parse_coders('["G711U", "G722"]') == ("G711U", "G722")

    def test_list_value(self):
        """An actual list is accepted."""
        assert codecs.parse_coders(["OPUS-NB", "G723"]) == ("OPUS-NB", "G723")

    def test_unknown_and_duplicates_dropped(self):
        """Unknown coders and repeats are skipped."""
        assert codecs.parse_coders("FOO,G722,G722,AMR") == ("G722",)

    @pytest.mark.parametrize("value", [None, "", "FOO", 42, [1, 2], "[broken"])
    def test_default_when_nothing_usable(self, value):
        """Absent or useless values give the default order."""
        assert codecs.parse_coders(value) == codecs.DEFAULT_ORDER


class TestVendors:
    def test_poly_skips_g723_and_disables_the_rest(self):
        """Poly has no G.723; codecs not asked for get priority 0."""
        got = dict(codecs.priorities(("G723", "G711A"), codecs.POLY, codecs.POLY_ALL))
        assert got == {"G722": 0, "Opus": 0, "G711_A": 1, "G711_Mu": 0, "G729_AB": 0}

    def test_opus_variants_collapse(self):
        """OPUS-WB and OPUS-NB are one codec to a phone; the first keeps its place."""
        assert codecs.vendor_codecs(("OPUS-NB", "G722", "OPUS-WB"), codecs.SNOM) == ["opus", "g722"]

    def test_grandstream_slots_repeat_last(self):
        """Grandstream's eight slots are filled by repeating the last choice."""
        slots = codecs.grandstream_slots(("G722", "G711A"))
        assert [code for _, code in slots] == [9, 8, 8, 8, 8, 8, 8, 8]

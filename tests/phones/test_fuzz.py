"""Property tests: the parsers' error contract holds for any input."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from provd.phones import IdentifyError, identify, parse_path, parse_user_agent, vendor_for_oui
from provd.phones.codecs import parse_coders
from provd.phones.timezones import zone_rules

paths = st.one_of(
    st.text(max_size=300),
    st.builds(lambda a, b: f"/{a}/{b}", st.text(max_size=20), st.text(max_size=40)),
    st.from_regex(r"/[0-9a-fA-F]{12}(\.cfg|\.xml|-user\.cfg)", fullmatch=True),
)


@given(paths, st.one_of(st.none(), st.text(max_size=300)))
@example("/../001565a1b2c3.cfg", "Yealink SIP-T46G 1.2 00:15:65:a1:b2:c4")
@example("/001565a1b2c3.cfg", "Yealink SIP-T46G 1.2 zz:15:65:a1:b2:c4")
def test_identify_raises_only_identify_errors(path, ua):
    """identify either identifies or raises an IdentifyError carrying a 403/404."""
    try:
        ident = identify(path, ua)
    except IdentifyError as error:
        assert error.status in (403, 404)
    else:
        assert ident.mac is None or len(ident.mac) == 12


@given(paths)
def test_parse_path_never_raises(path):
    """parse_path returns a FileRequest or None, and never accepts traversal."""
    request = parse_path(path)
    if request is not None:
        assert ".." not in path.split("/")


@given(st.one_of(st.none(), st.text(max_size=600)))
@example("Gigaset N510/1;7C2F80D2E3F4")
@example("Mozilla/4.0 (compatible; snomD785-SIP 10.1 " + "A" * 400)
def test_parse_user_agent_never_raises(ua):
    """parse_user_agent returns info with a valid MAC or None."""
    info = parse_user_agent(ua)
    if info is not None and info.mac is not None:
        assert len(info.mac) == 12 and info.mac == info.mac.lower()


@given(st.text(max_size=40))
def test_vendor_for_oui_never_raises(mac):
    """vendor_for_oui returns a vendor or None for any string."""
    vendor_for_oui(mac)


@given(st.one_of(st.none(), st.text(max_size=80), st.lists(st.text(max_size=10))))
def test_parse_coders_never_empty(value):
    """parse_coders always yields a non-empty order."""
    assert parse_coders(value)


@given(st.text(max_size=70))
def test_zone_rules_never_raises(name):
    """zone_rules falls back to UTC instead of raising."""
    rules = zone_rules(name, 2025)
    assert rules.std_offset % 60 == 0 or rules.name != "UTC"

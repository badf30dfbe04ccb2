"""PBX data in phone files: node prefixes as each vendor's dial plan, profile favourites as
function keys after the operator's (issue 11, item 4)."""

import pytest

from provd.phones import Renderer, Vendor
from provd.phones.examples import phone_request
from provd.phones.identify import identify
from provd.phones.keys import Key, OperatorKeys
from provd.phones.pbx import (
    Favourite,
    FavouriteKeys,
    NodeInfo,
    PbxDataSettings,
    PbxDirectory,
)

from .phones_fixtures import make_phone

MACS = {
    Vendor.YEALINK: "805ec0a1b2c3",
    Vendor.SNOM: "000413a1b2c3",
    Vendor.GRANDSTREAM: "000b82a1b2c3",
    Vendor.FANVIL: "0c383ea1b2c3",
    Vendor.POLY: "0004f2a1b2c3",
    Vendor.GIGASET: "7c2f80a1b2c3",
}
GERMANY = NodeInfo(name="n", prefix_intl="00", prefix_ntl="0", prefix_subs="", country_code="49")
ANNA = Favourite(id=1, name="sip:anna@example.com", num="201", dsp="Anna", dialog=True)
OFFICE = Favourite(id=2, num="0301234", dsp="Office")


def directory(node=GERMANY, favs=(ANNA, OFFICE), **settings) -> PbxDirectory:
    pbx = PbxDirectory(PbxDataSettings(**settings))
    if node is not None:
        pbx.set_node("example.com", node)
    pbx.set_favourites("example.com", favs)
    return pbx


def render(vendor: Vendor, pbx: PbxDirectory | None, settings=None, **phone) -> str:
    request = phone_request(vendor, MACS[vendor])
    kwargs = {"settings": settings} if settings is not None else {}
    renderer = Renderer("tls", year=2025, pbx=pbx, **kwargs)
    data = make_phone(MACS[vendor], **phone)
    return renderer.render(data, identify(request.path, request.user_agent)).content.decode()


#: Each vendor's dial-plan lines for 00 / 0 / 49 (Fanvil and Gigaset: none known).
DIAL_PLAN = {
    Vendor.YEALINK: [
        "dialplan.replace.prefix.1 = +49(.)\n",
        "dialplan.replace.replace.1 = 0$1\n",
        "dialplan.replace.prefix.2 = +(.)\n",
        "dialplan.replace.replace.2 = 00$1\n",
    ],
    Vendor.SNOM: [
        '<user_dp_str idx="1" perm="R">!^\\+49(.*)!sip:0\\1@\\d! !^\\+(.*)!sip:00\\1@\\d!'
        "</user_dp_str>"
    ],
    Vendor.GRANDSTREAM: [
        "<P290>{ &lt;\\+49=0&gt;x+ | &lt;\\+=00&gt;x+ | x+ | \\+x+ | *x+ | *xx*x+ }</P290>"
    ],
    Vendor.POLY: ['dialplan.digitmap="R+49R0Rx.T|R+R00Rx.T|x.T|*x.T"'],
}
MARKERS = {
    Vendor.YEALINK: "dialplan.",
    Vendor.SNOM: "user_dp_str",
    Vendor.GRANDSTREAM: "P290",
    Vendor.POLY: "dialplan.digitmap",
}


@pytest.mark.parametrize("vendor", list(DIAL_PLAN))
def test_node_prefixes_become_the_vendor_dial_plan(vendor):
    text = render(vendor, directory())
    for line in DIAL_PLAN[vendor]:
        assert line in text, (vendor, text)
    assert MARKERS[vendor] not in render(vendor, None)  # no PBX data: the phone's own
    assert MARKERS[vendor] not in render(vendor, directory(node=None))
    assert MARKERS[vendor] not in render(vendor, directory(dial_plan=False))


@pytest.mark.parametrize("vendor", [Vendor.FANVIL, Vendor.GIGASET])
def test_vendors_without_a_known_setting_get_no_dial_plan(vendor):
    assert render(vendor, directory(favs=())) == render(vendor, None)


def test_own_country_only_without_national_prefix_and_nothing_without_international():
    assert directory().node_for(make_phone())[0].rewrites() == [("+49", "0"), ("+", "00")]
    assert NodeInfo(prefix_intl="00", country_code="49").rewrites() == [("+", "00")]
    assert NodeInfo(prefix_ntl="0", country_code="49").rewrites() == []
    assert "dialplan." not in render(Vendor.YEALINK, directory(node=NodeInfo(prefix_ntl="0")))


def test_operator_overrides_win_and_are_named_as_source():
    pbx = directory(prefix_intl="000", prefix_ntl="00")
    text = render(Vendor.YEALINK, pbx)
    assert "dialplan.replace.replace.1 = 00$1\n" in text
    assert "dialplan.replace.replace.2 = 000$1\n" in text
    _node, where = pbx.node_for(make_phone())
    assert "PBX GetNodeInfo (example.com)" in where and "pbx.prefix_intl" in where
    # Operator values alone (no PBX yet) are enough.
    alone = directory(node=None, prefix_intl="00", country_code="41", prefix_ntl="0")
    assert "dialplan.replace.prefix.1 = +41(.)\n" in render(Vendor.YEALINK, alone)


def test_unusable_node_values_from_the_pbx_never_reach_a_file():
    bad = NodeInfo(prefix_intl="00\nstatic.x = 1", prefix_ntl="0", country_code="49")
    text = render(Vendor.YEALINK, directory(node=bad))
    assert "dialplan." not in text and "static.x" not in text
    node, where = directory(node=bad).node_for(make_phone())
    assert node is None and "unusable" in where


#: Each vendor's BLF for anna then speed dial for the office, after one operator key.
KEYS = {
    Vendor.YEALINK: [
        "linekey.1.type = 15\n",
        "linekey.2.type = 16\n",
        "linekey.2.value = anna\n",
        "linekey.2.label = Anna\n",
        "linekey.3.type = 13\n",
        "linekey.3.value = 0301234\n",
    ],
    Vendor.SNOM: ["blf &lt;sip:anna@example.com&gt;", ">speed 0301234<"],
    Vendor.GRANDSTREAM: ["<P23005>BLF</P23005>", "<P23008>anna</P23008>", "<P23010>SpeedDial"],
    Vendor.FANVIL: ["Fkey2 Value       :anna@1/ba", "Fkey3 Value       :0301234@1/f"],
    Vendor.POLY: [
        'attendant.resourceList.1.address="anna@example.com"',
        'attendant.resourceList.2.address="0301234"',
        'attendant.resourceList.2.type="automata"',
    ],
}


@pytest.mark.parametrize("vendor", list(KEYS))
def test_favourites_fill_the_keys_after_the_operator_keys(vendor):
    text = render(vendor, directory(), keys=(Key("line", "", "Line"),))
    for line in KEYS[vendor]:
        assert line in text, (vendor, text)
    assert "anna" not in render(vendor, directory(favourites=False), keys=(Key("line"),))


def test_merge_rule_operator_first_no_duplicate_target_and_switch():
    operator = OperatorKeys({"*": (Key("blf", "anna", "Anna (operator)"), Key("speed", "*95"))})
    source = FavouriteKeys(operator, directory())
    keys = source.keys(make_phone())
    assert keys == (
        Key("blf", "anna", "Anna (operator)"),
        Key("speed", "*95"),
        Key("speed", "0301234", "Office"),
    )
    assert "then 2 PBX favourites" in source.source(make_phone())
    off = FavouriteKeys(operator, directory(favourites=False))
    assert off.keys(make_phone()) == operator.keys(make_phone())


def test_favourite_keys_blf_speed_or_nothing():
    assert ANNA.key() == Key("blf", "anna", "Anna")
    assert Favourite(id=3, name="bob", num="202", presence=True).key() == Key("blf", "bob", "bob")
    # Not monitorable: a speed dial to its number, else to its SIP name.
    assert Favourite(id=4, name="carl", num="203").key() == Key("speed", "203", "carl")
    assert Favourite(id=5, name="dora").key() == Key("speed", "dora", "dora")
    assert Favourite(id=6, name="has space", num="").key() is None
    assert Favourite(id=7, dsp="x\ny", num="1").key() == Key("speed", "1", "x y")


def test_a_phone_of_another_domain_gets_its_own_pbx_or_none():
    pbx = directory()
    assert pbx.for_phone("other.org") is pbx.get("example.com")  # the only PBX
    pbx.set_node("other.org", NodeInfo(prefix_intl="00", country_code="43", prefix_ntl="0"))
    assert pbx.for_phone("Other.ORG").domain == "other.org"
    assert pbx.for_phone("third.net") is None
    assert pbx.favourite_keys(make_phone(domain="other.org")) == ()


def test_stored_form_round_trips_and_skips_junk():
    pbx = directory()
    again = PbxDirectory()
    again.load_json(pbx.to_json())
    assert again.to_json() == pbx.to_json()
    junk = PbxDirectory()
    junk.load_json({"x": {"node": "no", "favourites": [{"id": "1"}, 5, {"id": 2}]}, 3: {}})
    assert junk.get("x").node is None and [f.id for f in junk.get("x").favourites] == [2]
    junk.load_json(["not", "a", "map"])

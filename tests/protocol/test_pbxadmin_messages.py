"""PbxAdminApi messages (spec 8.4; SDK doc/appwebsocket/PbxAdminApi.htm): wire shapes,
unknown members kept through a read-modify-write, error replies."""

import attrs
import pytest

from provd.protocol.messages import (
    GetObject,
    GetObjectResult,
    GetRegs,
    GetRegsResult,
    PbxDevice,
    UpdateObject,
    UpdateObjectResult,
    decode,
    encode,
    same_hw,
)

#: As the SDK documents GetObjectResult, plus members a newer PBX may add.
OBJECT = {
    "api": "PbxAdminApi",
    "mt": "GetObjectResult",
    "src": "o1",
    "guid": "7f3a00d2",
    "cn": "Alice Example",
    "dn": "Alice",
    "h323": "alice",
    "e164": "201",
    "pwd": "9a8b7c",  # encrypted by the admin key: kept, never interpreted
    "grp": [{"name": "sales", "mode": "active"}],
    "devices": [
        {
            "hw": "00:15:65:AA:00:01",
            "text": "desk",
            "app": "phone",
            "admin": False,
            "no-filter": True,
            "tls": True,
            "no-mob": False,
            "trusted": True,
            "newer-flag": {"x": 1},
        },
        {"hw": "other", "tls": -1},
    ],
}


def test_get_object_result_reads_the_documented_members():
    msg = decode(OBJECT)
    assert isinstance(msg, GetObjectResult) and msg.failure is None
    (desk, other) = msg.devices
    assert (desk.hw, desk.text, desk.no_filter, desk.tls, desk.trusted) == (
        "00:15:65:AA:00:01",
        "desk",
        True,
        True,
        True,
    )
    assert other.tls == -1  # an integer flag ("inherit from template") is accepted
    assert msg.device("001565aa0001") is desk
    assert msg.extra == {"pwd": "9a8b7c", "grp": [{"name": "sales", "mode": "active"}]}
    assert "9a8b7c" not in repr(msg)


def test_read_modify_write_keeps_unknown_device_members():
    """Clearing ``tls`` of one device sends the whole list back, unknown members intact."""
    got = decode(OBJECT)
    devices = [
        attrs.evolve(d, tls=False) if d.hw == "00:15:65:AA:00:01" else d for d in got.devices
    ]
    wire = encode(UpdateObject(guid=got.guid, devices=devices, src="u1"))
    assert wire == {
        "mt": "UpdateObject",
        "api": "PbxAdminApi",
        "guid": "7f3a00d2",
        "devices": [
            {**OBJECT["devices"][0], "tls": False},
            OBJECT["devices"][1],
        ],
        "src": "u1",
    }
    assert decode(wire) == UpdateObject(guid=got.guid, devices=devices, src="u1")


def test_requests_carry_only_what_is_set():
    assert encode(GetRegs(cn="Alice Example", src="r")) == {
        "mt": "GetRegs",
        "api": "PbxAdminApi",
        "cn": "Alice Example",
        "src": "r",
    }
    assert encode(GetObject(h323="alice")) == {
        "mt": "GetObject",
        "api": "PbxAdminApi",
        "h323": "alice",
    }


def test_get_regs_result_finds_the_device_by_hw():
    msg = decode(
        {
            "api": "PbxAdminApi",
            "mt": "GetRegsResult",
            "cn": "Alice Example",
            "regs": [{"hw": "0004F2AA0005", "addr": "192.0.2.7:5060"}, {"hw": "x", "addr": ""}],
        }
    )
    assert isinstance(msg, GetRegsResult) and msg.failure is None
    assert msg.find("00:04:f2:aa:00:05").addr == "192.0.2.7:5060"
    assert msg.find("0004f2aa0006") is None


@pytest.mark.parametrize(
    ("body", "failure"),
    [
        ({"error": 3, "errorText": "no such object"}, "no such object (error 3)"),
        ({"error": "not allowed"}, "not allowed"),
        ({"error": 5}, "error 5"),
    ],
)
@pytest.mark.parametrize("mt", ["GetRegsResult", "GetObjectResult", "UpdateObjectResult"])
def test_error_replies_numeric_or_text(mt, body, failure):
    msg = decode({"api": "PbxAdminApi", "mt": mt, **body})
    assert msg.failure == failure


def test_object_without_guid_is_not_found():
    assert decode({"api": "PbxAdminApi", "mt": "GetObjectResult"}).failure == "no such object"
    assert decode({"api": "PbxAdminApi", "mt": "UpdateObjectResult"}).failure is None


def test_same_hw():
    assert same_hw("00-15-65-AA-00-01", "001565aa0001")
    assert not same_hw("", "")
    assert not same_hw("001565aa0001", "001565aa0002")
    assert isinstance(PbxDevice(hw="a"), PbxDevice) and isinstance(
        UpdateObjectResult(), UpdateObjectResult
    )

"""The typed message codec: round trips for every message, and its error contract."""

import contextlib
import json

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from provd.protocol import ProtocolError
from provd.protocol.messages import (
    AppInfo,
    AppLogin,
    Device,
    GetProvisionedDeviceResult,
    KeepAlive,
    ProvisioningPhone,
    ProvisioningPhoneResult,
    Service,
    ServicesInfo,
    UnknownMessage,
    app_info_result,
    decode,
    decode_text,
    encode,
    encode_text,
    registered,
)

from .fuzz import FUZZ
from .strategies import for_class, json_objects, json_values

ALL = sorted(registered().values(), key=lambda c: (c.API or "", c.MT))


def test_every_spec_message_is_registered():
    """The message set covers the spec: base, Services, provisioning, Devices, PbxApi."""
    mts = {mt for (_api, mt) in registered()}
    for mt in [
        "AppChallenge",
        "AppChallengeResult",
        "AppLogin",
        "AppLoginResult",
        "PbxInfo",
        "AppInfo",
        "AppInfoResult",
        "CheckBuild",
        "CheckBuildResult",
        "KeepAlive",
        "SubscribeServices",
        "ServicesInfo",
        "UnsubscribeServices",
        "GetServiceLogin",
        "GetServiceLoginResult",
        "ProvisioningPhone",
        "ProvisioningPhoneResult",
        "GetLoginInfo",
        "GetLoginInfoResult",
        "GetProvisioningCategories",
        "GetProvisioningCategoriesResult",
        "GetProvisioningCode",
        "GetProvisioningCodeResult",
        "GetProvisionedDevice",
        "GetProvisionedDeviceResult",
        "DeviceProvisioned",
        "SubscribePresence",
        "PresenceState",
        "PresenceUpdate",
        "UnsubscribePresence",
        "SetPresence",
        "SetPresenceResult",
        "SubscribeProfile",
        "SubscribeProfileResult",
        "ProfileContactAdded",
        "ProfileContactDeleted",
        "UnsubscribeProfile",
        "AddProfile",
        "DelProfile",
        "UpdateProfile",
        "AddProfileContact",
        "DelProfileContact",
        "UpdateProfileContact",
        "GetNodeInfo",
        "GetNodeInfoResult",
    ]:
        assert mt in mts, mt


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.MT)
@given(data=st.data())
def test_round_trip(cls, data):
    """decode(encode(m)) == m, also through JSON text, for every message type."""
    msg = data.draw(for_class(cls))
    assert decode(encode(msg)) == msg
    assert decode_text(encode_text(msg)) == msg


@given(obj=json_objects, mt=st.sampled_from([c.MT for c in ALL] + ["Nope"]))
@FUZZ
def test_decode_arbitrary_objects_raises_only_protocol_error(obj, mt):
    """Any JSON object with a known or unknown mt decodes or raises ProtocolError."""
    obj = {"mt": mt, **obj}
    with contextlib.suppress(ProtocolError):
        decode(obj)


@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
@example(b"")
@example(b"[]")
@example(b'"x"')
@example(b"\xff\xfe")
@example(b'{"mt": NaN}')
@example(b"[" * 5000 + b"]" * 5000)
@example(b'{"mt":1}')
@example(b'{"mt":"AppLogin","app":"a"}')
@FUZZ
def test_decode_text_arbitrary_bytes_raises_only_protocol_error(data):
    """Arbitrary bytes decode or raise ProtocolError, never anything else."""
    with contextlib.suppress(ProtocolError):
        decode_text(data)


@given(json_values)
@FUZZ
def test_decode_text_any_json_value(value):
    """Any JSON value as a frame decodes or raises ProtocolError."""
    with contextlib.suppress(ProtocolError):
        decode_text(json.dumps(value))


class TestDecodeErrors:
    @pytest.mark.parametrize(
        ("text", "reason"),
        [
            ("[1]", "not a JSON object"),
            ("{", "not valid JSON"),
            ('{"api":"Services"}', "no mt"),
            ('{"mt":"ProvisioningPhone","code":"1"}', "mac: missing"),
            ('{"mt":"ProvisioningPhone","mac":1,"code":"1"}', "mac: expected a string"),
            ('{"mt":"AppLoginResult","ok":"yes"}', "ok: expected true or false"),
            ('{"mt":"GetProvisioningCodeResult","validUntil":true}', "expected an integer"),
            ('{"mt":"KeepAlive","src":5}', "src"),
            ('{"mt":"X","api":5}', "api is not a string"),
        ],
    )
    def test_reasons(self, text, reason):
        """Malformed messages raise ProtocolError naming the problem."""
        with pytest.raises(ProtocolError, match=reason):
            decode_text(text)

    def test_oversized(self):
        """A message over the size cap is refused before parsing."""
        with pytest.raises(ProtocolError, match="exceeds"):
            decode_text('{"mt":"KeepAlive","x":"' + "a" * (1 << 20) + '"}')


def test_spec_provisioning_phone_example():
    """The spec's ProvisioningPhone example decodes with every field."""
    msg = decode_text(
        '{"mt":"ProvisioningPhone","mac":"112233445566","code":"562822784750",'
        '"hwid":"112233445566","usename":"test_user","cn":"Test User",'
        '"seed1":"10046478319880090512700","password":"ddfc00","domain":"test.com",'
        '"dns":"172.16.0.255"}'
    )
    assert isinstance(msg, ProvisioningPhone)
    assert (msg.usename, msg.dns, msg.password_encrypted) == ("test_user", "172.16.0.255", True)
    assert not ProvisioningPhone(mac="m", code="c", seed1="x").password_encrypted


def test_unknown_mt_is_kept_not_rejected():
    """An unknown mt decodes to UnknownMessage carrying the body and src."""
    msg = decode_text('{"mt":"Whatever","api":"Foo","src":"s","x":1}')
    assert isinstance(msg, UnknownMessage)
    assert (msg.mt, msg.api, msg.src, msg.body["x"]) == ("Whatever", "Foo", "s", 1)


def test_base_message_with_api_tag():
    """A base message tagged with an api still decodes as the base message."""
    assert isinstance(decode_text('{"mt":"KeepAlive","api":"PbxApi"}'), KeepAlive)


def test_unknown_fields_ignored():
    """Members the class does not know are ignored (tolerant reader)."""
    msg = decode_text('{"mt":"ProvisioningPhoneResult","result":"ok","future":1}')
    assert msg == ProvisioningPhoneResult(result="ok")


def test_wire_names_and_src_order():
    """Wire names are used on encode, api follows mt, src comes last."""
    text = encode_text(AppLogin(app="a", digest="d", pbx_obj="o", src="s"))
    assert text.startswith('{"mt":"AppLogin","app":"a","digest":"d"')
    assert '"pbxObj":"o"' in text and text.endswith('"src":"s"}')
    assert encode(ServicesInfo())["api"] == "Services"


def test_login_info_order_preserved():
    """AppLogin.info keeps the received key order (it is part of the digest)."""
    msg = decode_text('{"mt":"AppLogin","app":"a","digest":"d","info":{"z":1,"a":2}}')
    assert list(msg.info) == ["z", "a"]


def test_device_in_one_element_array_accepted():
    """GetProvisionedDeviceResult.device may arrive wrapped in an array (documented example)."""
    msg = decode_text(
        '{"mt":"GetProvisionedDeviceResult","code":"123123123123","device":[{"id":1,'
        '"hwId":"0090334100be","name":"Kari2","domainId":2,"product":"IP811",'
        '"version":"13r1 dvl [13.A110/13A146/200]","type":"GW","pbxActive":true,"online":true}]}'
    )
    assert isinstance(msg, GetProvisionedDeviceResult)
    assert msg.device == Device(
        id=1,
        hw_id="0090334100be",
        name="Kari2",
        domain_id=2,
        product="IP811",
        version="13r1 dvl [13.A110/13A146/200]",
        type="GW",
        pbx_active=True,
        online=True,
    )
    with pytest.raises(ProtocolError):
        decode_text('{"mt":"GetProvisionedDeviceResult","device":[]}')


def test_service_apis_under_info_or_info_apis():
    """A service's APIs are found under info.apis (real PBX) or directly under info (SDK)."""
    real = Service(name="d", info={"apis": {"com.innovaphone.devices": {}}})
    sdk = Service(name="d", info={"com.innovaphone.devices": {}})
    assert real.provides("com.innovaphone.devices") and sdk.provides("com.innovaphone.devices")
    info = ServicesInfo(services=[Service(name="x"), real])
    assert info.find("com.innovaphone.devices") is real


def test_app_info_result_publishes_provisioning():
    """AppInfoResult carries the provisioning API in the service info and in info.apis
    (spec section 8.1), echoes app and src."""
    result = app_info_result(AppInfo(app="provd", src="7"), title="provd")
    assert encode(result) == {
        "mt": "AppInfoResult",
        "app": "provd",
        "info": {"hidden": False, "apis": {"com.innovaphone.provisioning": {"title": "provd"}}},
        "serviceInfo": {"apis": {"com.innovaphone.provisioning": {}}},
        "src": "7",
    }

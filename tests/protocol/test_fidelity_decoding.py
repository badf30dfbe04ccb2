"""Decoder and helper changes of issue 9 (spec sections 2, 3, 8.1, 8.3), one by one."""

import ssl

import pytest

from provd.protocol import LoginRefused, ProtocolError, crypto
from provd.protocol.login import ClientLogin, Identity, check_login
from provd.protocol.messages import (
    PROVISIONING_API,
    AppCheckLogin,
    AppInfoResult,
    CheckBuildResult,
    GetServiceLoginResult,
    InvalidMessage,
    ProvisioningPhone,
    decode,
    encode,
    provisioning_phone_problem,
)
from provd.protocol.messages.provisioning import MAX_MEMBER, MAX_PASSWORD_HEX, MAX_SEED
from provd.sim import SimConfig
from provd.sim.config import ConfigError as SimConfigError
from provd.transport.tls import TlsSetupError, client_context, context_for

from ..tlsutil import self_signed

# --- GetServiceLoginResult.error: a number or a text -----------------------------------------


def test_numeric_service_login_error_decodes_with_error_text():
    msg = decode(
        {
            "api": "Services",
            "mt": "GetServiceLoginResult",
            "src": "s",
            "error": 3,
            "errorText": "no permission",
        }
    )
    assert isinstance(msg, GetServiceLoginResult)
    assert (msg.error, msg.error_text, msg.src) == (3, "no permission", "s")
    assert msg.failure == "no permission (error 3)"


@pytest.mark.parametrize(
    ("error", "text", "failure"),
    [
        ("unknown service", None, "unknown service"),
        (7, None, "error 7"),
        (None, "refused", "refused"),
        (0, None, None),  # zero is no error, as the JS client's `if (error)` reads it
        ("", None, None),
        (None, None, None),
    ],
)
def test_service_login_failure_text(error, text, failure):
    body = {"api": "Services", "mt": "GetServiceLoginResult", "error": error, "errorText": text}
    msg = decode({k: v for k, v in body.items() if v is not None})
    assert msg.failure == failure


def test_service_login_error_of_other_type_is_invalid():
    with pytest.raises(InvalidMessage, match="error: expected int or str"):
        decode({"api": "Services", "mt": "GetServiceLoginResult", "error": [1]})


def test_client_login_refuses_numeric_error_with_its_text():
    client = ClientLogin(service="devices@example.com")
    client.start()
    client.on_challenge(decode({"mt": "AppChallengeResult", "challenge": "123"}))
    result = GetServiceLoginResult(error=2, error_text="not allowed")
    with pytest.raises(LoginRefused, match=r"not allowed \(error 2\)"):
        client.on_service_login(result, "0" * 64)


# --- InvalidMessage: known mt, bad members ---------------------------------------------------


def test_invalid_message_keeps_mt_and_src():
    with pytest.raises(InvalidMessage) as caught:
        decode({"mt": "ProvisioningPhone", "src": "x1", "mac": "001565000001"})
    assert (caught.value.mt, caught.value.src) == ("ProvisioningPhone", "x1")
    assert caught.value.reason == "ProvisioningPhone.code: missing"
    assert isinstance(caught.value, ProtocolError)  # callers that close still do


def test_invalid_message_with_bad_src_has_none():
    with pytest.raises(InvalidMessage) as caught:
        decode({"mt": "ProvisioningPhone", "src": 5, "mac": "a", "code": "1"})
    assert caught.value.src is None


def test_missing_mt_is_not_an_invalid_message():
    with pytest.raises(ProtocolError) as caught:
        decode({"src": "x"})
    assert not isinstance(caught.value, InvalidMessage)


# --- ProvisioningPhone size limits -------------------------------------------------------------


def phone(**fields):
    return ProvisioningPhone(**{"mac": "001565000001", "code": "123456789012", **fields})


@pytest.mark.parametrize("name", ["code", "hwid", "usename", "cn", "domain", "dns"])
def test_member_limit_is_inclusive(name):
    assert provisioning_phone_problem(phone(**{name: "a" * MAX_MEMBER})) is None
    problem = provisioning_phone_problem(phone(**{name: "a" * (MAX_MEMBER + 1)}))
    assert problem == f"{name}: longer than {MAX_MEMBER} characters"


def test_password_limits_plain_and_encrypted():
    assert provisioning_phone_problem(phone(password="p" * MAX_MEMBER)) is None
    assert "password" in provisioning_phone_problem(phone(password="p" * (MAX_MEMBER + 1)))
    seed = "10046478319880090512700"
    assert provisioning_phone_problem(phone(seed1=seed, password="ab" * MAX_MEMBER)) is None
    too_long = "ab" * (MAX_PASSWORD_HEX // 2 + 1)
    assert "hex characters" in provisioning_phone_problem(phone(seed1=seed, password=too_long))
    assert provisioning_phone_problem(phone(seed1=seed, password="zz")) == "password: not hex"
    assert "seed1" in provisioning_phone_problem(phone(seed1="1" * (MAX_SEED + 1)))


def test_a_real_tutorial_message_passes():
    msg = decode(
        {
            "mt": "ProvisioningPhone",
            "mac": "112233445566",
            "code": "562822784750",
            "hwid": "112233445566",
            "usename": "test_user",
            "cn": "Test User",
            "seed1": "10046478319880090512700",
            "password": "ddfc00",
            "domain": "test.com",
            "dns": "172.16.0.255",
        }
    )
    assert provisioning_phone_problem(msg) is None


# --- AppInfoResult, CheckBuildResult, AppCheckLogin --------------------------------------------


def test_app_info_result_service_info_member_round_trips():
    wire = {
        "mt": "AppInfoResult",
        "app": "provd",
        "info": {"apis": {}},
        "serviceInfo": {"apis": {PROVISIONING_API: {}}},
    }
    msg = decode(wire)
    assert isinstance(msg, AppInfoResult)
    assert msg.service_info == {"apis": {PROVISIONING_API: {}}}
    assert encode(msg) == wire


def test_check_build_result_has_no_url_unless_given():
    assert encode(CheckBuildResult(src="b")) == {"mt": "CheckBuildResult", "src": "b"}


CHALLENGE = "0123456789abcdef"


@pytest.mark.parametrize(
    "digest",
    [
        # app:domain:sip:guid:dn:challenge:password with empty sip/guid/dn, no info
        crypto.sha256_hex(f"provd:example.com::::{CHALLENGE}:pwd"),
        crypto.sha256_hex(f"provd:example.com:{CHALLENGE}:pwd"),
    ],
)
def test_check_login_accepts_both_digest_readings(digest):
    msg = AppCheckLogin(
        src="c", app="provd", domain="example.com", challenge=CHALLENGE, digest=digest
    )
    result = check_login(msg, "pwd")
    assert (result.ok, result.src, result.app, result.domain, result.error) == (
        True,
        "c",
        "provd",
        "example.com",
        None,
    )
    assert not check_login(msg, "other").ok


def test_check_login_needs_a_challenge():
    digest = Identity(app="provd").digest("", "pwd")
    result = check_login(AppCheckLogin(app="provd", digest=digest), "pwd")
    assert not result.ok and result.error


# --- TLS client contexts ---------------------------------------------------------------------


def test_context_for_plain_and_tls_urls(tmp_path):
    cert, _key = self_signed(tmp_path)
    assert context_for("ws://127.0.0.1:1/devices/", ca_file=str(cert)) is None
    context = context_for("WSS://127.0.0.1:1/devices/", ca_file=str(cert))
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context is context_for("wss://other/", ca_file=str(cert))  # built once


def test_context_without_verification(tmp_path):
    context = client_context("", False)
    assert context.verify_mode == ssl.CERT_NONE and not context.check_hostname


def test_context_bad_files(tmp_path):
    with pytest.raises(TlsSetupError, match="no such file"):
        client_context(str(tmp_path / "missing.pem"))
    junk = tmp_path / "junk.pem"
    junk.write_text("junk")
    with pytest.raises(TlsSetupError, match=r"junk\.pem"):
        client_context(str(junk))


# --- simulator knobs ----------------------------------------------------------------------------


def test_sim_knobs_validated():
    with pytest.raises(SimConfigError, match=r"pbx\.service_apis_from"):
        SimConfig.from_mapping({"pbx": {"service_apis_from": "both"}})
    with pytest.raises(SimConfigError, match=r"devices\.tls_cert/tls_key"):
        SimConfig.from_mapping({"devices": {"tls_cert": "c.pem"}})
    config = SimConfig.from_mapping({"pbx": {"numeric_errors": True}})
    assert config.pbx.numeric_errors and config.pbx.service_apis_from == "service_info"

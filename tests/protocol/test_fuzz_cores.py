"""The error contract of the sans-I/O cores: every decoder and crypto helper raises only
ProtocolError, whatever a peer sends (long seeds and keys, lone surrogates, junk).

Depth: ``PROVD_FUZZ_EXAMPLES`` (see ``fuzz.py``); CI runs the short default.
"""

import contextlib
import json

from hypothesis import example, given
from hypothesis import strategies as st

from provd.protocol import ProtocolError, crypto, normalize_mac
from provd.protocol.jsonwire import loads_object
from provd.protocol.login import ClientLogin, Identity, ServerLogin
from provd.protocol.messages import (
    AppChallenge,
    AppChallengeResult,
    AppLogin,
    GetServiceLoginResult,
    decode_text,
)
from provd.protocol.sysclient import (
    ConfigItem,
    Identify,
    TunnelFrame,
    decrypt_admin_password,
    decrypt_turn_password,
)
from provd.protocol.tunnel import TunnelEndpoint

from .fuzz import FUZZ
from .strategies import hex_text, wire_objects, wire_text

LONG_SEED = "1" * 300  # with ":" and a 64-character key: far over RC4's 256-byte key limit
#: The string fields of an AppLogin.
FIELDS = ("app", "domain", "sip", "guid", "dn", "digest")
SESSION_KEY = "d58c77eae0c1c1f37a9f545e207643c926ad9ea4932016a83a4a01029de37760"


def only_protocol_error(fn, *args, **kwargs):
    """Call ``fn``; a ProtocolError is an answer, any other exception fails the test."""
    with contextlib.suppress(ProtocolError):
        return fn(*args, **kwargs)
    return None


@given(seed=wire_text, key=wire_text, ciphertext=hex_text)
@example(seed=LONG_SEED, key=SESSION_KEY, ciphertext="00ff")
@example(seed="\ud800", key=SESSION_KEY, ciphertext="00ff")
@example(seed="", key="", ciphertext="00")
@FUZZ
def test_app_decrypt(seed, key, ciphertext):
    """AppWebsocketDecrypt: any seed, key and ciphertext → text or ProtocolError."""
    result = only_protocol_error(crypto.app_decrypt, seed, key, ciphertext)
    assert result is None or isinstance(result, str)


def test_long_seed_is_a_protocol_error():
    """A seed that makes the RC4 key longer than 256 bytes is refused as ProtocolError."""
    try:
        crypto.app_decrypt(LONG_SEED, SESSION_KEY, "00ff")
    except ProtocolError as exc:
        assert "key" in exc.reason
    else:
        raise AssertionError("a 365-byte RC4 key was used")


@given(key=wire_text, ciphertext=hex_text)
@example(key="", ciphertext="00ff")
@example(key="k" * 257, ciphertext="00ff")
@FUZZ
def test_rc4_decrypt_hex(key, ciphertext):
    """RC4 hex decryption under any key: text or ProtocolError."""
    only_protocol_error(crypto.rc4_decrypt_hex, key, ciphertext)


@given(seed=wire_text, key=wire_text, plaintext=wire_text)
@example(seed=LONG_SEED, key=SESSION_KEY, plaintext="x")
@FUZZ
def test_app_encrypt_and_hash(seed, key, plaintext):
    """Encrypting and hashing with peer-given seeds: hex or ProtocolError, never a crash."""
    only_protocol_error(crypto.app_encrypt, seed, key, plaintext)
    only_protocol_error(crypto.app_hash, seed, key, plaintext)


@given(
    fields=st.fixed_dictionaries(dict.fromkeys(FIELDS, wire_text)),
    info=st.none() | wire_objects,
)
@example(fields=dict.fromkeys(FIELDS, "\udc80"), info=None)
@FUZZ
def test_server_login_any_app_login(fields, info):
    """The server side of the login: any AppLogin is refused or accepted, nothing else."""
    login = ServerLogin("pwd", challenge_factory=lambda: "0123456789abcdef")
    login.on_challenge(AppChallenge())
    result = only_protocol_error(login.on_login, AppLogin(**fields, info=info))
    assert result is None or result.ok is False


@given(salt=wire_text, key=hex_text, pbx_key=wire_text)
@example(salt=LONG_SEED, key="00ff", pbx_key=SESSION_KEY)
@FUZZ
def test_client_service_login_any_result(salt, key, pbx_key):
    """A GetServiceLoginResult with any salt/key: an AppLogin or ProtocolError."""
    client = ClientLogin(service="devices")
    client.start()
    client.on_challenge(AppChallengeResult(challenge="0123456789abcdef"))
    result = GetServiceLoginResult(app="devices", digest="d", salt=salt, key=key)
    only_protocol_error(client.on_service_login, result, pbx_key)


@given(body=wire_objects, password=wire_text)
@example(body={"seed": LONG_SEED, "pwd": "00ff"}, password=SESSION_KEY)
@example(body={"seed": "\ud800", "pwd": "00ff"}, password=SESSION_KEY)
@FUZZ
def test_sysclient_secrets(body, password):
    """Admin and TURN passwords in sysclient frames: text, None or ProtocolError."""
    only_protocol_error(decrypt_admin_password, body, password)
    media = {"turnSeed": body.get("seed"), "turnPassword": body.get("pwd")}
    only_protocol_error(decrypt_turn_password, media, password)
    only_protocol_error(decrypt_turn_password, body, password)


@given(body=wire_objects)
@FUZZ
def test_sysclient_bodies(body):
    """Identify and config item bodies: decoded or ProtocolError."""
    only_protocol_error(Identify.from_body, body)
    only_protocol_error(ConfigItem.from_body, body)
    only_protocol_error(ConfigItem.from_body, {"config": body, "last": body.get("last")})


@given(text=wire_text)
@FUZZ
def test_normalize_mac(text):
    """Any text is a MAC or ProtocolError."""
    only_protocol_error(normalize_mac, text)


@given(obj=wire_objects, mt=st.sampled_from(["AppLogin", "ProvisioningPhone", "Nope"]))
@example(obj={"app": "\ud800"}, mt="AppLogin")
@FUZZ
def test_json_with_long_and_surrogate_strings(obj, mt):
    """JSON text with long strings and \\u escapes for lone surrogates: ProtocolError only,
    and whatever decodes can be hashed and re-encoded (it is valid Unicode)."""
    text = json.dumps({"mt": mt, **obj})
    decoded = only_protocol_error(loads_object, text)
    if decoded is not None:
        json.dumps(decoded, ensure_ascii=False).encode("utf-8")
    only_protocol_error(decode_text, text)
    only_protocol_error(decode_text, text.encode("utf-8", "surrogatepass"))


@given(
    frames=st.lists(
        st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 6), st.binary(max_size=300)),
        max_size=6,
    )
)
@FUZZ
def test_tunnel_any_frames(frames):
    """The passthrough tunnel: any frame sequence yields frames or ProtocolError."""
    endpoint = TunnelEndpoint(lambda request: b"HTTP/1.1 200 OK\r\n\r\n")
    for session, event, data in frames:
        only_protocol_error(endpoint.receive, TunnelFrame(session, event, data))


def test_identity_digest_with_surrogate_is_protocol_error():
    """A lone surrogate in a login field cannot be hashed: ProtocolError, not UnicodeError."""
    ident = Identity(app="\ud800")
    try:
        ident.digest("0123456789abcdef", "pwd")
    except ProtocolError:
        return
    raise AssertionError("a lone surrogate was hashed")

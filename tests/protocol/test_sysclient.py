"""Sysclient frames and the device-side state machine (spec section 6)."""

import contextlib

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from provd.protocol import ProtocolError, normalize_mac
from provd.protocol.sysclient import (
    AdminFrame,
    AdminPasswordReceived,
    AdminType,
    Authenticated,
    ConfigItem,
    ConfigReceived,
    DeviceState,
    Identify,
    PasswordAssigned,
    SysclientDevice,
    TunnelFrame,
    TunnelReceived,
    challenge_digest,
    decode_frame,
    decrypt_admin_password,
    decrypt_turn_password,
    encode_frame,
    encrypt_admin_password,
)

from .fuzz import FUZZ

PASSWORD = "0123456789abcdef0123456789abcdef"


def admin(kind, body):
    return encode_frame(AdminFrame(kind, body))


class TestFrames:
    def test_admin_frame_layout_big_endian(self):
        """Admin frame: 0x01, 2-byte big-endian type, JSON."""
        assert encode_frame(AdminFrame(0x0006, {"a": 1})) == b'\x01\x00\x06{"a":1}'

    def test_tunnel_frame_layout_big_endian(self):
        """Tunnel frame: 0x02, 4-byte session, 4-byte event, data."""
        frame = TunnelFrame(0x01020304, 2, b"HTTP")
        assert encode_frame(frame) == b"\x02\x01\x02\x03\x04\x00\x00\x00\x02HTTP"
        assert decode_frame(encode_frame(frame)) == frame

    @pytest.mark.parametrize(
        ("data", "reason"),
        [
            (b"", "empty"),
            (b"\x01\x00", "truncated admin"),
            (b"\x02\x00\x00\x00\x01\x00\x00", "truncated tunnel"),
            (b"\x03abc", "unknown sysclient frame kind"),
            (b"\x01\x00\x06\xff", "UTF-8"),
            (b"\x01\x00\x06[1]", "not a JSON object"),
            (b"\x01\x00\x06" + b" " * (300 * 1024), "exceeds"),
        ],
    )
    def test_bad_frames(self, data, reason):
        """Each malformed frame raises ProtocolError with a reason."""
        with pytest.raises(ProtocolError, match=reason):
            decode_frame(data)

    @given(st.binary(max_size=300))
    @example(b"\x01\x00\x00")
    @example(b"\x02" + b"\x00" * 8)
    @FUZZ
    def test_arbitrary_bytes(self, data):
        """Arbitrary bytes decode or raise ProtocolError only."""
        with contextlib.suppress(ProtocolError):
            decode_frame(data)

    @given(
        kind=st.sampled_from(list(AdminType)),
        body=st.dictionaries(st.text(max_size=5), st.text(max_size=10) | st.integers(), max_size=4),
    )
    def test_admin_round_trip(self, kind, body):
        """Admin frames round-trip."""
        assert decode_frame(encode_frame(AdminFrame(kind, body))) == AdminFrame(kind, body)

    @given(session=st.integers(0, 2**32 - 1), event=st.integers(0, 4), data=st.binary(max_size=64))
    def test_tunnel_round_trip(self, session, event, data):
        """Tunnel frames round-trip."""
        frame = TunnelFrame(session, event, data)
        assert decode_frame(encode_frame(frame)) == frame


class TestIdentify:
    def test_mac_normalised(self):
        """The id is normalised to 12 lowercase hex digits."""
        ident = Identify(id="11:22:33:AA:BB:CC", product="provd", version="1")
        assert ident.to_body()["id"] == "112233aabbcc"

    def test_other_true_for_third_party(self):
        """By default the identify says other: true and platform PHONE."""
        body = Identify(id="112233445566", product="p", version="1").to_body()
        assert body["other"] is True and body["platform"] == {"type": "PHONE"}

    def test_round_trip_with_code(self):
        """An identify with code and extras round-trips through its body."""
        ident = Identify(
            id="112233445566",
            product="p",
            version="1",
            provisioning_code="42",
            extra={"fwBuild": "1", "ethIfs": [{"if": "eth0"}]},
        )
        assert Identify.from_body(ident.to_body()) == ident

    @pytest.mark.parametrize("bad", ["", "1122334455", "11223344556g", "1" * 40, 7])
    def test_bad_mac(self, bad):
        """An id that isn't a MAC is a ProtocolError."""
        with pytest.raises(ProtocolError):
            Identify.from_body({"id": bad, "product": "p", "version": "1"})

    def test_normalize_mac_forms(self):
        """Separators and case are normalised away."""
        for form in ["00-04-F2-AA-BB-CC", "0004.f2aa.bbcc", "0004F2AABBCC"]:
            assert normalize_mac(form) == "0004f2aabbcc"

    def test_spec_digest_vector(self):
        """challenge_digest reproduces the spec vector."""
        ident = Identify(id="112233445566", product="provd", version="1")
        assert challenge_digest(ident, "4711", PASSWORD) == (
            "bf1bc2dfefba4c219c557412a1dc9ab4fa19b0af86cd608e8c240a9a73b030c8"
        )


class TestSecrets:
    def test_admin_password_vector(self):
        """A 0x0003 body with the spec vector decrypts to admin-Pwd-42."""
        body = {"seed": "fedcba9876543210", "pwd": "fa071eda236ae7b6791d053d"}
        assert decrypt_admin_password(body, PASSWORD) == "admin-Pwd-42"
        assert encrypt_admin_password("fedcba9876543210", "admin-Pwd-42", PASSWORD) == body

    def test_turn_password(self):
        """MEDIA.turnPassword decrypts with turnSeed and the sysclient password."""
        body = encrypt_admin_password("s33d", "turn-secret", PASSWORD)
        media = {"type": "MEDIA", "turnSeed": "s33d", "turnPassword": body["pwd"]}
        assert decrypt_turn_password(media, PASSWORD) == "turn-secret"
        assert decrypt_turn_password({"type": "MEDIA"}, PASSWORD) is None
        with pytest.raises(ProtocolError):
            decrypt_turn_password({"turnPassword": "abc", "turnSeed": "xy"}, PASSWORD)

    @pytest.mark.parametrize("seed", ["", "x", None])
    def test_turn_password_plain_without_real_seed(self, seed):
        """Found 9.9: a turnSeed of at most one character means turnPassword is plain
        (tutorial: ``if (strlen(seed) > 1)``)."""
        media = {"type": "MEDIA", "turnSeed": seed, "turnPassword": "plain-Turn-1"}
        assert decrypt_turn_password(media, PASSWORD) == "plain-Turn-1"
        assert decrypt_turn_password({"turnPassword": "abc"}, PASSWORD) == "abc"


class TestConfigItem:
    def test_last_top_level(self):
        """last at top level."""
        item = ConfigItem.from_body(
            {"config": {"type": "NTP", "tz": "Europe/Berlin"}, "last": True}
        )
        assert item.type == "NTP" and item.last and item.item["tz"] == "Europe/Berlin"

    def test_last_inside_config(self):
        """last inside config."""
        assert ConfigItem.from_body({"config": {"type": "PHONE", "last": True}}).last

    def test_unknown_type_kept_verbatim(self):
        """An unknown type keeps its whole object."""
        body = {"config": {"type": "FUTURE", "x": [1, {"y": 2}]}}
        assert ConfigItem.from_body(body).item == body["config"]

    @pytest.mark.parametrize(
        "body",
        [
            {},
            {"config": []},
            {"config": {}},
            {"config": {"type": 1}},
            {"config": {"type": "NTP"}, "last": "yes"},
        ],
    )
    def test_bad(self, body):
        """Items without an object, a string type or a boolean last are refused."""
        with pytest.raises(ProtocolError):
            ConfigItem.from_body(body)


IDENT = Identify(id="112233445566", product="provd", version="1")


class TestDeviceFirstConnect:
    def test_identify_with_code_then_password_then_config(self):
        """First connect: identify with code, get password, then the initial config."""
        dev = SysclientDevice(IDENT, code="562822784750")
        first = decode_frame(dev.start())
        assert first.type == AdminType.IDENTIFY
        assert first.body["provisioningCode"] == "562822784750" and "digest" not in first.body
        assert dev.receive(admin(AdminType.PASSWORD, {"password": PASSWORD})) == [
            PasswordAssigned(PASSWORD)
        ]
        assert dev.password == PASSWORD and dev.state is DeviceState.READY
        ev = dev.receive(admin(AdminType.CONFIG, {"config": {"type": "PHONE", "coder": "G722"}}))
        assert ev == [
            ConfigReceived(ConfigItem(type="PHONE", item={"type": "PHONE", "coder": "G722"}))
        ]
        ev = dev.receive(admin(AdminType.CONFIG, {"config": {"type": "NTP"}, "last": True}))
        assert ev[0].completes_initial and dev.initial_config_done
        ev = dev.receive(admin(AdminType.CONFIG, {"config": {"type": "NTP"}, "last": True}))
        assert not ev[0].completes_initial  # a later change, not the initial set

    def test_config_before_password_refused(self):
        """A config item before the password is a protocol error."""
        dev = SysclientDevice(IDENT, code="1")
        dev.start()
        with pytest.raises(ProtocolError):
            dev.receive(admin(AdminType.CONFIG, {"config": {"type": "NTP"}}))

    def test_challenge_on_code_connect_refused(self):
        """A challenge while identifying with a code is a protocol error."""
        dev = SysclientDevice(IDENT, code="1")
        dev.start()
        with pytest.raises(ProtocolError):
            dev.receive(admin(AdminType.CHALLENGE, {"challenge": "1"}))


class TestDeviceReconnect:
    def test_challenge_answered_with_spec_digest(self):
        """Reconnect: identify without code, challenge, identify with the digest."""
        dev = SysclientDevice(IDENT, password=PASSWORD)
        first = decode_frame(dev.start())
        assert "provisioningCode" not in first.body and "digest" not in first.body
        assert dev.receive(admin(AdminType.CHALLENGE, {"challenge": "4711"})) == []
        (answer,) = [decode_frame(f) for f in dev.outgoing()]
        assert answer.body["digest"] == (
            "bf1bc2dfefba4c219c557412a1dc9ab4fa19b0af86cd608e8c240a9a73b030c8"
        )
        assert dev.outgoing() == []
        events = dev.receive(admin(AdminType.CONFIG, {"config": {"type": "NTP", "last": True}}))
        assert isinstance(events[0], Authenticated) and isinstance(events[1], ConfigReceived)

    def test_admin_password_event(self):
        """A 0x0003 frame yields the decrypted administrative password."""
        dev = SysclientDevice(IDENT, password=PASSWORD)
        dev.start()
        dev.receive(admin(AdminType.CHALLENGE, {"challenge": "1"}))
        body = {"seed": "fedcba9876543210", "pwd": "fa071eda236ae7b6791d053d"}
        events = dev.receive(admin(AdminType.ADMIN_PASSWORD, body))
        assert events[-1] == AdminPasswordReceived("admin-Pwd-42")
        assert "admin-Pwd-42" not in repr(events[-1])

    def test_tunnel_before_ready_refused_after_ok(self):
        """Tunnel frames are refused before admission, passed up after."""
        dev = SysclientDevice(IDENT, password=PASSWORD)
        dev.start()
        with pytest.raises(ProtocolError):
            dev.receive(encode_frame(TunnelFrame(1, 0, b"x")))
        dev.receive(admin(AdminType.CHALLENGE, {"challenge": "1"}))
        dev.receive(admin(AdminType.CONFIG, {"config": {"type": "NTP"}}))
        assert dev.receive(encode_frame(TunnelFrame(1, 0, b"x"))) == [
            TunnelReceived(TunnelFrame(1, 0, b"x"))
        ]

    def test_password_frame_before_challenge_admits(self):
        """A password frame instead of a challenge: the device was added to a domain."""
        dev = SysclientDevice(IDENT, password=PASSWORD)
        dev.start()
        assert dev.receive(admin(AdminType.PASSWORD, {"password": "x" * 32})) == [
            PasswordAssigned("x" * 32, with_code=False)
        ]
        assert dev.state is DeviceState.READY

    @given(st.lists(st.binary(max_size=60), max_size=8))
    @FUZZ
    def test_arbitrary_input_sequence(self, frames):
        """Any sequence of messages yields events or ProtocolError only."""
        dev = SysclientDevice(IDENT, password=PASSWORD)
        dev.start()
        for f in frames:
            with contextlib.suppress(ProtocolError):
                dev.receive(f)


def test_device_needs_a_credential():
    """A device needs a code or a password (or both: a code, and the password it keeps)."""
    with pytest.raises(ValueError):
        SysclientDevice(IDENT)
    SysclientDevice(IDENT, code="1", password="p")

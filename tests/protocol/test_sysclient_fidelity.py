"""Issue 9 fidelity of the device side (spec section 8.2), and the device core played
against the simulator's Devices core (a protocol against itself)."""

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from provd.protocol import ProtocolError, crypto
from provd.protocol.sysclient import (
    AdminFrame,
    AdminType,
    Authenticated,
    ConfigReceived,
    DeviceState,
    Identify,
    Ignored,
    PasswordAssigned,
    Settled,
    SysclientDevice,
    TunnelFrame,
    decode_frame,
    decrypt_admin_password,
    decrypt_turn_password,
    encode_frame,
    encrypt_admin_password,
)
from provd.sim.config import SimConfig
from provd.sim.domain import DevicesDomain
from provd.sim.sysclient_server import Admitted, Closed, SysclientServer

from .fuzz import FUZZ

PASSWORD = "0123456789abcdef0123456789abcdef"
IDENT = Identify(id="112233445566", product="provd", version="1")


def admin(kind, body):
    return encode_frame(AdminFrame(kind, body))


def answered(dev: SysclientDevice) -> None:
    dev.start()
    dev.receive(admin(AdminType.CHALLENGE, {"challenge": "4711"}))
    assert len(dev.outgoing()) == 1
    assert dev.state is DeviceState.ANSWERED


class TestPasswordDuringSession:
    def test_password_mid_session_replaces_stored(self):
        """Found 9.2: a 0x0001 during an established session is a new password."""
        dev = SysclientDevice(IDENT, password=PASSWORD)
        answered(dev)
        dev.receive(admin(AdminType.CONFIG, {"last": True}))
        new = "N" * 32
        assert dev.receive(admin(AdminType.PASSWORD, {"password": new})) == [
            PasswordAssigned(new, with_code=False)
        ]
        assert dev.password == new and dev.state is DeviceState.READY
        # The admin password is now decrypted with the new credential.
        body = encrypt_admin_password("fedcba9876543210", "admin-Pwd-42", new)
        assert dev.receive(admin(AdminType.ADMIN_PASSWORD, body))[-1].password == "admin-Pwd-42"

    def test_password_right_after_digest_admits(self):
        """A password instead of silence after the digest: admitted and reassigned."""
        dev = SysclientDevice(IDENT, password=PASSWORD)
        answered(dev)
        events = dev.receive(admin(AdminType.PASSWORD, {"password": "M" * 32}))
        assert events == [Authenticated(), PasswordAssigned("M" * 32, with_code=False)]


class TestChallengeAfterCode:
    def test_challenge_after_code_answered_with_stored_password(self):
        """Found 9.2: device already in a domain: a challenge follows the code identify."""
        dev = SysclientDevice(IDENT, code="562822784750", password=PASSWORD)
        first = decode_frame(dev.start())
        assert first.body["provisioningCode"] == "562822784750"
        assert dev.receive(admin(AdminType.CHALLENGE, {"challenge": "4711"})) == []
        (answer,) = [decode_frame(f) for f in dev.outgoing()]
        assert answer.body["digest"] == (
            "bf1bc2dfefba4c219c557412a1dc9ab4fa19b0af86cd608e8c240a9a73b030c8"
        )
        assert dev.quiet() == [Authenticated(code_challenged=True), Settled(by_quiet=True)]
        assert dev.password == PASSWORD  # the old credential is kept

    def test_challenge_after_code_without_password_is_an_error(self):
        dev = SysclientDevice(IDENT, code="1")
        dev.start()
        with pytest.raises(ProtocolError, match="already in a Devices domain"):
            dev.receive(admin(AdminType.CHALLENGE, {"challenge": "1"}))

    def test_code_with_password_then_new_password(self):
        """Code accepted: the new password replaces the old one, flagged with_code."""
        dev = SysclientDevice(IDENT, code="1", password=PASSWORD)
        dev.start()
        assert dev.receive(admin(AdminType.PASSWORD, {"password": "Q" * 32})) == [
            PasswordAssigned("Q" * 32, with_code=True)
        ]


class TestSilenceAfterDigest:
    def test_quiet_after_digest_is_admission(self):
        """Found 9.3: Devices may send nothing after a correct digest."""
        dev = SysclientDevice(IDENT, password=PASSWORD)
        answered(dev)
        assert dev.wants_quiet_timer
        assert dev.quiet() == [Authenticated(), Settled(by_quiet=True)]
        assert dev.state is DeviceState.READY and not dev.wants_quiet_timer
        assert dev.quiet() == []

    def test_quiet_before_any_answer_means_nothing(self):
        dev = SysclientDevice(IDENT, password=PASSWORD)
        dev.start()
        assert not dev.wants_quiet_timer
        assert dev.quiet() == []
        assert dev.state is DeviceState.AWAITING_CHALLENGE

    def test_items_then_quiet_settles(self):
        """Items without a last, then quiet: settled (nothing more is coming)."""
        dev = SysclientDevice(IDENT, code="1")
        dev.start()
        dev.receive(admin(AdminType.PASSWORD, {"password": PASSWORD}))
        dev.receive(admin(AdminType.CONFIG, {"config": {"type": "NTP"}}))
        assert dev.wants_quiet_timer
        assert dev.quiet() == [Settled(by_quiet=True)]


class TestBareLast:
    def test_bare_last_closes_initial_set(self):
        """Found 9.4: {"last":true} without config closes the initial set."""
        dev = SysclientDevice(IDENT, code="1")
        dev.start()
        dev.receive(admin(AdminType.PASSWORD, {"password": PASSWORD}))
        dev.receive(admin(AdminType.CONFIG, {"config": {"type": "NTP"}, "last": False}))
        events = dev.receive(admin(AdminType.CONFIG, {"last": True}))
        assert events == [ConfigReceived(None, completes_initial=True), Settled()]
        assert dev.initial_config_done

    def test_bare_last_false_is_harmless(self):
        dev = SysclientDevice(IDENT, code="1")
        dev.start()
        dev.receive(admin(AdminType.PASSWORD, {"password": PASSWORD}))
        assert dev.receive(admin(AdminType.CONFIG, {"last": False})) == [ConfigReceived(None)]


class TestUnknown:
    @pytest.mark.parametrize("kind", [0x0007, 0x0010, 0xFFFF])
    def test_unknown_admin_type_ignored(self, kind):
        """Found 9.5: newer firmware's admin types are ignored, never an error."""
        dev = SysclientDevice(IDENT, password=PASSWORD)
        answered(dev)
        events = dev.receive(admin(kind, {"path": "/x"}))
        assert events[0] == Authenticated() and isinstance(events[1], Ignored)
        assert dev.receive(b"\x01" + kind.to_bytes(2, "big") + b"not json") == [
            Ignored(f"unknown admin type 0x{kind:04x}")
        ]

    def test_device_sent_types_ignored(self):
        dev = SysclientDevice(IDENT, password=PASSWORD)
        answered(dev)
        dev.quiet()
        (event,) = dev.receive(admin(AdminType.IDENTIFY, {"id": "x"}))
        assert isinstance(event, Ignored)


class TestLongSeeds:
    @given(seed=st.text(min_size=0, max_size=600), plaintext=st.text(max_size=40))
    @FUZZ
    def test_admin_password_any_seed(self, seed, plaintext):
        """Found 8.4: any seed length decrypts or raises ProtocolError (never ValueError)."""
        body = {"seed": seed, "pwd": "fa071eda236ae7b6791d053d"}
        too_long = len(f"{seed}:{PASSWORD}".encode()) > crypto.MAX_RC4_KEY
        try:
            decrypt_admin_password(body, PASSWORD)
        except ProtocolError as exc:  # a long key, or garbage that is not UTF-8
            assert too_long == exc.reason.startswith("RC4 key")
        else:
            assert not too_long
        try:
            crypto.rc4_encrypt_hex(seed, plaintext)
        except ProtocolError:
            assert not 5 <= len(seed.encode()) <= 256

    @given(seed=st.text(min_size=2, max_size=600))
    @FUZZ
    def test_turn_password_any_seed(self, seed):
        media = {"type": "MEDIA", "turnSeed": seed, "turnPassword": "00ff"}
        with contextlib.suppress(ProtocolError):
            decrypt_turn_password(media, PASSWORD)

    def test_long_seed_is_a_protocol_error(self):
        """Found 8.4: a 0x0003 seed making the key longer than 256 bytes."""
        body = {"seed": "s" * 300, "pwd": "00"}
        with pytest.raises(ProtocolError, match="RC4 key of 333 bytes"):
            decrypt_admin_password(body, PASSWORD)
        dev = SysclientDevice(IDENT, password=PASSWORD)
        answered(dev)
        with pytest.raises(ProtocolError):
            dev.receive(admin(AdminType.ADMIN_PASSWORD, body))


# --- the device core against the simulator's Devices core ------------------------------


def make_domain() -> DevicesDomain:
    config = SimConfig.default()
    return DevicesDomain(config.devices.domains)


def exchange(dev: SysclientDevice, server: SysclientServer, first: bytes):
    """Pump frames between the two cores one message at a time; return both event logs."""
    dev_events, server_events = [], []
    to_server, to_device = [first], []
    while to_server or to_device:
        if to_server:
            server_events += server.receive(to_server.pop(0))
            to_device += server.outgoing()
        if to_device:
            dev_events += dev.receive(to_device.pop(0))
            to_server += dev.outgoing()
    return dev_events, server_events


def test_against_devices_core_first_time_then_challenge():
    domain = make_domain()
    (dom,) = [d for d in domain.domains.values() if d.name == "example.com"]
    code = domain.issue_code(domain_id=dom.id, category="Phones")
    dev = SysclientDevice(IDENT, code=code.code)
    dev_events, server_events = exchange(dev, SysclientServer(domain), dev.start())
    assert isinstance(server_events[0], Admitted)
    password = next(e.password for e in dev_events if isinstance(e, PasswordAssigned))
    assert password == domain.devices[IDENT.id].password
    assert any(isinstance(e, Settled) for e in dev_events)
    # Reconnect: silence after the digest by default, the quiet timer admits.
    again = SysclientDevice(IDENT, password=password)
    dev_events, server_events = exchange(again, SysclientServer(domain), again.start())
    assert isinstance(server_events[-1], Admitted)
    assert again.state is DeviceState.ANSWERED and again.quiet()[0] == Authenticated()


def test_against_devices_core_digest_uses_this_connections_identify():
    """The Devices core recomputes the digest from the identify of this connection."""
    domain = make_domain()
    (dom,) = [d for d in domain.domains.values() if d.name == "example.com"]
    code = domain.issue_code(domain_id=dom.id, category="Phones")
    dev = SysclientDevice(IDENT, code=code.code)
    exchange(dev, SysclientServer(domain), dev.start())
    renamed = Identify(id=IDENT.id, product="Yealink T54W", version="96.86.0.70")
    again = SysclientDevice(renamed, password=dev.password)
    _, server_events = exchange(again, SysclientServer(domain), again.start())
    assert isinstance(server_events[-1], Admitted)
    assert domain.devices[IDENT.id].product == "Yealink T54W"
    wrong = SysclientDevice(renamed, password="W" * 32)
    _, server_events = exchange(wrong, SysclientServer(domain), wrong.start())
    assert isinstance(server_events[-1], Closed)


def test_tunnel_frames_decode_piecewise_sequence():
    """Frames fed one by one in any order yield only events or ProtocolError."""
    dev = SysclientDevice(IDENT, password=PASSWORD)
    answered(dev)
    for data in [
        encode_frame(TunnelFrame(1, 0, b"GET / HTTP/1.1\r\n")),
        encode_frame(TunnelFrame(1, 0, b"\r\n")),
        encode_frame(TunnelFrame(1, 1, b"\x00\x00\x10\x00")),
    ]:
        assert dev.receive(data)

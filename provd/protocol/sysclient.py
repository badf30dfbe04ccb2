"""The Sysclient protocol: binary frames between a device and the Devices app (spec section 6).

Theory of operation: one websocket binary message carries exactly one frame, so framing is
per message (no stream reassembly). Two frame kinds, integers big-endian (the SDK's
``doc/protocol/sysclient.htm`` says only "word"/"dword"; network byte order is our
assumption, see README "Where the public documentation is silent")::

    admin  : 0x01 | type (2 bytes) | JSON (UTF-8)
    tunnel : 0x02 | session (4 bytes) | event (4 bytes) | data

:func:`decode_frame` / :func:`encode_frame` are the codec. :class:`SysclientDevice` is the
device side as a sans-I/O state machine (provd plays the device for each 3rd-party phone):
feed it each received message with :meth:`SysclientDevice.receive`, send what
:meth:`SysclientDevice.outgoing` returns, and act on the events. The Devices side (the
simulator) uses the same codec.
"""

from __future__ import annotations

import enum
import struct
from typing import Any

import attrs
from attrs import frozen

from . import crypto, jsonwire
from .errors import ProtocolError
from .mac import normalize_mac

ADMIN = 0x01
TUNNEL = 0x02

#: Cap on one sysclient message. Configuration items are small; tunnel chunks are bounded
#: by the receive length the Devices app asks for.
MAX_FRAME_SIZE = 256 * 1024

#: Cap on a receive length asked for in a tunnel ``RECEIVE`` event.
MAX_TUNNEL_CHUNK = 64 * 1024


class AdminType(enum.IntEnum):
    IDENTIFY = 0x0000  # device → Devices
    PASSWORD = 0x0001  # ← the device's sysclient password, on first identify
    CHALLENGE = 0x0002  # ← answer with identify + digest
    ADMIN_PASSWORD = 0x0003  # ← administrative password, RC4 under the sysclient password
    PROVISION = 0x0004  # → FXS only
    PROVISION_RESULT = 0x0005  # ←
    CONFIG = 0x0006  # ← one configuration item


class TunnelEvent(enum.IntEnum):
    SEND = 0  # ← HTTP bytes for the device
    RECEIVE = 1  # ← the Devices app wants up to N bytes (4-byte length)
    RECEIVE_RESULT = 2  # → HTTP bytes from the device
    SEND_RESULT = 3  # → acknowledges a SEND
    SHUTDOWN = 4  # both ways; answer a shutdown with a shutdown


@frozen
class AdminFrame:
    type: int
    body: dict[str, Any]


@frozen
class TunnelFrame:
    session: int
    event: int
    data: bytes = b""


Frame = AdminFrame | TunnelFrame

_ADMIN_HEADER = struct.Struct(">BH")
_TUNNEL_HEADER = struct.Struct(">BII")


def encode_frame(frame: Frame) -> bytes:
    if isinstance(frame, AdminFrame):
        return _ADMIN_HEADER.pack(ADMIN, frame.type) + jsonwire.dumps(frame.body).encode()
    return _TUNNEL_HEADER.pack(TUNNEL, frame.session, frame.event) + frame.data


def decode_frame(data: bytes, *, max_size: int = MAX_FRAME_SIZE) -> Frame:
    """Decode one binary websocket message.

    An admin type this module does not know decodes to an :class:`AdminFrame` with that
    type (newer firmware adds messages; receivers ignore them, spec section 8.2).

    Raises:
        ProtocolError: empty, oversized, truncated header, unknown frame kind, or a known
            admin type whose body is not a UTF-8 JSON object.
    """
    if len(data) > max_size:
        raise ProtocolError(f"sysclient frame of {len(data)} bytes exceeds {max_size}")
    if not data:
        raise ProtocolError("empty sysclient frame")
    kind = data[0]
    if kind == ADMIN:
        if len(data) < _ADMIN_HEADER.size:
            raise ProtocolError("truncated admin frame")
        _, admin_type = _ADMIN_HEADER.unpack_from(data)
        try:
            body = jsonwire.loads_object(data[_ADMIN_HEADER.size :], max_size=max_size)
        except ProtocolError:
            if admin_type in AdminType._value2member_map_:
                raise
            body = {}  # newer firmware's message: the receiver ignores it anyway
        return AdminFrame(admin_type, body)
    if kind == TUNNEL:
        if len(data) < _TUNNEL_HEADER.size:
            raise ProtocolError("truncated tunnel frame")
        _, session, event = _TUNNEL_HEADER.unpack_from(data)
        return TunnelFrame(session, event, bytes(data[_TUNNEL_HEADER.size :]))
    raise ProtocolError(f"unknown sysclient frame kind 0x{kind:02x}")


# --- admin payloads ---------------------------------------------------------------------


def _str(body: dict[str, Any], key: str, *, required: bool = True) -> str | None:
    value = body.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise ProtocolError(f"{key}: expected a string")
    return value


@frozen(kw_only=True)
class Identify:
    """The device's introduction. ``other=True`` marks a non-innovaphone device: Devices
    hides its admin UI and sends it every configuration item."""

    id: str = attrs.field(converter=normalize_mac)
    product: str
    version: str
    platform_type: str = "PHONE"
    provisioning_code: str | None = None
    digest: str | None = None
    name: str | None = None
    other: bool = True
    extra: dict[str, Any] = attrs.field(factory=dict)

    def to_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "product": self.product,
            "version": self.version,
            "platform": {"type": self.platform_type},
        }
        if self.provisioning_code is not None:
            body["provisioningCode"] = self.provisioning_code
        if self.digest is not None:
            body["digest"] = self.digest
        if self.name is not None:
            body["name"] = self.name
        body["other"] = self.other
        body.update(self.extra)
        return body

    def to_frame(self) -> AdminFrame:
        return AdminFrame(AdminType.IDENTIFY, self.to_body())

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> Identify:
        """Raises :class:`ProtocolError` for a missing/invalid id, product or version."""
        platform = body.get("platform", {})
        if not isinstance(platform, dict):
            raise ProtocolError("platform: expected an object")
        ptype = platform.get("type", "PHONE")
        if not isinstance(ptype, str):
            raise ProtocolError("platform.type: expected a string")
        other = body.get("other", False)
        if not isinstance(other, bool):
            raise ProtocolError("other: expected true or false")
        known = {"id", "product", "version", "platform", "provisioningCode", "digest", "name"}
        known.add("other")
        return cls(
            id=_str(body, "id"),
            product=_str(body, "product"),
            version=_str(body, "version"),
            platform_type=ptype,
            provisioning_code=_str(body, "provisioningCode", required=False),
            digest=_str(body, "digest", required=False),
            name=_str(body, "name", required=False),
            other=other,
            extra={k: v for k, v in body.items() if k not in known},
        )


def challenge_digest(identify: Identify, challenge: str, password: str) -> str:
    """``sha256(id:product:version:challenge:password)``."""
    return crypto.sysclient_digest(
        id=identify.id,
        product=identify.product,
        version=identify.version,
        challenge=challenge,
        password=password,
    )


def decrypt_admin_password(body: dict[str, Any], sysclient_password: str) -> str:
    """The plaintext of a ``0x0003`` frame: RC4 keyed ``seed:<sysclient password>``."""
    seed = _str(body, "seed")
    pwd = _str(body, "pwd")
    return crypto.rc4_decrypt_hex(f"{seed}:{sysclient_password}", pwd)


def encrypt_admin_password(seed: str, plaintext: str, sysclient_password: str) -> dict[str, str]:
    """The body of a ``0x0003`` frame (the Devices side)."""
    return {"seed": seed, "pwd": crypto.rc4_encrypt_hex(f"{seed}:{sysclient_password}", plaintext)}


@frozen(kw_only=True)
class ConfigItem:
    """One configuration item, verbatim. ``last`` closes the initial set."""

    type: str
    item: dict[str, Any]
    last: bool = False

    def to_body(self) -> dict[str, Any]:
        return {"config": self.item, "last": self.last}

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> ConfigItem | None:
        """Accepts ``last`` at top level or inside ``config``.

        Returns None for a bare ``{"last":true}`` (or ``false``) frame without a ``config``:
        the SDK tutorial reads ``last`` at the top level independently of ``config``
        (spec section 8.2), so such a frame only closes the initial set.

        Raises:
            ProtocolError: a ``config`` that is not an object or has no string ``type``,
                a non-boolean ``last``.
        """
        config = body.get("config")
        if config is None and "last" in body:
            if not isinstance(body["last"], bool):
                raise ProtocolError("last: expected true or false")
            return None
        if not isinstance(config, dict):
            raise ProtocolError("config: expected an object")
        ctype = config.get("type")
        if not isinstance(ctype, str) or not ctype:
            raise ProtocolError("config.type: expected a string")
        last = body.get("last", config.get("last", False))
        if not isinstance(last, bool):
            raise ProtocolError("last: expected true or false")
        return cls(type=ctype, item=config, last=last)


def bare_last(body: dict[str, Any]) -> bool:
    """The ``last`` flag of a 0x0006 body whose :meth:`ConfigItem.from_body` is None."""
    return body.get("last") is True


def decrypt_turn_password(media: dict[str, Any], sysclient_password: str) -> str | None:
    """``MEDIA.turnPassword`` in clear: encrypted like the admin password, seed ``turnSeed``.

    Only when ``turnSeed`` is longer than one character is the password encrypted; otherwise
    it is plain (the provisioning tutorial: ``if (strlen(seed) > 1)``, spec section 8.2).
    Returns None when the item has no TURN password. Raises :class:`ProtocolError` when it
    does not decrypt.
    """
    pwd = media.get("turnPassword")
    if not pwd:
        return None
    seed = media.get("turnSeed", "")
    if seed is None:
        seed = ""
    if not isinstance(seed, str) or not isinstance(pwd, str):
        raise ProtocolError("MEDIA: turnSeed/turnPassword must be strings")
    if len(seed) <= 1:
        return pwd
    return crypto.rc4_decrypt_hex(f"{seed}:{sysclient_password}", pwd)


# --- the device side --------------------------------------------------------------------


@frozen
class PasswordAssigned:
    """Devices assigned the device a sysclient password; it replaces any stored one.

    ``with_code``: the answer to an identify with a provisioning code (first assignment);
    otherwise an administrator added the device to a domain during the session
    (SDK sysclient.htm: "If the sysclient is added to a domain during this session, an
    admin sysclient password message is received").
    """

    password: str = attrs.field(repr=False)
    with_code: bool = True


@frozen
class Authenticated:
    """Devices did not close after our digest: the reconnect is established.

    Devices sends no explicit "ok" and may send nothing at all after a correct digest
    (SDK: 0x0003 only if the domain deploys a password, config only if one applies).
    Any frame after the digest, or a quiet period without a close
    (:meth:`SysclientDevice.quiet`), counts as admission.
    """

    #: True when a challenge answered an identify that carried a provisioning code: the
    #: device was already in a domain and the stored password admitted it.
    code_challenged: bool = False


@frozen
class ConfigReceived:
    #: None for a bare ``{"last":...}`` frame.
    item: ConfigItem | None
    #: True for the frame that closes the initial set (the first ``last``).
    completes_initial: bool = False


@frozen
class Settled:
    """The connection is admitted and its initial configuration is in: either the first
    ``last`` arrived, or Devices stayed quiet (no configuration applies). Once per
    connection."""

    by_quiet: bool = False


@frozen
class AdminPasswordReceived:
    password: str = attrs.field(repr=False)


@frozen
class ProvisionResult:
    body: dict[str, Any]


@frozen
class TunnelReceived:
    frame: TunnelFrame


@frozen
class Ignored:
    """A frame the device does not use (e.g. an admin type of newer firmware); log at debug."""

    what: str


SysclientEvent = (
    PasswordAssigned
    | Authenticated
    | ConfigReceived
    | Settled
    | AdminPasswordReceived
    | ProvisionResult
    | TunnelReceived
    | Ignored
)


class DeviceState(enum.Enum):
    IDLE = "idle"
    IDENTIFYING = "identifying"  # identify with code sent, waiting for a password
    AWAITING_CHALLENGE = "awaiting-challenge"  # identify without code sent
    ANSWERED = "answered"  # digest sent
    READY = "ready"


#: Device-to-Devices admin types a device ignores if Devices ever echoes them.
_DEVICE_SENT = (AdminType.IDENTIFY, AdminType.PROVISION)


class SysclientDevice:
    """The device side of one Sysclient connection.

    Args:
        identify: how the device introduces itself on this connection (without code or
            digest); the digest is computed from exactly its ``product``/``version``.
        code: a provisioning code not yet answered by a password.
        password: the stored sysclient password. With a code as well, it answers a
            challenge (the device is already in a domain); it is never dropped here.
    """

    def __init__(self, identify: Identify, *, code: str | None = None, password: str | None = None):
        if not code and not password:
            raise ValueError("give a provisioning code or a stored password")
        self._identify = identify
        self._code = code or None
        self.password = password or None
        self.state = DeviceState.IDLE
        self.initial_config_done = False
        self.settled = False
        self._code_challenged = False
        self._out: list[bytes] = []

    @property
    def identify(self) -> Identify:
        return self._identify

    def start(self) -> bytes:
        """The first frame to send after connecting."""
        if self._code is not None:
            self.state = DeviceState.IDENTIFYING
            ident = attrs.evolve(self._identify, provisioning_code=self._code)
        else:
            self.state = DeviceState.AWAITING_CHALLENGE
            ident = self._identify
        return encode_frame(ident.to_frame())

    def outgoing(self) -> list[bytes]:
        """Frames the state machine wants sent (e.g. the challenge answer), oldest first."""
        out, self._out = self._out, []
        return out

    @property
    def wants_quiet_timer(self) -> bool:
        """True while silence from Devices means something (:meth:`quiet`)."""
        return self.state is DeviceState.ANSWERED or (
            self.state is DeviceState.READY and not self.settled
        )

    def quiet(self) -> list[SysclientEvent]:
        """Devices sent nothing for the quiet period (the shell's timer; no close came).

        After the digest that is admission; once admitted without a ``last`` yet, it means
        no (further) initial configuration is coming.
        """
        events = self._authenticated_now()
        if self.state is DeviceState.READY and not self.settled:
            self.settled = True
            events.append(Settled(by_quiet=True))
        return events

    def receive(self, data: bytes) -> list[SysclientEvent]:
        """Handle one received binary message.

        Raises:
            ProtocolError: malformed frame, or a frame not allowed in the current state.
        """
        frame = decode_frame(data)
        events: list[SysclientEvent] = self._authenticated_now()
        if isinstance(frame, TunnelFrame):
            self._require_ready("tunnel frame")
            return [*events, TunnelReceived(frame)]
        kind = frame.type
        if kind == AdminType.PASSWORD:
            return events + self._on_password(frame.body)
        if kind == AdminType.CHALLENGE:
            return events + self._on_challenge(frame.body)
        if kind == AdminType.CONFIG:
            self._require_ready("configuration item")
            item = ConfigItem.from_body(frame.body)
            is_last = item.last if item is not None else bare_last(frame.body)
            first_last = is_last and not self.initial_config_done
            if first_last:
                self.initial_config_done = True
            events.append(ConfigReceived(item, completes_initial=first_last))
            if first_last and not self.settled:
                self.settled = True
                events.append(Settled())
        elif kind == AdminType.ADMIN_PASSWORD:
            self._require_ready("administrative password")
            assert self.password is not None
            events.append(AdminPasswordReceived(decrypt_admin_password(frame.body, self.password)))
        elif kind == AdminType.PROVISION_RESULT:
            self._require_ready("provision result")
            events.append(ProvisionResult(frame.body))
        elif kind in _DEVICE_SENT:
            events.append(Ignored(f"admin type {AdminType(kind).name} sent to a device"))
        else:
            events.append(Ignored(f"unknown admin type 0x{kind:04x}"))
        return events

    def _require_ready(self, what: str) -> None:
        if self.state is not DeviceState.READY:
            raise ProtocolError(f"{what} before the device was admitted ({self.state.value})")

    def _authenticated_now(self) -> list[SysclientEvent]:
        if self.state is DeviceState.ANSWERED:
            self.state = DeviceState.READY
            return [Authenticated(code_challenged=self._code_challenged)]
        return []

    def _on_password(self, body: dict[str, Any]) -> list[SysclientEvent]:
        password = _str(body, "password")
        if not password or len(password) > 256:
            raise ProtocolError("sysclient password empty or too long")
        with_code = self.state is DeviceState.IDENTIFYING
        if self.state is not DeviceState.READY:
            # The answer to our code, or the device was added to a domain before it
            # could answer a challenge: either way it is in now.
            self.state = DeviceState.READY
        self.password = password
        return [PasswordAssigned(password, with_code=with_code)]

    def _on_challenge(self, body: dict[str, Any]) -> list[SysclientEvent]:
        if self.state not in (DeviceState.AWAITING_CHALLENGE, DeviceState.IDENTIFYING):
            raise ProtocolError(f"challenge not expected ({self.state.value})")
        challenge = _str(body, "challenge")
        if not challenge or len(challenge) > 256:
            raise ProtocolError("challenge empty or too long")
        if self.password is None:
            raise ProtocolError(
                "challenged after a provisioning code, but no stored sysclient password: "
                "the device is already in a Devices domain"
            )
        self._code_challenged = self.state is DeviceState.IDENTIFYING
        digest = challenge_digest(self._identify, challenge, self.password)
        self._out.append(encode_frame(attrs.evolve(self._identify, digest=digest).to_frame()))
        self.state = DeviceState.ANSWERED
        return []

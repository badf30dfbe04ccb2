"""The Devices side of one Sysclient connection, as a sans-I/O state machine (spec section 6).

Theory of operation: the mirror image of :class:`provd.protocol.sysclient.SysclientDevice`,
sharing its frame codec. Feed each received binary message to :meth:`SysclientServer.receive`,
send what :meth:`SysclientServer.outgoing` returns, then act on the events; on
:class:`Refused` the shell closes the socket (that is how Devices says no)::

    AWAIT_IDENTIFY --identify+code ok--> ADMITTED   (0x0001 password, 0x0003?, 0x0006...)
    AWAIT_IDENTIFY --identify, known---> CHALLENGED (0x0002 challenge)
    CHALLENGED     --identify+digest ok-> ADMITTED  (nothing, or 0x0003? 0x0006...)
    anything wrong ----------------------> CLOSED

Variants (spec section 8.2, knobs in :class:`~.config.DevicesConfig`): what follows a
correct digest (``after_digest``: silent or the full set again), how the initial set ends
(``last_frame``: a bare ``{"last":true}`` frame or ``last`` on the final item), and what a
code identify of a device already in a domain gets (``code_when_known``: a fresh password,
or a challenge). The digest is recomputed from the first identify of the connection: the
second one must carry the same id, product and version.

Admission decisions are the :class:`~.domain.DevicesDomain`'s; this class only sequences.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any

import attrs

from ..protocol import ProtocolError, crypto
from ..protocol.sysclient import (
    AdminFrame,
    AdminType,
    Identify,
    TunnelFrame,
    decode_frame,
    encode_frame,
)
from .domain import Admission, DeviceRecord, DevicesDomain, Refused


class ServerState(enum.Enum):
    AWAIT_IDENTIFY = "await-identify"
    CHALLENGED = "challenged"
    ADMITTED = "admitted"
    CLOSED = "closed"


@attrs.frozen
class Admitted:
    """The device is in. ``admission`` is set for a code identify (first time)."""

    device: DeviceRecord
    admission: Admission | None = None


@attrs.frozen
class Closed:
    """Refused; close the socket. ``reason`` is log-safe."""

    reason: str


@attrs.frozen
class TunnelReceived:
    frame: TunnelFrame


@attrs.frozen
class ProvisionRequest:
    """0x0004 (FXS only): logged and answered with an error."""

    body: dict[str, Any]


SysclientServerEvent = Admitted | Closed | TunnelReceived | ProvisionRequest


class SysclientServer:
    """One device connection, Devices side.

    Args:
        domain: the Devices state deciding admissions.
        last_inside_config: put ``last`` inside ``config`` (both are legal, spec section 6).
    """

    def __init__(
        self,
        domain: DevicesDomain,
        *,
        last_inside_config: bool = False,
        challenge_factory: Callable[[], str] = crypto.new_challenge,
        after_digest: str = "silent",
        last_frame: str = "bare",
        code_when_known: str = "password",
    ) -> None:
        self._domain = domain
        self._last_inside = last_inside_config
        self._after_digest = after_digest
        self._last_frame = last_frame
        self._code_when_known = code_when_known
        self._new_challenge = challenge_factory
        self._challenge: str | None = None
        #: The device's first identify of this connection.
        self.identity: Identify | None = None
        self.state = ServerState.AWAIT_IDENTIFY
        self.device: DeviceRecord | None = None
        #: What the last received admin frame was (``IDENTIFY``...) or ``TUNNEL``; for faults.
        self.last_received: str = ""
        self._out: list[bytes] = []

    @property
    def mac(self) -> str | None:
        return self.device.mac if self.device else None

    def outgoing(self) -> list[bytes]:
        out, self._out = self._out, []
        return out

    @property
    def has_outgoing(self) -> bool:
        return bool(self._out)

    def receive(self, data: bytes) -> list[SysclientServerEvent]:
        """Handle one binary message. Never raises for peer input: bad input → Closed."""
        if self.state is ServerState.CLOSED:
            return []
        try:
            frame = decode_frame(data)
        except ProtocolError as exc:
            return self._close(f"malformed frame: {exc.reason}")
        if isinstance(frame, TunnelFrame):
            self.last_received = "TUNNEL"
            if self.state is not ServerState.ADMITTED:
                return self._close("tunnel frame before admission")
            return [TunnelReceived(frame)]
        known = frame.type in AdminType._value2member_map_
        self.last_received = AdminType(frame.type).name if known else f"0x{frame.type:04x}"
        try:
            if frame.type == AdminType.IDENTIFY:
                return self._on_identify(Identify.from_body(frame.body))
            if frame.type == AdminType.PROVISION and self.state is ServerState.ADMITTED:
                self._send(AdminType.PROVISION_RESULT, {"error": "not supported"})
                return [ProvisionRequest(frame.body)]
            return self._close(f"admin frame {self.last_received} not expected")
        except ProtocolError as exc:
            return self._close(f"bad identify: {exc.reason}")
        except Refused as exc:
            return self._close(exc.reason)

    def push_config(self, types: set[str] | None = None) -> None:
        """Queue (changed) configuration items; the last one is flagged ``last``."""
        if self.state is ServerState.ADMITTED and self.device is not None:
            self._send_config(self._domain.config_items(self.device, types))

    def assign_password(self) -> str | None:
        """An administrator (re)adds the admitted device to its domain during the session:
        a fresh 0x0001. Returns the new password (None when not admitted)."""
        if self.state is not ServerState.ADMITTED or self.device is None:
            return None
        password = self._domain.reassign_password(self.device.mac)
        self._send(AdminType.PASSWORD, {"password": password})
        return password

    def send_unknown(self) -> None:
        """Messages of newer firmware: an unknown admin type and an unknown tunnel event."""
        self._out.append(encode_frame(AdminFrame(0x0007, {"path": "/instance", "result": 0})))
        self._out.append(encode_frame(TunnelFrame(0, 9, b"\x00\x00\x00\x00")))

    def _on_identify(self, ident: Identify) -> list[SysclientServerEvent]:
        known_with_code = (
            self._code_when_known == "challenge"
            and ident.provisioning_code
            and ident.id in self._domain.devices
            and self._domain.devices[ident.id].password
        )
        if self.state is ServerState.AWAIT_IDENTIFY and known_with_code:
            ident = attrs.evolve(ident, provisioning_code=None)  # already in a domain
        if self.state is ServerState.AWAIT_IDENTIFY and ident.provisioning_code:
            self.identity = ident
            admission = self._domain.identify_with_code(ident)
            self._send(AdminType.PASSWORD, {"password": admission.password})
            return self._admit(admission.device, admission)
        if self.state is ServerState.AWAIT_IDENTIFY:
            self._domain.challenge_for(ident)
            self.identity = ident
            self._challenge = self._new_challenge()
            self.state = ServerState.CHALLENGED
            self._send(AdminType.CHALLENGE, {"challenge": self._challenge})
            return []
        if self.state is ServerState.CHALLENGED:
            assert self.identity is not None and self._challenge is not None
            first = self.identity
            if (ident.id, ident.product, ident.version) != (first.id, first.product, first.version):
                raise Refused("second identify differs from the first (id, product or version)")
            # The digest over the identify this connection began with (spec section 8.2).
            device = self._domain.verify_digest(
                attrs.evolve(first, digest=ident.digest), self._challenge
            )
            return self._admit(device, None)
        raise Refused("identify after admission")

    def _admit(self, device: DeviceRecord, admission: Admission | None) -> list:
        self.device = device
        self.state = ServerState.ADMITTED
        if admission is None and self._after_digest == "silent":
            return [Admitted(device, admission)]  # nothing changed: nothing to send
        admin = self._domain.admin_password_body(device)
        if admin is not None:
            self._send(AdminType.ADMIN_PASSWORD, admin)
        self._send_config(self._domain.config_items(device))
        return [Admitted(device, admission)]

    def _send_config(self, items: list[dict[str, Any]]) -> None:
        bare = self._last_frame == "bare"
        for i, item in enumerate(items):
            last = i == len(items) - 1 and not bare
            if self._last_inside:
                body = {"config": {**item, "last": last}}
            else:
                body = {"config": item, "last": last}
            self._send(AdminType.CONFIG, body)
        if bare:
            self._send(AdminType.CONFIG, {"last": True})

    def _send(self, kind: AdminType, body: dict[str, Any]) -> None:
        self._out.append(encode_frame(AdminFrame(kind, body)))

    def _close(self, reason: str) -> list[SysclientServerEvent]:
        self.state = ServerState.CLOSED
        self._out.clear()
        return [Closed(reason)]

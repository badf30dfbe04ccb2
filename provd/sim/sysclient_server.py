"""The Devices side of one Sysclient connection, as a sans-I/O state machine (spec section 6).

Theory of operation: the mirror image of :class:`provd.protocol.sysclient.SysclientDevice`,
sharing its frame codec. Feed each received binary message to :meth:`SysclientServer.receive`,
send what :meth:`SysclientServer.outgoing` returns, then act on the events; on
:class:`Refused` the shell closes the socket (that is how Devices says no)::

    AWAIT_IDENTIFY --identify+code ok--> ADMITTED   (0x0001 password, 0x0003?, 0x0006...)
    AWAIT_IDENTIFY --identify, known---> CHALLENGED (0x0002 challenge)
    CHALLENGED     --identify+digest ok-> ADMITTED  (0x0003?, 0x0006...)
    anything wrong ----------------------> CLOSED

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
    ) -> None:
        self._domain = domain
        self._last_inside = last_inside_config
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
        self.last_received = AdminType(frame.type).name
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

    def _on_identify(self, ident: Identify) -> list[SysclientServerEvent]:
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
            if ident.id != self.identity.id:
                raise Refused("identify for another device")
            device = self._domain.verify_digest(ident, self._challenge)
            return self._admit(device, None)
        raise Refused("identify after admission")

    def _admit(self, device: DeviceRecord, admission: Admission | None) -> list:
        self.device = device
        self.state = ServerState.ADMITTED
        admin = self._domain.admin_password_body(device)
        if admin is not None:
            self._send(AdminType.ADMIN_PASSWORD, admin)
        self._send_config(self._domain.config_items(device))
        return [Admitted(device, admission)]

    def _send_config(self, items: list[dict[str, Any]]) -> None:
        for i, item in enumerate(items):
            last = i == len(items) - 1
            if self._last_inside:
                body = {"config": {**item, "last": last}}
            else:
                body = {"config": item, "last": last}
            self._send(AdminType.CONFIG, body)

    def _send(self, kind: AdminType, body: dict[str, Any]) -> None:
        self._out.append(encode_frame(AdminFrame(kind, body)))

    def _close(self, reason: str) -> list[SysclientServerEvent]:
        self.state = ServerState.CLOSED
        self._out.clear()
        return [Closed(reason)]

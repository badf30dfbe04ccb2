"""Fault knobs: make the innovaphone side misbehave on purpose, from tests and benchmarks.

:class:`FaultPlan` is pure data the shells consult at fixed points (after each received or
sent message, before each answer, at each login). :class:`Faults` adds the actions that
need the running Devices app (restart, category change, code expiry). Knobs are per
:class:`Party`; ``what`` names a message the way that party's wire does: the ``mt`` for
AppWebsocket parties (``"AppLogin"``, ``"ProvisioningPhone"``), the admin type name for
sysclients (``"IDENTIFY"``) or ``"TUNNEL"``.

Where a drop happens matters: a sysclient dropped after ``IDENTIFY`` *received* is dropped
after Devices admitted it but before the password went out (the device must retry with its
code, which the same MAC may do while the code is valid).
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from .devices import DevicesApp


class Party(enum.StrEnum):
    #: The PBX App-object connection to provd.
    PBX = "pbx"
    #: The Users service's connection to provd (ProvisioningPhone).
    USERS = "users"
    #: Devices API sessions (provd as client of com.innovaphone.devices).
    DEVICES_API = "devices-api"
    #: Sysclient connections.
    SYSCLIENT = "sysclient"


class Direction(enum.StrEnum):
    RECEIVED = "received"
    SENT = "sent"


@attrs.define
class DropRule:
    party: Party
    what: str
    direction: Direction
    remaining: int


class FaultPlan:
    """Pure fault state. Every knob is off until set."""

    def __init__(self) -> None:
        self._drops: list[DropRule] = []
        self._delays: dict[Party, float] = {}
        self._reject: set[Party] = set()
        self._refuse_service_logins = 0
        #: Every drop that happened, as ``(party, what, direction)``.
        self.dropped: list[tuple[Party, str, Direction]] = []

    def drop_after(
        self, party: Party, what: str, *, times: int = 1, direction: Direction = Direction.RECEIVED
    ) -> None:
        """Close the next ``times`` connections of ``party`` right after ``what`` was
        received (default) or sent."""
        self._drops.append(DropRule(Party(party), what, Direction(direction), times))

    def should_drop(self, party: Party, what: str, direction: Direction) -> bool:
        """Consulted by the shells; consumes one use of a matching rule."""
        for rule in self._drops:
            if (rule.party, rule.what, rule.direction) == (party, what, direction):
                rule.remaining -= 1
                if rule.remaining <= 0:
                    self._drops.remove(rule)
                self.dropped.append((party, what, direction))
                return True
        return False

    def drops(self, party: Party) -> bool:
        """Whether any drop rule for ``party`` is armed (a cheap check before the others)."""
        return any(rule.party == party for rule in self._drops)

    def delay(self, party: Party, seconds: float) -> None:
        """Wait ``seconds`` before every answer ``party`` sends (0 turns it off)."""
        self._delays[Party(party)] = seconds

    def delay_for(self, party: Party) -> float:
        return self._delays.get(party, 0.0)

    def reject_logins(self, party: Party, enabled: bool = True) -> None:
        """DEVICES_API: refuse every AppLogin. SYSCLIENT: close on every identify.
        PBX: log in to provd with a wrong password."""
        (self._reject.add if enabled else self._reject.discard)(Party(party))

    def rejects(self, party: Party) -> bool:
        return party in self._reject

    def refuse_service_logins(self, times: int = 1) -> None:
        """The PBX refuses the next ``times`` GetServiceLogin requests (as text or number,
        per ``pbx.numeric_errors``)."""
        self._refuse_service_logins = times

    def take_service_login_refusal(self) -> bool:
        """Consulted by the PBX for each GetServiceLogin; consumes one refusal."""
        if self._refuse_service_logins <= 0:
            return False
        self._refuse_service_logins -= 1
        return True

    def clear(self) -> None:
        self._drops.clear()
        self._delays.clear()
        self._reject.clear()
        self._refuse_service_logins = 0


class Faults(FaultPlan):
    """:class:`FaultPlan` plus actions on the running simulator (``Simulator.faults``)."""

    def __init__(self) -> None:
        super().__init__()
        self._devices: DevicesApp | None = None

    def bind(self, devices: DevicesApp) -> None:
        self._devices = devices

    def _app(self) -> DevicesApp:
        if self._devices is None:
            raise RuntimeError("the simulator is not running")
        return self._devices

    async def restart_devices(self) -> None:
        """Restart the Devices app: every API session and sysclient is closed (code 1012);
        state (devices, passwords, codes) survives, as on a real restart. Returns once
        every connection is gone."""
        await self._app().restart()

    async def remove_device(self, mac: str) -> bool:
        """Delete a device from Devices (record, password, connection), as an admin would."""
        return await self._app().remove_device(mac)

    async def change_category(
        self, category: str, *, domain: str | None = None, **changes: Any
    ) -> set[str]:
        """Change a category's settings (``coder=...``, ``tz=...``, any
        :class:`~.config.CategoryConfig` field) and push the changed items to its connected
        devices. Returns the changed item types."""
        return await self._app().change_category(category, domain=domain, **changes)

    def expire_codes(self, codes: list[str] | None = None) -> None:
        """Expire the given codes (default: all issued so far)."""
        self._app().domain.expire_codes(codes)

    def seed_length(self, length: int | None) -> None:
        """Seeds for 0x0003 and MEDIA ``turnSeed`` of ``length`` characters (e.g. 300: an
        RC4 key longer than 256 bytes); None: back to 16 digits."""
        from ..protocol import crypto

        domain = self._app().domain
        n = 16 if length is None else length
        domain.seed_factory = lambda: crypto.new_challenge(n) if n else ""

    async def assign_password(self, mac: str) -> str | None:
        """An administrator adds the connected device to a domain during its session: a
        fresh sysclient password (0x0001) goes out now. None when it is not connected."""
        return await self._app().assign_password(mac)

    def devices_api_error(self, request: str, error: str | None) -> None:
        """Answer the Devices API ``request`` (its ``mt``, e.g. ``GetProvisioningCode``)
        with ``error`` from now on, in every session; None: answer normally again."""
        from .devices_api import ERROR_REPLIES

        if request not in ERROR_REPLIES:
            raise ValueError(f"{request}: not a Devices API request")
        errors = self._app().api_errors
        if error:
            errors[request] = error
        else:
            errors.pop(request, None)

"""provd as a PbxAdminApi client on the PBX App-object session (spec 8.4).

Used only while a PBX session offers the API (``PbxInfo.apis`` lists ``PbxAdminApi``: the
App object is enabled for it, SDK ``doc/appwebsocket/PbxAdminApi.htm``); otherwise every
call raises :class:`PbxAdminUnavailable` and callers carry on without it. Requests share
the session's :class:`~provd.transport.RequestTracker` (answers matched by ``src``).

Operations provd uses: ``GetRegs`` (is the phone registered, from where), ``GetObject``
(a user object with its ``devices``) and ``UpdateObject`` (only where an operator asked
for it: ``pbx.fix_device_flags``; a read-modify-write of the whole ``devices`` list, as
the SDK says "devices" replaces it, with every member provd does not know kept).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import attrs
import structlog
import trio

from ..protocol.messages import (
    GetObject,
    GetObjectResult,
    GetRegs,
    GetRegsResult,
    Message,
    PbxDevice,
    UpdateObject,
    UpdateObjectResult,
    same_hw,
)
from ..transport import ConnectionLost

log = structlog.get_logger("provd.pbxadmin")

#: Seconds one PbxAdminApi request may take.
REQUEST_TIMEOUT = 10.0


class PbxAdminError(Exception):
    """A PbxAdminApi request failed; ``reason`` is log-safe."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PbxAdminUnavailable(PbxAdminError):
    """No live PBX session offers PbxAdminApi."""


class _Session(Protocol):
    async def ask(self, request: Message) -> Message: ...


class PbxAdminClient:
    """Args:
    session: returns the PBX session to use (one offering PbxAdminApi), or None.
    timeout: seconds per request.
    """

    def __init__(
        self, session: Callable[[], _Session | None], *, timeout: float = REQUEST_TIMEOUT
    ) -> None:
        self._session = session
        self.timeout = timeout

    @property
    def available(self) -> bool:
        return self._session() is not None

    async def _ask(self, request: Message, expected: type[Message]) -> Any:
        session = self._session()
        if session is None:
            raise PbxAdminUnavailable("no PBX session offers PbxAdminApi")
        try:
            with trio.fail_after(self.timeout):
                answer = await session.ask(request)
        except trio.TooSlowError:
            raise PbxAdminError(f"PBX did not answer {request.MT} in {self.timeout:g} s") from None
        except ConnectionLost as exc:
            raise PbxAdminError(f"PBX session lost ({exc.reason})") from None
        if not isinstance(answer, expected):
            raise PbxAdminError(f"PBX answered {request.MT} with {answer.MT}")
        failure = getattr(answer, "failure", None)
        if failure:
            raise PbxAdminError(f"PBX refused {request.MT}: {failure}")
        return answer

    async def get_regs(self, *, cn: str | None = None, guid: str | None = None) -> GetRegsResult:
        """The current registrations of the object ``guid`` or ``cn``.

        Raises:
            PbxAdminError: unavailable, no answer, an error answer.
        """
        return await self._ask(GetRegs(cn=cn, guid=guid), GetRegsResult)

    async def get_object(
        self,
        *,
        cn: str | None = None,
        guid: str | None = None,
        h323: str | None = None,
        e164: str | None = None,
    ) -> GetObjectResult:
        """An object with its ``devices`` (unknown members kept in ``extra``).

        Raises:
            PbxAdminError: unavailable, no answer, an error answer, no such object.
        """
        return await self._ask(GetObject(cn=cn, guid=guid, h323=h323, e164=e164), GetObjectResult)

    async def update_object(self, request: UpdateObject) -> UpdateObjectResult:
        """Raises: PbxAdminError."""
        return await self._ask(request, UpdateObjectResult)

    async def clear_tls_only(self, *, cn: str, hw: str) -> PbxDevice | None:
        """Clear the *TLS only* flag of the device ``hw`` of user ``cn``: ``GetObject``, then
        ``UpdateObject {guid, devices}`` with that one flag changed (every other entry and
        member as read). Returns the entry as it was when it changed, None when there was
        nothing to change (no such device, or the flag not set).

        Raises:
            PbxAdminError: unavailable, no answer, an error answer, no such object.
        """
        obj = await self.get_object(cn=cn)
        device = obj.device(hw)
        if device is None or device.tls is not True:
            # ``tls`` absent/false, or an integer (inherited from a config template): not ours
            return None
        devices = [attrs.evolve(d, tls=False) if same_hw(d.hw, hw) else d for d in obj.devices]
        await self.update_object(UpdateObject(guid=obj.guid, devices=devices))
        return device

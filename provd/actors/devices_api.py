"""provd as a client of the Devices JSON API (``com.innovaphone.devices``).

Used on demand, not kept open: provd asks Devices about a provisioning code when a
registration with that code failed, so the error the Users service shows says *why* (the
code was already used by another device, or Devices does not know it). The login is a
service login the PBX makes for provd (``GetServiceLogin`` on the PBX session), as for any
app service.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable

import structlog
import trio
import trio_websocket as tw

from ..protocol import LoginRefused, ProtocolError
from ..protocol.messages import (
    GetProvisionedDevice,
    GetProvisionedDeviceResult,
    GetServiceLogin,
    GetServiceLoginResult,
    Message,
)
from ..transport import AppWebsocket, ConnectionLost, RequestTracker, connect, login_as_service
from .state import DevicesLocator

log = structlog.get_logger("provd.devices_api")

#: Seconds one question to Devices may take, login included.
QUERY_TIMEOUT = 10.0


class NoPbx(Exception):
    """No PBX session is up to make a service login."""


class DevicesApi:
    """Ask the Devices app questions over its JSON API.

    Args:
        locator: where Devices is, and its service name.
        pbx: returns the current PBX session (an object with ``session_key`` and
            ``ask_service_login``), or None.
        tls: the SSL context for a Devices URL (None for ``ws://``; see
            :func:`provd.transport.tls.context_for`).
    """

    def __init__(
        self,
        locator: DevicesLocator,
        pbx: Callable[[], object | None],
        tls: Callable[[str], ssl.SSLContext | None] = lambda _url: None,
    ) -> None:
        self._locator = locator
        self._pbx = pbx
        self._tls = tls

    async def provisioned_device(self, code: str) -> GetProvisionedDeviceResult:
        result = await self._ask(GetProvisionedDevice(code=code))
        if not isinstance(result, GetProvisionedDeviceResult):
            raise ProtocolError(f"expected GetProvisionedDeviceResult, got {result.MT}")
        return result

    async def explain_refusal(self, code: str, mac: str) -> str | None:
        """A sentence about why Devices refused ``code`` for ``mac``, if Devices can tell."""
        try:
            with trio.fail_after(QUERY_TIMEOUT):
                result = await self.provisioned_device(code)
        except (
            NoPbx,
            ConnectionLost,
            ProtocolError,
            OSError,
            tw.HandshakeError,
            trio.TooSlowError,
        ) as exc:
            log.info("devices_api.unavailable", reason=getattr(exc, "reason", type(exc).__name__))
            return None
        if result.error:
            return f"Devices reports for the code: {result.error}"
        device = result.device
        if device is None:
            return "Devices has no device provisioned with this code"
        if device.hw_id and device.hw_id.lower() != mac:
            return f"the code was already used by device {device.hw_id}"
        return None

    async def _ask(self, request: Message) -> Message:
        pbx = self._pbx()
        url = self._locator.url
        if pbx is None or not url:
            raise NoPbx()
        async with connect(url, ssl_context=self._tls(url)) as ws:
            conn = AppWebsocket(ws)
            await login_as_service(
                conn, self._locator.service, pbx.ask_service_login, pbx.session_key
            )
            tracker = RequestTracker("provd-devices")
            async with tracker.expect(request) as (tagged, answers):
                await conn.send(tagged)
                while True:
                    msg = await conn.receive()
                    if tracker.deliver(msg):
                        return await answers.receive()


async def ask_service_login(
    conn: AppWebsocket, tracker: RequestTracker, request: GetServiceLogin
) -> GetServiceLoginResult:
    """Send ``GetServiceLogin`` on a PBX connection and wait for its answer."""
    async with tracker.expect(request) as (tagged, answers):
        await conn.send(tagged)
        try:
            with trio.fail_after(QUERY_TIMEOUT):
                answer = await answers.receive()
        except trio.EndOfChannel:
            raise ConnectionLost("PBX session ended") from None
        except trio.TooSlowError:
            raise LoginRefused("PBX did not answer GetServiceLogin") from None
    if not isinstance(answer, GetServiceLoginResult):
        raise ProtocolError(f"expected GetServiceLoginResult, got {answer.MT}")
    return answer

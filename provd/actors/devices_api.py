"""provd as a client of the Devices JSON API (``com.innovaphone.devices``, spec section 5).

Two clients, both logged in with a service login the PBX makes for provd
(``GetServiceLogin`` on the PBX session), as for any app service:

- :class:`DevicesApi`, on demand: asks Devices about a provisioning code when a
  registration with that code failed, so the error the Users service shows says *why* (the
  code was already used by another device, or Devices does not know it).
- :class:`DevicesSession`, opened on first use and then kept while a PBX session and a
  Devices URL exist (a daemon nobody asks opens no session): operators' questions
  (``provd devices ...``, ``provd phones add``) go through it, and it receives the
  unsolicited ``DeviceProvisioned`` for the codes it asked for (SDK
  ``doc/service/Devices.htm``: "Generates a new provisioning code and triggers a
  DeviceProvisioned message on provisioning afterwards"), which are stored and logged.
  It reconnects with back-off, at once when the Devices URL moves.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import attrs
import structlog
import trio
import trio_websocket as tw

from ..backoff import Backoff
from ..protocol import LoginRefused, ProtocolError
from ..protocol.messages import (
    Category,
    DeviceProvisioned,
    GetProvisionedDevice,
    GetProvisionedDeviceResult,
    GetProvisioningCategories,
    GetProvisioningCategoriesResult,
    GetProvisioningCode,
    GetProvisioningCodeResult,
    GetServiceLogin,
    GetServiceLoginResult,
    KeepAlive,
    Message,
    UnknownMessage,
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


# --- the kept session --------------------------------------------------------------------------

#: Seconds a request waits for a Devices session that is being (re)established.
SESSION_WAIT = 5.0
#: Most ``GetProvisioningCategoriesResult`` parts read for one request (a peer that never
#: sends ``last`` cannot keep provd reading forever).
MAX_RESULT_PARTS = 1000


class DevicesUnavailable(Exception):
    """No Devices API session to ask; ``reason`` names what is missing (log-safe)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class DevicesRefused(Exception):
    """Devices answered a request with ``error`` (or with nothing usable)."""

    def __init__(self, request: str, error: str) -> None:
        super().__init__(f"Devices refused {request}: {error}")
        self.request = request
        self.error = error


@attrs.define
class DevicesSessionStatus:
    """What operators see of the kept session (``provd status``)."""

    #: idle (not asked yet), waiting (for a PBX session or a Devices URL), connecting, up,
    #: backoff.
    state: str = "waiting"
    url: str = ""
    #: Why the session is not up (log-safe); "" while up.
    error: str = ""
    since: float = attrs.field(factory=time.time)
    #: DeviceProvisioned events received since start.
    provisioned: int = 0

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


class DevicesSession:
    """provd's kept ``com.innovaphone.devices`` session.

    Args:
        locator: where Devices is, and its service name (from the PBX's ServicesInfo).
        pbx: the current PBX session (``session_key`` and ``ask_service_login``), or None.
        pbx_changed: waits until a PBX session comes or goes.
        store: the store actor (``DeviceProvisioned`` events are kept there).
        settings: ``(ping_interval, ping_timeout, backoff_initial, backoff_cap)``, read live.
        tls: the SSL context for a Devices URL (None for ``ws://``).
    """

    def __init__(
        self,
        locator: DevicesLocator,
        pbx: Callable[[], Any],
        pbx_changed: Callable[[], Awaitable[None]],
        store: Any,
        settings: Callable[[], tuple[float, float, float, float]],
        tls: Callable[[str], ssl.SSLContext | None] = lambda _url: None,
    ) -> None:
        self._locator = locator
        self._pbx = pbx
        self._pbx_changed = pbx_changed
        self._store = store
        self._settings = settings
        self._tls = tls
        self._conn: AppWebsocket | None = None
        self._tracker = RequestTracker("provd-devices")
        self._up = trio.Event()
        #: Set when the current connection is torn down.
        self._ended = trio.Event()
        #: Set by the first request: only then is the session opened (and then kept).
        self._wanted = trio.Event()
        self.status = DevicesSessionStatus()

    # --- requests ------------------------------------------------------------------------------

    async def categories(
        self, type: str | None = None, domain_id: int | None = None
    ) -> list[Category]:
        """All provisioning categories (``type`` filters), read until ``last``.

        Raises:
            DevicesUnavailable: no session (the reason names what is missing).
            DevicesRefused: Devices answered with an error.
        """
        request = GetProvisioningCategories(type=type, domain_id=domain_id)
        found: list[Category] = []
        async with self._asking(request) as answers:
            for _ in range(MAX_RESULT_PARTS):
                part = await self._answer(answers, GetProvisioningCategoriesResult)
                if part.error:
                    raise DevicesRefused(request.MT, part.error)
                found.extend(part.categories)
                if part.last:
                    return found
        raise DevicesRefused(request.MT, f"no last result after {MAX_RESULT_PARTS} parts")

    async def code(
        self,
        category: str,
        *,
        sip: str | None = None,
        rollout: bool = False,
        domain_id: int | None = None,
    ) -> GetProvisioningCodeResult:
        """A new provisioning code (valid 15 minutes, 7 days with ``rollout``).

        Raises:
            DevicesUnavailable, DevicesRefused: as :meth:`categories`.
        """
        request = GetProvisioningCode(
            category=category, sip=sip or None, rollout=rollout or None, domain_id=domain_id
        )
        async with self._asking(request) as answers:
            result = await self._answer(answers, GetProvisioningCodeResult)
        if result.error or not result.code:
            raise DevicesRefused(request.MT, result.error or "no code in the answer")
        log.info(
            "devices_api.code_issued",
            category=category,
            sip=sip or "-",
            valid_until=result.valid_until,
        )
        return result

    async def provisioned(self, code: str) -> GetProvisionedDeviceResult:
        """Which device used ``code`` (``device`` None: none yet).

        Raises:
            DevicesUnavailable, DevicesRefused: as :meth:`categories`.
        """
        request = GetProvisionedDevice(code=code)
        async with self._asking(request) as answers:
            result = await self._answer(answers, GetProvisionedDeviceResult)
        if result.error:
            raise DevicesRefused(request.MT, result.error)
        return result

    def _missing(self) -> str | None:
        """What stops a session, in operators' words; None when nothing does."""
        if self._pbx() is None:
            return (
                "no PBX session: the PBX's App object for provd is not connected "
                "(check the App object's URL and password on the PBX)"
            )
        if not self._locator.url:
            return (
                "Devices not found: the PBX has not listed com.innovaphone.devices in "
                "ServicesInfo and provisioning.devices_url is not set"
            )
        if not self._locator.service:
            return (
                "Devices service name not known yet: the PBX has not listed "
                "com.innovaphone.devices in ServicesInfo (needed for GetServiceLogin)"
            )
        return None

    async def _ready(self) -> tuple[AppWebsocket, RequestTracker]:
        """The live connection; waits (bounded) for one being (re)established, and past a
        closing one to its successor.

        Raises:
            DevicesUnavailable: none within :data:`SESSION_WAIT`, or something is missing.
        """
        self._wanted.set()
        with trio.move_on_after(SESSION_WAIT):
            while True:
                conn = self._conn
                if conn is not None and conn.ws.closed is None:
                    return conn, self._tracker
                missing = self._missing()
                if missing is not None:
                    raise DevicesUnavailable(missing)
                if conn is not None:
                    await self._ended.wait()  # the closing one is torn down first
                await self._up.wait()
        raise DevicesUnavailable(
            self._missing()
            or (
                f"no session with Devices at {self._locator.url}: "
                f"{self.status.error or 'not established yet'}"
            )
        )

    @asynccontextmanager
    async def _asking(self, request: Message) -> AsyncIterator[trio.MemoryReceiveChannel]:
        """Send ``request`` on the session; yields the channel its answers arrive on. A
        connection that breaks as the request goes out is replaced and the send retried
        once."""
        for attempt in (1, 2):
            conn, tracker = await self._ready()
            async with tracker.expect(request) as (tagged, answers):
                try:
                    await conn.send(tagged)
                except ConnectionLost as exc:
                    if attempt == 2:
                        raise DevicesUnavailable(f"Devices session lost: {exc.reason}") from None
                    continue
                yield answers
                return

    async def _answer(self, answers: trio.MemoryReceiveChannel[Message], kind: type) -> Any:
        try:
            with trio.fail_after(QUERY_TIMEOUT):
                msg = await answers.receive()
        except trio.EndOfChannel:
            raise DevicesUnavailable("Devices session lost before it answered") from None
        except trio.TooSlowError:
            raise DevicesUnavailable(f"Devices did not answer within {QUERY_TIMEOUT:g} s") from None
        if not isinstance(msg, kind):
            raise DevicesRefused(kind.MT.removesuffix("Result"), f"answered with {msg.MT}")
        return msg

    # --- the session loop --------------------------------------------------------------------

    def _set(self, state: str, error: str = "") -> None:
        if state != self.status.state or error != self.status.error:
            self.status.state, self.status.error = state, error
            self.status.since = time.time()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """From the first request on, keep a session while a PBX session and a Devices URL
        exist. Never returns."""
        task_status.started()
        self._set("idle")
        await self._wanted.wait()
        backoff: Backoff | None = None
        failing = ""  # the failure already warned about (one warning per streak)
        while True:
            missing = self._missing()
            if missing is not None:
                self._set("waiting", missing)
                await self._first(self._pbx_changed, self._locator.wait_changed)
                continue
            url = self._locator.url
            _, _, initial, cap = self._settings()
            if backoff is None:
                backoff = Backoff(initial=initial, cap=cap)
            self.status.url = url
            self._set("connecting", self.status.error)
            reason = await self._session(url)
            if reason is None:  # the URL moved: reconnect at once
                log.info("devices_api.session_moved", url=self._locator.url)
                continue
            if self.status.state == "up":  # it had worked: a new failure streak
                backoff.reset()
                failing = ""
            if reason != failing:
                log.warning("devices_api.session_down", url=url, reason=reason)
                failing = reason
            else:
                log.debug("devices_api.session_down", url=url, reason=reason)
            self._set("backoff", reason)
            with trio.move_on_after(backoff.next_delay()):
                await self._locator.wait_changed()

    async def _first(self, *waits: Callable[[], Awaitable[None]]) -> None:
        async with trio.open_nursery() as nursery:

            async def one(wait: Callable[[], Awaitable[None]]) -> None:
                await wait()
                nursery.cancel_scope.cancel()

            for wait in waits:
                nursery.start_soon(one, wait)

    async def _session(self, url: str) -> str | None:
        """One connection; returns why it ended (None: the Devices URL moved)."""
        pbx = self._pbx()
        if pbx is None:
            return "no PBX session"
        ping_interval, ping_timeout, _, _ = self._settings()
        try:
            async with connect(url, ssl_context=self._tls(url)) as ws:
                conn = AppWebsocket(ws)
                with trio.fail_after(QUERY_TIMEOUT):
                    await login_as_service(
                        conn, self._locator.service, pbx.ask_service_login, pbx.session_key
                    )
                return await self._serve(conn, url, ping_interval, ping_timeout)
        except LoginRefused as exc:
            return f"login refused: {exc.reason}"
        except (ConnectionLost, ProtocolError) as exc:
            return exc.reason
        except trio.TooSlowError:
            return f"no login within {QUERY_TIMEOUT:g} s"
        except (OSError, tw.HandshakeError, trio.BrokenResourceError) as exc:
            return f"cannot connect to {url}: {type(exc).__name__}"
        except ValueError as exc:  # an invalid URL (trio-websocket's parser)
            return f"invalid Devices URL {url!r}: {exc}"
        except Exception as exc:  # a bug: logged, and the session retried (never fatal)
            log.error("devices_api.session_crashed", error=f"{type(exc).__name__}: {exc}")
            log.debug("devices_api.session_crash_trace", exc_info=True)
            return f"internal error: {type(exc).__name__}"

    async def _serve(
        self, conn: AppWebsocket, url: str, ping_interval: float, ping_timeout: float
    ) -> str | None:
        ended: list[str | None] = []
        self._tracker = RequestTracker("provd-devices")
        self._ended = trio.Event()
        self._conn = conn
        self._set("up")
        self._up.set()
        log.info("devices_api.session_up", url=url)
        try:
            async with trio.open_nursery() as nursery:

                async def reader() -> None:
                    try:
                        await self._read(conn)
                    except (ConnectionLost, ProtocolError) as exc:
                        ended.append(exc.reason)
                    nursery.cancel_scope.cancel()

                async def keepalive() -> None:
                    if ping_interval <= 0:
                        return
                    try:
                        await conn.keepalive(ping_interval, ping_timeout)
                    except ConnectionLost as exc:
                        ended.append(exc.reason)
                    nursery.cancel_scope.cancel()

                async def moved() -> None:
                    while self._locator.url == url:
                        await self._locator.wait_changed()
                    ended.append(None)
                    nursery.cancel_scope.cancel()

                nursery.start_soon(reader)
                nursery.start_soon(keepalive)
                nursery.start_soon(moved)
        finally:
            self._conn = None
            self._up = trio.Event()
            self._tracker.fail_all()
            self._ended.set()
        return ended[0] if ended else "session ended"

    async def _read(self, conn: AppWebsocket) -> None:
        while True:
            msg = await conn.receive()
            if self._tracker.deliver(msg):
                continue
            if isinstance(msg, DeviceProvisioned):
                await self._on_provisioned(msg)
            elif isinstance(msg, UnknownMessage):
                log.debug("devices_api.unknown_message", mt=msg.mt, api=msg.api)
            elif not isinstance(msg, KeepAlive):
                log.debug("devices_api.ignored", mt=msg.MT, src=msg.src)

    async def _on_provisioned(self, msg: DeviceProvisioned) -> None:
        device = msg.device
        hw_id = device.hw_id if device is not None else ""
        fields = attrs.asdict(device) if device is not None else {}
        self.status.provisioned += 1
        log.info(
            "devices_api.device_provisioned",
            code=msg.code,
            hw_id=hw_id or "-",
            product=fields.get("product") or "-",
        )
        code = msg.code
        try:
            await self._store.call(lambda db: db.record_device_provisioned(code, hw_id, fields))
        except Exception as exc:  # the store logged it with its path; the session stays
            log.debug("devices_api.provisioned_not_stored", code=code, error=str(exc))

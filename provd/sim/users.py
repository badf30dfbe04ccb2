"""The simulated Users service: provisions phones through provd, one at a time (spec section 4).

For each phone, as the Users Admin app does:

1. ask Devices for a provisioning code over ``com.innovaphone.devices``
   (``GetProvisioningCode`` with the phone's category), logged in with a service login the
   PBX computes (``GetServiceLogin``);
2. send ``ProvisioningPhone`` to the service publishing ``com.innovaphone.provisioning``
   (provd), logged in the same way, the user's password encrypted with a fresh numeric
   ``seed1`` and *that* connection's session key;
3. wait for ``ProvisioningPhoneResult`` (matched by ``src``) before the next phone.

The Users service is part of the simulated installation, so it asks the PBX's
:class:`~.services.ServiceRegistry` for its logins directly; everything towards Devices and
provd goes over real websockets.
"""

from __future__ import annotations

import contextlib
import secrets
import ssl
from collections.abc import Iterable

import attrs
import structlog
import trio

from ..protocol import ProtocolError, crypto, normalize_mac
from ..protocol.login import Identity
from ..protocol.messages import (
    DEVICES_API,
    PROVISIONING_API,
    DeviceProvisioned,
    GetProvisioningCode,
    GetProvisioningCodeResult,
    GetServiceLogin,
    GetServiceLoginResult,
    ProvisioningPhone,
    ProvisioningPhoneResult,
)
from ..transport import AppWebsocket, ConnectionLost, RequestTracker, login_as_service
from ..transport.tls import context_for
from .config import PhoneConfig, SimConfig
from .faults import Direction, FaultPlan, Party
from .services import ServiceRegistry
from .wsclient import connect

log = structlog.get_logger("provd.sim.users")


def new_seed1() -> str:
    """A fresh numeric seed like ``10046478319880090512700`` (23 digits)."""
    return str(10**22 + secrets.randbelow(9 * 10**22))


@attrs.frozen(kw_only=True)
class Phone:
    """A phone to provision. ``code`` set: send it instead of asking Devices (rejection tests)."""

    mac: str = attrs.field(converter=normalize_mac)
    user: str
    cn: str = ""
    password: str = attrs.field(default="", repr=False)
    category: str = "Phones"
    hwid: str = ""
    code: str | None = None

    @classmethod
    def from_config(cls, phone: PhoneConfig) -> Phone:
        return cls(
            mac=phone.mac,
            user=phone.user,
            cn=phone.cn,
            password=phone.password,
            category=phone.category,
            hwid=phone.hwid,
            code=phone.code or None,
        )


@attrs.frozen(kw_only=True)
class ProvisionResult:
    """What provd answered for one phone.

    ``outcome``: ``"ok"``, ``"error"`` (provd said so, or it could not be asked: ``error``
    says why) or ``"timeout"``. ``latency``: seconds from sending ``ProvisioningPhone`` to
    its result (0 when it was never sent).
    """

    mac: str
    outcome: str
    code: str = ""
    error: str | None = None
    latency: float = 0.0

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"


class UsersService:
    def __init__(self, config: SimConfig, registry: ServiceRegistry, faults: FaultPlan) -> None:
        self.config = config
        self.registry = registry
        self.faults = faults
        users = config.users
        info = {"appobj": users.app_object, "cn": users.dn, "apps": [{"name": "users"}]}
        self.identity = Identity(
            app=users.app_object,
            domain=config.pbx.domain,
            sip=users.app_object,
            guid=users.guid,
            dn=users.dn,
            pbx_obj=users.app_object,
            info=info,
        )
        #: ``DeviceProvisioned`` messages received on the Users' Devices session.
        self.device_provisioned: list[DeviceProvisioned] = []
        #: Session key of the Users' own (in-process) PBX connection.
        self._pbx_key = crypto.session_key(crypto.new_challenge(), secrets.token_hex(16))

    async def _ask_pbx(self, request: GetServiceLogin) -> GetServiceLoginResult:
        return self.registry.service_login(
            request, caller=self.identity, pbx_session_key=self._pbx_key
        )

    async def provision(
        self, phones: Iterable[Phone], *, phone_timeout: float | None = None
    ) -> list[ProvisionResult]:
        """Provision ``phones`` in order, one at a time.

        Args:
            phones: the phones.
            phone_timeout: seconds to wait for each result (default ``users.timeout``).

        Returns:
            One :class:`ProvisionResult` per phone, in order.

        Raises:
            LookupError: the PBX lists no service publishing the provisioning (or, when a
                code is needed, the Devices) API.
        """
        phones = list(phones)
        timeout = self.config.users.timeout if phone_timeout is None else phone_timeout
        # As a real Users service does (IServicesApi::GetService): look the API up in the
        # ServicesInfo its PBX sends, i.e. in the services' *listed* info.
        listed = self.registry.services_info()
        provd = listed.find(PROVISIONING_API)
        if provd is None:
            raise LookupError(f"no service publishes {PROVISIONING_API}")
        results: list[ProvisionResult] = []
        async with contextlib.AsyncExitStack() as stack:
            codes: _DevicesClient | None = None
            devices_error = ""
            if any(p.code is None for p in phones):
                devices = listed.find(DEVICES_API)
                if devices is None:
                    raise LookupError(f"no service publishes {DEVICES_API}")
                try:
                    codes = await stack.enter_async_context(
                        self._devices(devices.url, devices.name)
                    )
                except Exception as exc:
                    devices_error = getattr(exc, "reason", None) or type(exc).__name__
                    log.warning("users.devices_unreachable", reason=devices_error)
            link: _ProvdLink | None = None
            for phone in phones:
                code = phone.code
                if code is None:
                    if codes is None:
                        error: str | None = f"unreachable: {devices_error}"
                    else:
                        code, error = await codes.get_code(phone, timeout)
                    if error is not None:
                        results.append(
                            ProvisionResult(
                                mac=phone.mac, outcome="error", error=f"Devices: {error}"
                            )
                        )
                        continue
                if link is None:
                    try:
                        link = await stack.enter_async_context(self._provd(provd.url, provd.name))
                    except Exception as exc:
                        reason = getattr(exc, "reason", None) or type(exc).__name__
                        results.append(
                            ProvisionResult(
                                mac=phone.mac,
                                outcome="error",
                                code=code,
                                error=f"cannot reach provd: {reason}",
                            )
                        )
                        continue
                result = await link.send_phone(phone, code, timeout)
                results.append(result)
                if link.broken:
                    link = None
        return results

    # --- the two connections ----------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _devices(self, url: str, name: str):
        async with connect(url, ssl_context=self._devices_tls(url)) as ws:
            conn = AppWebsocket(ws)
            await login_as_service(conn, name, self._ask_pbx, self._pbx_key)
            log.info("users.devices_logged_in", service=name)
            client = _DevicesClient(conn, self)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(client.read)  # never raises: it ends the tracker instead
                yield client
                nursery.cancel_scope.cancel()

    def _devices_tls(self, url: str) -> ssl.SSLContext | None:
        """Devices over wss:// (``devices.tls_cert``): the Users service, part of the same
        installation, trusts that certificate."""
        cert = self.config.devices.tls_cert
        return context_for(url, ca_file=cert) if cert else None

    @contextlib.asynccontextmanager
    async def _provd(self, url: str, name: str):
        async with connect(url) as ws:
            conn = AppWebsocket(ws)
            await login_as_service(conn, name, self._ask_pbx, self._pbx_key)
            log.info("users.provd_logged_in", service=name)
            yield _ProvdLink(conn, self)


class _DevicesClient:
    """The Users' Devices API session: a reader task hands results over by ``src``."""

    def __init__(self, conn: AppWebsocket, users: UsersService) -> None:
        self.conn = conn
        self.users = users
        self.tracker = RequestTracker("users")

    async def read(self) -> None:
        try:
            while True:
                msg = await self.conn.receive()
                if isinstance(msg, DeviceProvisioned):
                    log.info(
                        "users.device_provisioned",
                        code=msg.code,
                        device=msg.device.hw_id if msg.device else None,
                    )
                    self.users.device_provisioned.append(msg)
                elif not self.tracker.deliver(msg):
                    log.debug("users.devices_ignored", mt=type(msg).__name__)
        except (ConnectionLost, ProtocolError):
            self.tracker.fail_all()

    async def get_code(self, phone: Phone, wait: float) -> tuple[str, str | None]:
        request = GetProvisioningCode(
            category=phone.category, sip=phone.user, rollout=self.users.config.users.rollout or None
        )
        async with self.tracker.expect(request) as (tagged, answers):
            try:
                await self.conn.send(tagged)
            except ConnectionLost:
                return "", "connection lost"
            with trio.move_on_after(wait):
                async for answer in answers:
                    if isinstance(answer, GetProvisioningCodeResult):
                        if answer.error or not answer.code:
                            return "", answer.error or "no code"
                        log.info(
                            "users.code",
                            mac=phone.mac,
                            category=phone.category,
                            valid_until=answer.valid_until,
                        )
                        return answer.code, None
                return "", "connection lost"
        return "", "timeout"


class _ProvdLink:
    """The Users' connection to provd; ``broken`` once it can no longer be used."""

    def __init__(self, conn: AppWebsocket, users: UsersService) -> None:
        self.conn = conn
        self.users = users
        self.broken = False
        self._ids = 0

    async def send_phone(self, phone: Phone, code: str, wait: float) -> ProvisionResult:
        users = self.users
        key = self.conn.session_key
        assert key is not None
        seed1 = new_seed1()
        self._ids += 1
        src = f"users-phone-{self._ids}"
        msg = ProvisioningPhone(
            src=src,
            mac=phone.mac,
            code=code,
            hwid=phone.hwid or phone.mac,
            usename=phone.user,
            cn=phone.cn or phone.user,
            seed1=seed1,
            password=crypto.app_encrypt(seed1, key, phone.password),
            domain=users.config.pbx.domain,
            dns=users.config.pbx.dns,
        )
        delay = users.faults.delay_for(Party.USERS)
        if delay > 0:
            await trio.sleep(delay)
        started = trio.current_time()

        def done(outcome: str, error: str | None = None) -> ProvisionResult:
            result = ProvisionResult(
                mac=phone.mac,
                outcome=outcome,
                code=code,
                error=error,
                latency=trio.current_time() - started,
            )
            log.info(
                "users.phone_result",
                mac=phone.mac,
                outcome=outcome,
                error=error,
                latency=round(result.latency, 4),
            )
            return result

        try:
            await self.conn.send(msg)
            log.info("users.phone_sent", mac=phone.mac, user=phone.user, src=src)
            if users.faults.should_drop(Party.USERS, msg.MT, Direction.SENT):
                self.broken = True
                await self.conn.close(1001, "fault: drop")
                return done("error", "connection dropped (fault)")
            with trio.move_on_after(wait):
                while True:
                    answer = await self.conn.receive()
                    if isinstance(answer, ProvisioningPhoneResult) and answer.src == src:
                        if answer.result == "ok":
                            return done("ok")
                        return done("error", answer.error or answer.result)
                    log.debug("users.provd_ignored", mt=type(answer).__name__, src=answer.src)
            return done("timeout", f"no result within {wait:g} s")
        except ConnectionLost as exc:
            self.broken = True
            return done("error", f"connection lost: {exc.reason}")
        except ProtocolError as exc:
            self.broken = True
            return done("error", f"bad answer: {exc.reason}")


def phones_from_config(config: SimConfig) -> list[Phone]:
    return [Phone.from_config(p) for p in config.phones]

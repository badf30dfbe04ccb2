"""One logged-in ``com.innovaphone.devices`` session, Devices side, sans-I/O (spec section 5).

:meth:`DevicesApiSession.handle` maps a request to its result messages (several for a split
category list); every result echoes ``src``. Unsolicited ``DeviceProvisioned`` messages are
built by :meth:`DevicesApiSession.device_provisioned` when the shell learns that a code this
session asked for was used.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..protocol.messages import (
    DeviceProvisioned,
    GetLoginInfo,
    GetLoginInfoResult,
    GetProvisionedDevice,
    GetProvisionedDeviceResult,
    GetProvisioningCategories,
    GetProvisioningCategoriesResult,
    GetProvisioningCode,
    GetProvisioningCodeResult,
    Message,
)
from .domain import DeviceRecord, DevicesDomain, DomainError


class DevicesApiSession:
    """Args:
    domain: the Devices state.
    login_domain: the ``domain`` of the accepted AppLogin (selects the Devices domain).
    admin: GetLoginInfo's ``admin`` (a login for the instance domain).
    categories_per_result: split category lists into results of this many.
    passthrough_base: ``http://host:port/<path>passthrough/`` for ``Device.uri``.
    errors: request ``mt`` → error text to answer instead (``devices.api_errors``; read at
        each request, so a shared dict changed at runtime applies at once).
    """

    def __init__(
        self,
        domain: DevicesDomain,
        *,
        login_domain: str,
        admin: bool,
        categories_per_result: int = 2,
        passthrough_base: str = "",
        errors: dict[str, str] | None = None,
    ) -> None:
        self._domain = domain
        self.key, self.domain_id = domain.open_session(login_domain)
        self.admin = admin
        self._per_result = categories_per_result
        self._passthrough = passthrough_base
        self._errors = errors if errors is not None else {}
        self._handlers: dict[type, Callable[[Message], list[Message]]] = {
            GetLoginInfo: self._login_info,
            GetProvisioningCategories: self._categories,
            GetProvisioningCode: self._code,
            GetProvisionedDevice: self._provisioned,
        }

    def close(self) -> None:
        """The session ended: its key stops opening passthrough URLs."""
        self._domain.close_session(self.key)

    def handle(self, msg: Message) -> list[Message] | None:
        """The answers to ``msg``; None if this API does not know it (caller ignores it)."""
        handler = self._handlers.get(type(msg))
        if handler is None:
            return None
        error = self._errors.get(msg.MT)
        if error:
            return [ERROR_REPLIES[msg.MT](msg, error)]
        return handler(msg)

    def device_provisioned(self, device: DeviceRecord, code: str) -> DeviceProvisioned:
        return DeviceProvisioned(code=code, device=self._view(device))

    def _view(self, device: DeviceRecord):
        uri = f"{self._passthrough}{device.mac}/{self.key}/" if self._passthrough else ""
        return self._domain.device_view(device, uri=uri)

    def _domain_id(self, requested: int | None) -> int:
        if requested is None or requested == self.domain_id:
            return self.domain_id
        if not self.admin:
            raise DomainError("no access to domain")
        return requested

    def _login_info(self, msg: GetLoginInfo) -> list[Message]:
        return [msg.reply(GetLoginInfoResult, key=self.key, admin=self.admin)]

    def _categories(self, msg: GetProvisioningCategories) -> list[Message]:
        try:
            cats = self._domain.list_categories(self._domain_id(msg.domain_id), msg.type)
        except DomainError as exc:
            return [msg.reply(GetProvisioningCategoriesResult, last=True, error=str(exc))]
        parts = [cats[i : i + self._per_result] for i in range(0, len(cats), self._per_result)]
        parts = parts or [[]]
        return [
            msg.reply(GetProvisioningCategoriesResult, categories=part, last=i == len(parts) - 1)
            for i, part in enumerate(parts)
        ]

    def _code(self, msg: GetProvisioningCode) -> list[Message]:
        try:
            record = self._domain.issue_code(
                domain_id=self._domain_id(msg.domain_id),
                category=msg.category,
                sip=msg.sip,
                rollout=bool(msg.rollout),
                owner=self.key,
            )
        except DomainError as exc:
            return [msg.reply(GetProvisioningCodeResult, error=str(exc))]
        return [
            msg.reply(
                GetProvisioningCodeResult, code=record.code, valid_until=int(record.valid_until)
            )
        ]

    def _provisioned(self, msg: GetProvisionedDevice) -> list[Message]:
        try:
            device = self._domain.provisioned_device(self._domain_id(msg.domain_id), msg.code)
        except DomainError as exc:
            return [msg.reply(GetProvisionedDeviceResult, code=msg.code, error=str(exc))]
        view = self._view(device) if device else None
        return [msg.reply(GetProvisionedDeviceResult, code=msg.code, device=view)]


#: How each request is answered with an error (``devices.api_errors``): its result with
#: ``error`` set and nothing else (a category list ends there: ``last``). GetLoginInfoResult
#: has no ``error`` member in the SDK, so GetLoginInfo always succeeds.
ERROR_REPLIES: dict[str, Callable[[Any, str], Message]] = {
    "GetProvisioningCategories": lambda m, e: m.reply(
        GetProvisioningCategoriesResult, last=True, error=e
    ),
    "GetProvisioningCode": lambda m, e: m.reply(GetProvisioningCodeResult, error=e),
    "GetProvisionedDevice": lambda m, e: m.reply(GetProvisionedDeviceResult, code=m.code, error=e),
}

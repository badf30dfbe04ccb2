"""The Services API on the PBX App-object connection (spec section 3)."""

from __future__ import annotations

from typing import Any

import attrs

from ._codec import Message, message, record, wire

SERVICES_API = "Services"


@record
class Service:
    """One app service the PBX knows, as listed in ``ServicesInfo``."""

    name: str
    url: str = ""
    title: str = ""
    info: dict[str, Any] = attrs.field(factory=dict)

    def apis(self) -> dict[str, Any]:
        """The API map: real PBXes put it under ``info.apis``, the SDK text under ``info``."""
        nested = self.info.get("apis")
        if isinstance(nested, dict):
            return nested
        return self.info

    def provides(self, api: str) -> bool:
        return api in self.apis()


@message("SubscribeServices", api=SERVICES_API)
class SubscribeServices(Message):
    pass


@message("SubscribeServicesResult", api=SERVICES_API)
class SubscribeServicesResult(Message):
    pass


@message("ServicesInfo", api=SERVICES_API)
class ServicesInfo(Message):
    services: tuple[Service, ...] = attrs.field(default=(), converter=tuple)

    def find(self, api: str) -> Service | None:
        """The first service providing ``api``, if any."""
        return next((s for s in self.services if s.provides(api)), None)


@message("UnsubscribeServices", api=SERVICES_API)
class UnsubscribeServices(Message):
    pass


@message("UnsubscribeServicesResult", api=SERVICES_API)
class UnsubscribeServicesResult(Message):
    pass


@message("GetServiceLogin", api=SERVICES_API)
class GetServiceLogin(Message):
    """Ask the PBX to log us in to service ``app`` which sent us ``challenge``."""

    app: str
    challenge: str


@message("GetServiceLoginResult", api=SERVICES_API)
class GetServiceLoginResult(Message):
    """A ready-made login for another service plus its encrypted session key.

    Send ``app, domain, sip, guid, dn, info, digest, pbxObj`` to the service as an
    ``AppLogin``; the service's session key is ``decrypt(salt, key)`` under the PBX
    connection's own session key.
    """

    app: str = ""
    domain: str = ""
    sip: str = ""
    guid: str = ""
    dn: str = ""
    pbx_obj: str | None = wire("pbxObj", default=None)
    info: dict[str, Any] | None = None
    digest: str = ""
    salt: str = ""
    key: str = ""
    #: A text, or a number with the text in ``errorText``: the innovaphone JS client shows
    #: ``errorText`` if set, else ``"Error " + error`` (``web1/appwebsocket/
    #: innovaphone.appwebsocket.Connection.js``, AppLoginResult handling). Zero/empty = none.
    error: int | str | None = None
    error_text: str | None = wire("errorText", default=None)

    @property
    def failure(self) -> str | None:
        """A log-safe description of the refusal, or None if the PBX made a login."""
        if not self.error and not self.error_text:
            return None
        if self.error_text and self.error and not isinstance(self.error, str):
            return f"{self.error_text} (error {self.error})"
        if isinstance(self.error, str) and self.error:
            return self.error
        return self.error_text or f"error {self.error}"

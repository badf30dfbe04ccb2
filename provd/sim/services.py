"""The app services the simulated PBX knows, and its side of ``GetServiceLogin`` (spec section 3).

Pure: the PBX shell lists these in ``ServicesInfo`` and answers ``GetServiceLogin`` from
here; the Users service asks the same registry for its own logins (it is part of the same
installation, so it needs no socket to its PBX). A real PBX knows every App object's
password, hence :class:`ServiceEntry` carries one; it never goes on the wire except as a digest.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from ..protocol.login import Identity, make_service_login
from ..protocol.messages import GetServiceLogin, GetServiceLoginResult, Service, ServicesInfo


@attrs.define
class ServiceEntry:
    name: str
    url: str
    password: str = attrs.field(repr=False)
    title: str = ""
    #: The API map the service published (from its AppInfoResult, where ``pbx.
    #: service_apis_from`` says); empty = not yet known.
    apis: dict[str, Any] = attrs.field(factory=dict)

    def to_service(self) -> Service:
        return Service(name=self.name, title=self.title, url=self.url, info={"apis": self.apis})


#: The number a ``numeric_errors`` PBX puts in a refused GetServiceLoginResult. The public
#: documents list no error numbers; any non-zero number is a refusal to the JS client.
REFUSED_CODE = 1


class ServiceRegistry:
    """Args: ``on_change`` is called after every change (the PBX pushes ServicesInfo)."""

    def __init__(
        self, on_change: Callable[[], None] = lambda: None, *, numeric_errors: bool = False
    ) -> None:
        self._entries: dict[str, ServiceEntry] = {}
        self.on_change = on_change
        #: Refusals carry a numeric ``error`` and ``errorText`` (``pbx.numeric_errors``).
        self.numeric_errors = numeric_errors
        #: Bumped on every change; the PBX pushes when it differs from what it last sent.
        self.version = 0

    def set(self, entry: ServiceEntry) -> None:
        self._entries[entry.name] = entry
        self._changed()

    def update(self, name: str, **changes: Any) -> None:
        """Change a listed service (``url``, ``apis``, ``title``, ``password``).

        Raises:
            KeyError: no such service.
        """
        entry = self._entries[name]
        for field, value in changes.items():
            if field not in attrs.fields_dict(ServiceEntry) or field == "name":
                raise TypeError(f"cannot change {field!r}")
            setattr(entry, field, value)
        self._changed()

    def remove(self, name: str) -> None:
        if self._entries.pop(name, None) is not None:
            self._changed()

    def get(self, name: str) -> ServiceEntry | None:
        return self._entries.get(name)

    def find(self, api: str) -> ServiceEntry | None:
        """The first listed service publishing ``api``."""
        return next((e for e in self._entries.values() if api in e.apis), None)

    def services_info(self, src: str | None = None) -> ServicesInfo:
        """Services with a known API map (an App object that never told its APIs is not
        listed, as a PBX cannot know them)."""
        return ServicesInfo(
            src=src, services=[e.to_service() for e in self._entries.values() if e.apis]
        )

    def service_login(
        self, request: GetServiceLogin, *, caller: Identity, pbx_session_key: str
    ) -> GetServiceLoginResult:
        """A login to ``request.app`` for ``caller``, or an ``error`` for an unknown service."""
        entry = self._entries.get(request.app)
        if entry is None:
            return self.refusal(request, "unknown service")
        return make_service_login(
            request=request,
            caller=caller,
            target_password=entry.password,
            pbx_session_key=pbx_session_key,
        )

    def refusal(self, request: GetServiceLogin, text: str) -> GetServiceLoginResult:
        """A refused ``GetServiceLogin``: ``error`` as text, or as a number with the text
        in ``errorText`` (``numeric_errors``; the JS client's reading, spec section 8.3)."""
        if self.numeric_errors:
            return request.reply(GetServiceLoginResult, error=REFUSED_CODE, error_text=text)
        return request.reply(GetServiceLoginResult, error=text)

    def _changed(self) -> None:
        self.version += 1
        self.on_change()

"""AppWebsocket base messages: login, app info, build check, keep-alive (spec section 2)."""

from __future__ import annotations

from typing import Any

import attrs

from ._codec import Message, message, wire


@message("AppChallenge")
class AppChallenge(Message):
    """Client asks for a login challenge."""


@message("AppChallengeResult")
class AppChallengeResult(Message):
    challenge: str


@message("AppLogin")
class AppLogin(Message):
    """A login. ``info`` is kept as received: its key order is part of the digest."""

    app: str
    digest: str
    domain: str = ""
    sip: str = ""
    guid: str = ""
    dn: str = ""
    pbx_obj: str | None = wire("pbxObj", default=None)
    info: dict[str, Any] | None = None


@message("AppLoginResult")
class AppLoginResult(Message):
    ok: bool | None = None
    error: str | None = None


@message("PbxInfo")
class PbxInfo(Message):
    """Sent by the PBX after an App-object login: which APIs this connection offers."""

    domain: str = ""
    pbx: str = ""
    pbx_dns: str = wire("pbxDns", default="")
    apis: tuple[str, ...] = attrs.field(default=(), converter=tuple)


@message("AppInfo")
class AppInfo(Message):
    app: str = ""


#: The ``AppInfoResult`` member provd fills with its *service info*: what the C++ library's
#: ``AppWebsocketServiceInfo(app, msg, base)`` writes (SDK ``common/lib/appwebsocket.htm``:
#: "Called by the library to get information about the websocket services of a certain app
#: instance"; its example writes ``{"apis":{"com.innovaphone.channels":{}}}``), and what the
#: PBX lists in ``ServicesInfo`` (``doc/appwebsocket/Services.htm``: ``"info": AppServiceInfo``,
#: "the services that an app service provides on incoming AppWebsocket connections"). The
#: public documents never name this member; ``serviceInfo`` is provd's reading of the
#: library's naming (``AppWebsocketAppInfo`` → ``info``, ``AppWebsocketServiceInfo`` →
#: ``serviceInfo``) until a capture settles it (README, "Where the public documentation is
#: silent"). Until then provd also lists the API in ``info.apis``.
SERVICE_INFO_MEMBER = "serviceInfo"


@message("AppInfoResult")
class AppInfoResult(Message):
    """``info`` is the *app info* (``hidden``, client ``apis``); ``service_info`` the
    *service info* (``apis`` offered on incoming AppWebsocket connections). ``app`` echoes
    the request."""

    app: str | None = None
    info: dict[str, Any] = attrs.field(factory=dict)
    service_info: dict[str, Any] | None = wire(SERVICE_INFO_MEMBER, default=None)


@message("CheckBuild")
class CheckBuild(Message):
    url: str = ""


@message("CheckBuildResult")
class CheckBuildResult(Message):
    """``url`` only when the client must load another page: the innovaphone JS client
    (``web1/appwebsocket/innovaphone.appwebsocket.Connection.js``) redirects whenever it is
    set (``if (obj.url) { ... location.href = obj.url; }``), and the myApps protocol document
    says "url: Given, if a redirect is needed". provd never redirects."""

    url: str | None = None


@message("AppCheckLogin")
class AppCheckLogin(Message):
    """The PBX Manager checks an App object's password on a fresh connection, without a
    login (SDK ``common/lib/appwebsocket.htm``, ``AppWebsocketCheckLogin(src, app, domain,
    challenge, digest)``; the digest comes from PbxAdminApi ``GetAppLogin``)."""

    app: str = ""
    domain: str = ""
    challenge: str = ""
    digest: str = ""


@message("AppCheckLoginResult")
class AppCheckLoginResult(Message):
    """Whether :class:`AppCheckLogin`'s digest matches the instance password.

    The public SDK names the message only through ``AppWebsocketCheckLoginComplete`` and
    documents no members; provd answers like ``AppLoginResult`` (``ok``, and ``error`` when
    not ok), echoing ``src``, ``app`` and ``domain``.
    """

    app: str | None = None
    domain: str | None = None
    ok: bool = False
    error: str | None = None


@message("KeepAlive")
class KeepAlive(Message):
    """Sent by clients after 60 s without traffic; accepted silently."""


@message("KeepAliveResult")
class KeepAliveResult(Message):
    pass


def app_info_result(request: AppInfo, *, title: str, hidden: bool = False) -> AppInfoResult:
    """The answer by which provd publishes ``com.innovaphone.provisioning``.

    The API goes into the service info (where the provisioning tutorial, seed 002 Task 1,
    publishes it with ``AppWebsocketServiceInfo``) *and* into ``info.apis`` (where older
    provd put it and some PBX may read it), until a capture shows which one a PBX lists.
    """
    from .provisioning import PROVISIONING_API

    return request.reply(
        AppInfoResult,
        app=request.app or None,
        info={"hidden": hidden, "apis": {PROVISIONING_API: {"title": title}}},
        service_info={"apis": {PROVISIONING_API: {}}},
    )

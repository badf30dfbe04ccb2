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


@message("AppInfoResult")
class AppInfoResult(Message):
    """``info`` carries ``hidden`` and the ``apis`` map this app service publishes."""

    info: dict[str, Any] = attrs.field(factory=dict)


@message("CheckBuild")
class CheckBuild(Message):
    url: str = ""


@message("CheckBuildResult")
class CheckBuildResult(Message):
    url: str = ""


@message("KeepAlive")
class KeepAlive(Message):
    """Sent by clients after 60 s without traffic; accepted silently."""


@message("KeepAliveResult")
class KeepAliveResult(Message):
    pass


def app_info_result(request: AppInfo, *, title: str, hidden: bool = False) -> AppInfoResult:
    """The answer by which provd publishes ``com.innovaphone.provisioning``."""
    from .provisioning import PROVISIONING_API

    return request.reply(
        AppInfoResult,
        info={"hidden": hidden, "apis": {PROVISIONING_API: {"title": title}}},
    )

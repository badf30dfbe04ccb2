"""Control-socket commands that need the daemon's live sessions (PBX and Devices).

``provd devices categories|code|provisioned`` ask Devices through the kept
:class:`~.devices_api.DevicesSession`; ``provd phones add`` puts a ``ProvisioningPhone`` together
without the Users service: a code from Devices (``GetProvisioningCode`` with the user's SIP
name), the user's names and device entry from the PBX (PbxAdminApi ``GetObject``), and the
password the operator typed. It then takes the one provisioning path
(:func:`~.appservice.provision_phone`), as a ``ProvisioningPhone`` would.

Every failure an operator can fix is an ``{"ok": false, "error": ...}`` answer naming what
is missing. The password arrives over the control socket (mode 0600) and is registered
with the log scrubber before anything else happens.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import attrs
import structlog

from ..logs import register_secret
from ..protocol.messages import GetObjectResult
from ..protocol.messages.devices import DEVICE_TYPES
from . import control
from .appservice import AppServiceContext, PhoneRequest, provision_phone
from .devices_api import DevicesRefused, DevicesSession, DevicesUnavailable
from .pbxadmin import PbxAdminClient, PbxAdminError, PbxAdminUnavailable

if TYPE_CHECKING:
    from .daemon import Daemon

log = structlog.get_logger("provd.devices_control")

#: The error for a PBX session that does not offer PbxAdminApi.
NO_ADMIN_API = (
    "the PBX's App object for provd does not offer PbxAdminApi: tick PbxAdminApi in the "
    "App object's settings on the PBX, then let it reconnect"
)
NO_PBX = (
    "no PBX session: the PBX's App object for provd is not connected "
    "(check the App object's URL and password on the PBX)"
)


def handlers(daemon: Daemon) -> dict[str, control.Handler]:
    session = daemon.devices_session
    return {
        "devices_categories": functools.partial(_categories, session),
        "devices_code": functools.partial(_code, session),
        "devices_provisioned": functools.partial(_provisioned, daemon, session),
        "phones_add": functools.partial(_phones_add, daemon.app_ctx, session, daemon.pbx_admin),
    }


def _text(request: dict[str, Any], key: str, *, required: bool = True) -> str | None:
    value = request.get(key)
    if value is None or value == "":
        if required:
            raise ValueError(f"{key} missing")
        return None
    if not isinstance(value, str):
        raise ValueError(f"{key} must be a string")
    return value


def _failed(exc: DevicesUnavailable | DevicesRefused) -> dict[str, Any]:
    return {"ok": False, "error": exc.reason if isinstance(exc, DevicesUnavailable) else str(exc)}


async def _categories(session: DevicesSession, request: dict[str, Any]) -> dict[str, Any]:
    kind = _text(request, "type", required=False)
    if kind is not None and kind not in DEVICE_TYPES:
        raise ValueError(f"type must be one of {', '.join(DEVICE_TYPES)}")
    try:
        found = await session.categories(type=kind)
    except (DevicesUnavailable, DevicesRefused) as exc:
        return _failed(exc)
    return {"ok": True, "categories": [attrs.asdict(c) for c in found]}


async def _code(session: DevicesSession, request: dict[str, Any]) -> dict[str, Any]:
    category = _text(request, "category")
    assert category is not None
    sip = _text(request, "sip", required=False)
    rollout = request.get("rollout", False)
    if not isinstance(rollout, bool):
        raise ValueError("rollout must be true or false")
    try:
        result = await session.code(category, sip=sip, rollout=rollout)
    except (DevicesUnavailable, DevicesRefused) as exc:
        return _failed(exc)
    return {"ok": True, "code": result.code, "valid_until": result.valid_until}


async def _provisioned(
    daemon: Daemon, session: DevicesSession, request: dict[str, Any]
) -> dict[str, Any]:
    code = _text(request, "code")
    assert code is not None
    try:
        result = await session.provisioned(code)
    except (DevicesUnavailable, DevicesRefused) as exc:
        return _failed(exc)
    seen = await daemon.store.call(lambda db: db.device_provisioned(code))
    device = attrs.asdict(result.device) if result.device is not None else None
    return {"ok": True, "code": code, "device": device, "event": seen}


async def _phones_add(
    ctx: AppServiceContext,
    session: DevicesSession,
    pbx_admin: PbxAdminClient,
    request: dict[str, Any],
) -> dict[str, Any]:
    mac = control.mac_arg(request)
    password = _text(request, "password")
    assert password is not None
    register_secret(password, owner=mac)  # before anything can log or echo it
    user = _text(request, "user")
    category = _text(request, "category")
    assert user is not None and category is not None
    hwid = _text(request, "hwid", required=False) or mac
    with structlog.contextvars.bound_contextvars(mac=mac, user=user):
        error, obj, pbx = await _user_object(ctx, pbx_admin, user)
        if error is not None:
            log.warning("phones_add.refused", error=error)
            return {"ok": False, "error": error}
        assert obj is not None and pbx is not None
        device = obj.device(hwid)
        if device is None:
            have = ", ".join(d.hw for d in obj.devices if d.hw) or "none"
            error = (
                f"user {user} has no device entry with hardware id {hwid} (it has: {have}); "
                f"add one on the PBX (the user's Devices tab, Hardware Id {hwid}) "
                "or give --hwid with an existing one"
            )
            log.warning("phones_add.refused", error=error)
            return {"ok": False, "error": error}
        try:
            issued = await session.code(category, sip=obj.h323 or user)
        except (DevicesUnavailable, DevicesRefused) as exc:
            answer = _failed(exc)
            log.warning("phones_add.refused", error=answer["error"])
            return answer
        info = pbx.pbx_info
        domain = info.domain if info is not None else ""
        dns = (info.pbx_dns if info is not None else "") or domain
        log.info("phones_add.provisioning", code=issued.code, hwid=device.hw, category=category)
        outcome = await provision_phone(
            ctx,
            PhoneRequest(
                mac=mac,
                code=issued.code,
                hwid=device.hw,
                usename=obj.h323 or user,
                cn=obj.cn,
                password=password,
                domain=domain,
                dns=dns,
            ),
        )
        if outcome.ok:
            log.info("phones_add.ok")
        else:
            log.warning("phones_add.failed", error=outcome.error)
        return {
            "ok": outcome.ok,
            "error": outcome.error,
            "mac": mac,
            "code": issued.code,
            "valid_until": issued.valid_until,
            "hwid": device.hw,
            "cn": obj.cn,
        }


async def _user_object(
    ctx: AppServiceContext, pbx_admin: PbxAdminClient, user: str
) -> tuple[str | None, GetObjectResult | None, Any]:
    """``(error, object, pbx session)``: the PBX user ``user`` (its SIP name, the object's
    ``h323``, else its Long Name, ``cn``) via PbxAdminApi ``GetObject`` (SDK
    ``doc/appwebsocket/PbxAdminApi.htm``), or why it cannot be had."""
    if ctx.current_pbx() is None:
        return NO_PBX, None, None
    pbx = ctx.pbx_admin_session()
    if pbx is None:
        return NO_ADMIN_API, None, None
    first: PbxAdminError | None = None
    # The SIP name (h323) first; an operator may also give the Long Name (cn).
    for key in ("h323", "cn"):
        try:
            return None, await pbx_admin.get_object(**{key: user}), pbx
        except PbxAdminUnavailable:
            return NO_ADMIN_API, None, None
        except PbxAdminError as exc:
            first = first or exc
    assert first is not None
    return f"cannot read user {user} from the PBX: {first.reason}", None, None

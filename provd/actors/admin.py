"""The admin API behind provd's App (``"api":"ProvdAdmin"`` on the AppWebsocket server).

Who may use it: an *admin login* only, that is a login whose ``app`` is the admin App's
name (``appservice.admin_app``): the login myApps gets from the PBX for a user who has the
App object (``getLogin``), or the App's own password login with the instance password.
Every other login on the same server (the Users service's login, which the PBX makes with
``app`` = provd's service name, and the PBX App-object session) gets an ``error`` answer for
every admin request and a warning in the log; the provisioning API is untouched.

Every request is checked by :mod:`provd.protocol.admin`; every change is logged with who
made it (``admin.*`` events carry ``by=<sip>@<domain>``). Settings the administrator sets
are stored in the settings table (``admin.phones``) and applied like a reload: the config
file is re-read and the stored settings laid over its ``[phones]`` section.
"""

from __future__ import annotations

import json
import time
from collections import deque
from typing import TYPE_CHECKING, Any

import attrs
import structlog
import trio
from trio_websocket import ConnectionClosed

from .. import logs
from ..phones.identify import vendor_for_oui
from ..phones.keys import Key
from ..phones.page import file_preview
from ..phones.settings import PhonesSettings
from ..protocol import ProtocolError, jsonwire
from ..protocol.admin import (
    SETTINGS,
    AdminRequest,
    error_result,
    mask_item,
    parse_request,
)
from ..store.records import PhoneRecord
from .state import PhoneDirectory

if TYPE_CHECKING:
    from ..config import Config
    from ..protocol.messages import UnknownMessage
    from .appservice import AppSession
    from .daemon import Daemon

log = structlog.get_logger("provd.admin")

#: Settings-table key holding the administrator's settings (JSON object, phones.* names).
SETTINGS_KEY = "admin.phones"
#: Seconds of warnings/errors the health page shows, and how many at most.
ERROR_WINDOW = 3600.0
MAX_ERRORS = 200
#: Updates queued per subscribed App before it is sent a fresh full list instead.
SUBSCRIBER_BUFFER = 256


class ObservedDirectory(PhoneDirectory):
    """The phone directory, telling listeners about every change (live App updates)."""

    def __init__(self) -> None:
        super().__init__()
        self.listeners: list[Any] = []

    def put(self, record: PhoneRecord) -> None:
        super().put(record)
        record = self.get(record.mac) or record  # as kept (its online flag: the actor's)
        for fn in list(self.listeners):
            fn(record.mac, record)

    def remove(self, mac: str) -> None:
        super().remove(mac)
        for fn in list(self.listeners):
            fn(mac, None)


def is_admin(session: AppSession) -> bool:
    login = session.login.login
    return login is not None and login.app == session.ctx.config.appservice.admin_app


def who(session: AppSession) -> str:
    login = session.login.login
    if login is None:
        return "?"
    return f"{login.sip or login.app}@{login.domain}" if login.domain else login.sip or login.app


def phone_summary(record: PhoneRecord) -> dict[str, Any]:
    vendor = vendor_for_oui(record.mac)
    return {
        "mac": record.mac,
        "user": record.usename,
        "cn": record.cn,
        "hwid": record.hwid,
        "state": record.state,
        "error": record.error,
        "online": record.online,
        "vendor": vendor.value if vendor else "",
        "category": record.key_category,
        "revision": record.revision,
        "created": record.created,
        "updated": record.updated,
    }


def lifecycle_json(life: Any) -> dict[str, Any] | None:
    """A phone's lifecycle (:class:`~provd.store.records.Lifecycle`) for the admin API."""
    if life is None:
        return None
    return {
        "state": life.state,
        "since": life.since,
        "provisioned": life.provisioned_at,
        "fetched": life.fetched_at,
        "registered": life.registered_at,
        "checked": life.checked_at,
        "addr": life.addr,
        "error": life.error,
        "warned": life.warned,
    }


def overlay(config: Config, stored: dict[str, Any]) -> Config:
    """``config`` with the administrator's (already checked) phone settings laid over it."""
    if not stored:
        return config
    checked = PhonesSettings.from_mapping(stored)
    phones = attrs.evolve(config.phones, **{k: getattr(checked, k) for k in stored})
    return attrs.evolve(config, phones=phones)


def check_settings(
    current: PhonesSettings, changes: dict[str, Any]
) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """Check the administrator's changes one field at a time.

    Returns:
        ``(accepted, errors)``; each error is ``{"field": "phones.<name>", "error": text}``.
    """
    accepted: dict[str, Any] = {}
    errors: list[dict[str, str]] = []
    for name, value in changes.items():
        if name not in SETTINGS:
            errors.append({"field": f"phones.{name}", "error": "cannot be set in the App"})
            continue
        # Each field alone (a password is checked together with the user name below).
        probe = {name: value, **({"username": "u"} if name == "password" else {})}
        try:
            PhonesSettings.from_mapping(probe)
        except ValueError as exc:
            text = str(exc)
            field, _, error = text.partition(": ")
            errors.append({"field": field or f"phones.{name}", "error": error or text})
            continue
        accepted[name] = value
    user = accepted.get("username", current.username)
    password = accepted.get("password", current.password)
    if password and not user and not any(e["field"] == "phones.username" for e in errors):
        errors.append({"field": "phones.password", "error": "set a user name with it"})
    return accepted, errors


def settings_view(phones: PhonesSettings) -> dict[str, Any]:
    """The live-settable settings as the App edits them (the password never leaves)."""

    def key_text(key: Key) -> str:
        return ":".join(str(v) for v in (key.kind, key.target, key.label) if v is not None).rstrip(
            ":"
        )

    return {
        "sip_transport": phones.sip_transport,
        "resync_interval": phones.resync_interval,
        "time_server": phones.time_server,
        "time_zone": phones.time_zone,
        "firmware": {v: dict(m) for v, m in phones.firmware.items()},
        "keys": {c: [key_text(k) for k in keys] for c, keys in phones.keys.items()},
        "username": phones.username,
        "password": "",
        "password_set": bool(phones.password),
    }


@attrs.define
class _Subscriber:
    session: AppSession
    request: AdminRequest
    send: trio.MemorySendChannel[dict[str, Any]]
    overflowed: bool = False


class AdminApi:
    """One per daemon; sessions hand it their ``ProvdAdmin`` messages."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        #: The administrator's stored settings (phones.* names → TOML-shaped values).
        self.stored: dict[str, Any] = {}
        self.errors: deque[dict[str, Any]] = deque(maxlen=MAX_ERRORS)
        self._subscribers: list[_Subscriber] = []
        logs.add_tap(self._on_log)
        directory = daemon.directory
        if isinstance(directory, ObservedDirectory):
            directory.listeners.append(self._on_phone)

    # --- stored settings ----------------------------------------------------------------------

    async def load(self) -> None:
        """Read the stored settings (at start, before the first render)."""
        raw = await self.daemon.store.call(lambda db: db.setting(SETTINGS_KEY))
        if not raw:
            return
        try:
            stored = json.loads(raw)
            if not isinstance(stored, dict):
                raise ValueError("not an object")
            _, errors = check_settings(PhonesSettings(), stored)
            if errors:
                raise ValueError(f"{errors[0]['field']}: {errors[0]['error']}")
        except ValueError as exc:
            log.error("admin.stored_settings_invalid", key=SETTINGS_KEY, error=str(exc))
            return
        self.stored = stored
        for name in stored:
            log.info("admin.setting_in_force", setting=f"phones.{name}")

    def close(self) -> None:
        logs.remove_tap(self._on_log)

    def overlay(self, config: Config) -> Config:
        return overlay(config, self.stored)

    # --- live updates -------------------------------------------------------------------------

    def _on_phone(self, mac: str, record: PhoneRecord | None) -> None:
        for sub in list(self._subscribers):
            if sub.overflowed:
                continue
            if record is None:
                msg = sub.request.indication("PhoneRemoved", mac=mac)
            else:
                msg = sub.request.indication("PhoneUpdate", phone=phone_summary(record))
            try:
                sub.send.send_nowait(msg)
            except trio.WouldBlock:
                sub.overflowed = True  # the sender sends a full list once it catches up
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass

    def _on_log(self, event: dict[str, Any]) -> None:
        fields = {
            k: str(v)[:200]
            for k, v in event.items()
            if k not in ("event", "level", "exc_info", "exception", "timestamp")
        }
        self.errors.append(
            {
                "time": time.time(),
                "level": event.get("level", ""),
                "event": str(event.get("event", ""))[:120],
                "fields": fields,
            }
        )

    async def _pump(self, sub: _Subscriber, receive: trio.MemoryReceiveChannel) -> None:
        try:
            async with receive:
                async for msg in receive:
                    await self._send(sub.session, msg)
                    if sub.overflowed:
                        sub.overflowed = False
                        while True:  # drop what queued meanwhile: the full list covers it
                            try:
                                receive.receive_nowait()
                            except trio.WouldBlock:
                                break
                        phones = [phone_summary(r) for r in self.daemon.directory.all()]
                        await self._send(
                            sub.session, sub.request.indication("Phones", phones=phones)
                        )
        finally:
            if sub in self._subscribers:
                self._subscribers.remove(sub)

    # --- dispatch -----------------------------------------------------------------------------

    async def handle(self, session: AppSession, msg: UnknownMessage) -> None:
        """One ``ProvdAdmin`` message from ``session``: checked, authorised, answered."""
        try:
            request = parse_request(msg.body)
        except ProtocolError as exc:
            log.warning("admin.bad_request", reason=exc.reason, by=who(session))
            await self._send(session, error_result(msg.body, exc.reason))
            return
        if not is_admin(session):
            log.warning(
                "admin.not_admin",
                mt=request.mt,
                by=who(session),
                app=session.login.login.app if session.login.login else "",
            )
            await self._send(session, request.result(error="not an admin login"))
            return
        handler = getattr(self, f"_on_{request.mt}")
        with structlog.contextvars.bound_contextvars(by=who(session)):
            try:
                answer = await handler(session, request)
            except Exception:
                log.exception("admin.internal_error", mt=request.mt)
                answer = request.result(error="provd could not do this (see its log)")
        if answer is not None:
            await self._send(session, answer)

    async def _send(self, session: AppSession, obj: dict[str, Any]) -> None:
        try:
            await session.conn.ws.send_message(jsonwire.dumps(obj))
        except (ConnectionClosed, trio.BrokenResourceError, trio.ClosedResourceError):
            # closed meanwhile: the session's reader sees it too
            log.debug("admin.send_failed", mt=obj.get("mt"))

    # --- phones -------------------------------------------------------------------------------

    async def _on_GetPhones(self, session: AppSession, request: AdminRequest) -> dict[str, Any]:
        return request.result(phones=[phone_summary(r) for r in self.daemon.directory.all()])

    async def _on_SubscribePhones(self, session: AppSession, request: AdminRequest) -> None:
        send, receive = trio.open_memory_channel[dict[str, Any]](SUBSCRIBER_BUFFER)
        sub = _Subscriber(session, request, send)
        self._subscribers.append(sub)
        await self._send(
            session, request.result(phones=[phone_summary(r) for r in self.daemon.directory.all()])
        )
        nursery = session._nursery
        assert nursery is not None
        nursery.start_soon(self._pump, sub, receive)
        return None

    def _record(self, request: AdminRequest) -> PhoneRecord | None:
        return self.daemon.directory.get(request.args["mac"])

    async def _on_GetPhone(self, session: AppSession, request: AdminRequest) -> dict[str, Any]:
        mac = request.args["mac"]
        record = self._record(request)
        if record is None:
            return request.result(error=f"no phone {mac}")
        fetches = await self.daemon.store.call(lambda db: db.fetches(mac, limit=20))
        history = [
            {
                "time": f.time,
                "address": f.address,
                "userAgent": f.user_agent,
                "vendor": f.vendor,
                "model": f.model or "",
                "firmware": f.firmware or "",
                "file": f.file,
            }
            for f in fetches
        ]
        model = next((f.model for f in fetches if f.model), None)
        return request.result(
            phone={
                **phone_summary(record),
                "model": model or "",
                "address": fetches[0].address if fetches else "",
                "assigned": record.assigned,
                "running": self.daemon.supervisor.is_running(mac),
                "domain": record.domain,
                "dns": record.dns,
                "keys": [dict(k) for k in record.keys],
                "lifecycle": lifecycle_json(self.daemon.registration.book.phones.get(mac)),
            },
            items={t: mask_item(item) for t, item in sorted(record.config.items())},
            fetches=history,
            file=self._file(record, model),
        )

    def _file(self, record: PhoneRecord, model: str | None) -> dict[str, Any]:
        """The file the phone would get now, secrets masked (as ``provd render``)."""
        preview = file_preview(
            self.daemon.renderer, self.daemon.directory.data(record.mac), record, None, model=model
        )
        if preview.error:
            return {"error": preview.error}
        return {"name": preview.name, "contentType": preview.content_type, "text": preview.text}

    async def _on_Reconnect(self, session: AppSession, request: AdminRequest) -> dict[str, Any]:
        record = self._record(request)
        if record is None:
            return request.result(error=f"no phone {request.args['mac']}")
        if not (record.assigned or record.state == "pending"):
            return request.result(error=f"the phone is {record.state}: nothing to reconnect")
        self.daemon.supervisor.start(record.mac)
        log.info("admin.phone_reconnect", mac=record.mac)
        return request.result()

    async def _on_Rerender(self, session: AppSession, request: AdminRequest) -> dict[str, Any]:
        record = self._record(request)
        if record is None:
            return request.result(error=f"no phone {request.args['mac']}")
        self.daemon.directory.put(record)  # drops the phone's cached data
        self.daemon.renderer.reload()  # and every rendered file: the next fetch renders anew
        log.info("admin.phone_rerender", mac=record.mac)
        return request.result()

    async def _on_RemovePhone(self, session: AppSession, request: AdminRequest) -> dict[str, Any]:
        mac = request.args["mac"]
        answer = await self.daemon._control_remove({"mac": mac})
        log.info("admin.phone_removed", mac=mac, existed=answer.get("removed"))
        return request.result(removed=bool(answer.get("removed")))

    # --- health -------------------------------------------------------------------------------

    async def _on_GetHealth(self, session: AppSession, request: AdminRequest) -> dict[str, Any]:
        daemon = self.daemon
        status = await daemon._control_status({})
        in_flight, waiting = daemon.observe.handshakes()
        now = time.time()
        errors = [e for e in self.errors if now - e["time"] <= ERROR_WINDOW]
        return request.result(
            version=status["version"],
            uptime=status["uptime"],
            pbx={
                **status["pbx"],
                "names": [s._pbx_name for s in daemon.app_ctx.pbx_sessions],
            },
            devices=status["devices"],
            handshakes={
                "inFlight": in_flight,
                "waiting": waiting,
                "limit": daemon.config.provisioning.max_handshakes,
            },
            phones=status["phones"],
            online=status["online"],
            states=status["states"],
            lastReload=status["last_reload"],
            errors=list(reversed(errors)),
        )

    # --- settings -----------------------------------------------------------------------------

    async def _on_GetSettings(self, session: AppSession, request: AdminRequest) -> dict[str, Any]:
        return request.result(
            settings=settings_view(self.daemon.config.phones),
            stored=sorted(self.stored),
        )

    async def _on_SetSettings(self, session: AppSession, request: AdminRequest) -> dict[str, Any]:
        changes = dict(request.args["settings"])
        if changes.get("password") == "" and "password" in changes:
            changes.pop("password")  # an empty password field keeps the current one
        accepted, errors = check_settings(self.daemon.config.phones, changes)
        if errors:
            for e in errors:
                log.info("admin.setting_refused", setting=e["field"], error=e["error"])
            return request.result(errors=errors)
        if "password" in accepted:
            logs.register_secret(accepted["password"])
        previous = dict(self.stored)
        self.stored = {**self.stored, **accepted}
        await self._store(self.stored)
        if not self.daemon.reload():
            self.stored = previous
            await self._store(previous)
            error = (self.daemon.last_reload or {}).get("error", "reload refused")
            log.warning("admin.settings_not_applied", error=error)
            return request.result(errors=[{"field": "", "error": error}])
        for name in accepted:
            value = "(secret)" if name == "password" else json.dumps(accepted[name])[:200]
            log.info("admin.setting_changed", setting=f"phones.{name}", value=value)
        return request.result(settings=settings_view(self.daemon.config.phones))

    async def _store(self, stored: dict[str, Any]) -> None:
        text = json.dumps(stored)
        await self.daemon.store.call(lambda db: db.set_setting(SETTINGS_KEY, text))

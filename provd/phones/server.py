"""The phone-facing HTTP(S) server: an ASGI app served by hypercorn's trio worker.

Per request: method check, optional HTTP Basic auth, :func:`identify`, the User-Agent
policy, then either a model-common file (anyone authorised) or a per-phone file (only for a
MAC the daemon knows, via ``lookup``). Each per-phone GET is reported through
``record_fetch``, which must not block (the daemon buffers, see
:class:`provd.phones.fetch.FetchRecorder`).

Settings are read from :attr:`PhonesApp.settings` on each request; assigning a new
``PhonesSettings`` (the daemon does on SIGHUP) applies credentials, throttling limits,
trusted proxies and the User-Agent policy at once.

User-Agent policy: Yealink, Snom, Grandstream and Fanvil phones put their MAC in the
User-Agent (phones.md, the vendor table), so a per-phone file for them is refused (403)
unless the User-Agent names that vendor and carries the MAC; ``anonymous_vendors``
(default Poly and Gigaset, which don't always send it) lifts this per vendor.

Misses (refusals) are throttled as :mod:`provd.phones.throttle` describes; a known phone
that passes the identity checks is never throttled. A render or lookup failure answers 500
and is logged with template, MAC and message, once per minute per template and error.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hmac
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve

from provd.phones import firmware
from provd.phones.fetch import FetchRecord
from provd.phones.identify import (
    Identification,
    IdentifyError,
    identify,
    normalize_mac,
    parse_user_agent,
)
from provd.phones.model import PhoneData
from provd.phones.render import Renderer
from provd.phones.robust import RenderError
from provd.phones.settings import PhonesSettings
from provd.phones.throttle import (
    MAX_TRACKED,
    LogLimiter,
    MissTracker,
    Throttle,
    client_address,
    parse_networks,
)
from provd.transport.asgi import lifespan

__all__ = ["MAX_TRACKED", "MissTracker", "PhonesApp", "hypercorn_config", "serve_phones"]

log = structlog.get_logger()

Lookup = Callable[[str], Awaitable[PhoneData | None]]
RecordFetch = Callable[[FetchRecord], Awaitable[None]]
Reply = tuple[int, list[tuple[bytes, bytes]], bytes | firmware.FirmwareFile]

#: Longest User-Agent kept for fetch records and log lines (phones send < 150 characters).
MAX_USER_AGENT = 256


class PhonesApp:
    """The ASGI application phones talk to.

    Args:
        renderer: renders the files.
        lookup: ``async (mac) -> PhoneData | None``: the provisioned phone with that MAC.
        record_fetch: ``async (FetchRecord) -> None``: called after each per-phone GET;
            must return promptly.
        settings: the ``[phones]`` settings (auth, throttling, proxies, User-Agent policy);
            assign :attr:`settings` to apply new ones.
        clock: monotonic seconds, for throttling (inject a fake in tests).
        wall_clock: UTC epoch seconds, for :attr:`FetchRecord.time`.
    """

    def __init__(
        self,
        renderer: Renderer,
        lookup: Lookup,
        record_fetch: RecordFetch,
        settings: PhonesSettings,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.renderer = renderer
        self.lookup = lookup
        self.record_fetch = record_fetch
        self.clock = clock
        self.wall_clock = wall_clock
        self.throttle = Throttle(settings, clock())
        self.errors = LogLimiter(interval=settings.miss_window)
        self.settings = settings

    @property
    def settings(self) -> PhonesSettings:
        """The settings in force; assigning new ones applies them to the next request."""
        return self._settings

    @settings.setter
    def settings(self, settings: PhonesSettings) -> None:
        credentials = (
            (settings.username.encode(), settings.password.encode()) if settings.username else None
        )
        proxies = parse_networks(settings.trusted_proxies)
        self.throttle.configure(settings)
        # One assignment each, no await in between: a request sees old or new, never a mix.
        self._credentials, self._proxies, self._settings = credentials, proxies, settings

    @property
    def misses(self) -> MissTracker:
        """The per-address miss counts."""
        return self.throttle.addresses

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        status, headers, body = await self._handle(scope)
        if isinstance(body, firmware.FirmwareFile):
            await firmware.send(body, status, headers, send, head=scope["method"] == "HEAD")
            return
        headers = [
            *headers,
            (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-store"),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        if scope["method"] == "HEAD":
            body = b""
        await send({"type": "http.response.body", "body": body})

    async def _handle(self, scope: dict[str, Any]) -> Reply:
        method = scope["method"]
        if method not in ("GET", "HEAD"):
            return 405, [(b"allow", b"GET, HEAD"), *_TEXT], b"method not allowed\n"
        client = scope.get("client")
        address = str(client[0]) if client else "unknown"
        if self._proxies:
            address = client_address(address, _forwarded_for(scope), self._proxies)
        path = scope.get("path", "")
        raw_agent = _header(scope, b"user-agent")
        user_agent = raw_agent[:MAX_USER_AGENT]
        now = self.clock()
        if self._credentials is not None:
            auth = _header(scope, b"authorization")
            if not self._authorised(auth):
                if auth:  # wrong credentials are a miss; the first, bare request is not
                    if (refused := self._miss(address, now)) is not None:
                        return refused
                    log.info("phones.unauthorised", address=address, path=path[:256])
                challenge = (b"www-authenticate", b'Basic realm="provd", charset="UTF-8"')
                return 401, [challenge, *_TEXT], b"unauthorised\n"
        if firmware.is_firmware_path(path):
            return await self._firmware(path.removeprefix(firmware.PREFIX), address, now)
        try:
            ident = identify(path, raw_agent)
        except IdentifyError as error:
            if error.status == 404 and await self._known_phone_noise(path):
                log.debug("phones.not_served", address=address, path=path[:256])
                return 404, list(_TEXT), b"not found\n"
            return self._refuse(
                address, now, error.status, type(error).__name__, path[:256], user_agent
            )
        if ident.per_phone and not self._agent_acceptable(ident, raw_agent):
            reason = "UserAgentWithoutMac"
            return self._refuse(address, now, 403, reason, path[:256], user_agent)
        phone: PhoneData | None = None
        if ident.per_phone:
            assert ident.mac is not None
            try:
                phone = await self.lookup(ident.mac)
            except Exception as exc:  # a store/decryption bug: answer 500, keep serving
                return self._server_error("-", ident, exc.__class__.__name__, now)
            if phone is None:
                if (refused := self._miss(address, now)) is not None:
                    return refused
                log.info("phones.unknown_mac", address=address, mac=ident.mac, file=ident.file)
                return 404, list(_TEXT), b"not found\n"
        try:
            rendered = self.renderer.render(phone, ident)
        except RenderError as error:
            return self._server_error(error.template, ident, error.message, now)
        except Exception as exc:  # a bug in rendering: answer 500, keep serving
            return self._server_error("-", ident, f"{type(exc).__name__}: {exc}"[:300], now)
        # Debug only: a boot storm would flood the journal; fetches are recorded in the store.
        log.debug(
            "phones.served",
            address=address,
            vendor=str(ident.vendor),
            file=ident.file,
            mac=ident.mac,
            model=ident.model,
            firmware=ident.firmware,
            method=method,
        )
        if phone is not None and method == "GET":
            await self.record_fetch(
                FetchRecord(
                    time=self.wall_clock(),
                    address=address,
                    user_agent=user_agent,
                    vendor=str(ident.vendor),
                    model=ident.model,
                    firmware=ident.firmware,
                    file=ident.file,
                    mac=phone.mac,
                )
            )
        return 200, [(b"content-type", rendered.content_type.encode())], rendered.content

    async def _known_phone_noise(self, path: str) -> bool:
        """A file we don't serve, named after a phone we know (Poly's ``<mac>-phone.cfg``,
        ``<mac>-web.cfg``, ...): boot noise, not a scan, so not a miss (phones.md, "Boots
        are noisy")."""
        found = _PATH_MAC.search(path[:256])
        mac = normalize_mac(found[1]) if found else None
        if mac is None:
            return False
        try:
            return await self.lookup(mac) is not None
        except Exception:  # a lookup failure: count it as a miss, as before
            return False

    def _agent_acceptable(self, ident: Identification, user_agent: str) -> bool:
        """Whether the User-Agent vouches for a per-phone request (see the module doc)."""
        if str(ident.vendor) in self._settings.anonymous_vendors:
            return True
        ua = _parse_user_agent(user_agent)
        return ua is not None and ua.vendor is ident.vendor and ua.mac == ident.mac

    def _miss(self, address: str, now: float) -> Reply | None:
        """Count a miss; the 429 reply if it is throttled, else None (answer as usual)."""
        throttled = self.throttle.miss(address, now)
        if throttled is None:
            return None
        scope, fields = throttled
        if fields:
            log.warning("phones.throttled", scope=scope, **fields)
        retry = str(int(self._settings.miss_window)).encode()
        return 429, [(b"retry-after", retry), *_TEXT], b"too many requests\n"

    def _refuse(
        self, address: str, now: float, status: int, reason: str, path: str, user_agent: str
    ) -> Reply:
        if (refused := self._miss(address, now)) is not None:
            return refused
        log.info(
            "phones.refused",
            address=address,
            path=path,
            status=status,
            reason=reason,
            user_agent=user_agent,
        )
        reply = b"not found\n" if status == 404 else b"forbidden\n"
        return status, list(_TEXT), reply

    def _server_error(
        self, template: str, ident: Identification, message: str, now: float
    ) -> Reply:
        suppressed = self.errors.allow((template, message), now)
        if suppressed is not None:
            log.error(
                "phones.render_failed",
                template=template,
                mac=ident.mac or "-",
                file=ident.file,
                error=message,
                suppressed=suppressed,
            )
        return 500, list(_TEXT), b"internal server error\n"

    async def _firmware(self, name: str, address: str, now: float) -> Reply:
        """A file from ``phones.firmware_dir`` (after auth, like phone files); a miss is 404."""
        found = await firmware.lookup(self.settings.firmware_dir, name, address)
        if found is None:
            if (refused := self._miss(address, now)) is not None:
                return refused
            return 404, list(_TEXT), b"not found\n"
        log.debug("phones.firmware_served", address=address, file=name, size=found.size)
        return 200, [], found

    def _authorised(self, header: str) -> bool:
        assert self._credentials is not None
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        user, sep, password = decoded.partition(b":")
        want_user, want_password = self._credentials
        user_ok = hmac.compare_digest(user, want_user)
        password_ok = hmac.compare_digest(password, want_password)
        return bool(sep) and user_ok and password_ok


#: identify() parsed it already; phones repeat theirs, so a small cache makes this free.
_parse_user_agent = functools.lru_cache(maxsize=4096)(parse_user_agent)

_PATH_MAC = re.compile(r"(?<![0-9A-Fa-f])([0-9A-Fa-f]{12})(?![0-9A-Fa-f])")

_TEXT = ((b"content-type", b"text/plain; charset=utf-8"),)


def _header(scope: dict[str, Any], name: bytes) -> str:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value.decode("latin-1")
    return ""


def _forwarded_for(scope: dict[str, Any]) -> str:
    """Every ``X-Forwarded-For`` header, joined in order (proxies may add a second one)."""
    return ",".join(
        value.decode("latin-1")
        for key, value in scope.get("headers", ())
        if key.lower() == b"x-forwarded-for"
    )


def hypercorn_config(settings: PhonesSettings) -> HypercornConfig:
    """The hypercorn config for ``settings``: one bind, TLS when a cert and key are set."""
    config = HypercornConfig()
    config.bind = [settings.listen]
    config.accesslog = None
    # hypercorn's own messages go through stdlib logging, which provd.logs bridges into
    # structlog (warnings and worse), instead of a second format on stderr.
    config.errorlog = logging.getLogger("provd.phones.http")
    if settings.tls:
        config.certfile = settings.tls_cert
        config.keyfile = settings.tls_key
    return config


async def serve_phones(
    app: PhonesApp,
    settings: PhonesSettings,
    *,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
    shutdown_trigger: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Serve ``app`` on ``settings.listen`` until ``shutdown_trigger`` returns (or cancelled).

    Reports readiness with ``task_status.started(addresses)``, the bound URLs such as
    ``["http://127.0.0.1:40123"]``, so callers binding port 0 learn the port.
    """
    config = hypercorn_config(settings)
    async with trio.open_nursery() as nursery:
        addresses = await nursery.start(
            lambda task_status: hypercorn_serve(
                app, config, shutdown_trigger=shutdown_trigger, task_status=task_status, mode="asgi"
            )
        )
        log.info("phones.listening", addresses=addresses, tls=settings.tls)
        task_status.started(addresses)
    log.info("phones.stopped")

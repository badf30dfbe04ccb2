"""The phone-facing HTTP(S) server: :class:`PhonesApp` answers, :mod:`provd.phones.http` serves.

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

The hot path (issue 14): phones repeat themselves, so what a request's target and
User-Agent identify is remembered (a :class:`_Route`), and so is the last response built for
it: status line, headers and body as bytes, valid while the phone's data (the very
``PhoneData`` object ``lookup`` returns: a new revision is a new object), the renderer, its
template generation, the settings and the year are the same. A repeat fetch is a dict
lookup, the phone's lookup, a fetch record and a send.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hmac
import re
import ssl
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import structlog
import trio

from provd import logs
from provd.phones import firmware
from provd.phones.fetch import FetchRecord
from provd.phones.http import (
    GET,
    HEAD,
    HttpServer,
    Limits,
    Request,
    Response,
    open_listeners,
    plain,
    serve,
    url_of,
)
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
from provd.transport.address import parse_listen

__all__ = ["MAX_TRACKED", "MissTracker", "PhonesApp", "serve_phones"]

log = structlog.get_logger()

Lookup = Callable[[str], Awaitable[PhoneData | None]]
RecordFetch = Callable[[FetchRecord], Awaitable[None]]

#: Longest User-Agent kept for fetch records and log lines (phones send < 150 characters).
MAX_USER_AGENT = 256
#: Routes (target and User-Agent pairs) remembered, with their last response.
MAX_ROUTES = 8192


class _Route:
    """What one (target, User-Agent) pair identifies, and the last response built for it."""

    __slots__ = (
        "agent_ok",
        "generation",
        "ident",
        "phone",
        "renderer",
        "response",
        "settings",
        "user_agent",
        "vendor",
        "year",
    )

    def __init__(self, ident: Identification, user_agent: str) -> None:
        self.ident = ident
        self.vendor = str(ident.vendor)
        self.user_agent = user_agent
        self.settings: PhonesSettings | None = None
        self.agent_ok = False
        self.response: Response | None = None
        self.phone: PhoneData | None = None
        self.renderer: Renderer | None = None
        self.generation = -1
        self.year = 0


class PhonesApp:
    """What phones talk to: answers one :class:`~provd.phones.http.Request` at a time.

    Args:
        renderer: renders the files; assign :attr:`renderer` to replace it.
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
        self._routes: dict[tuple[bytes, bytes], _Route] = {}
        self._year = (0, 0.0)  # (year, epoch second it ends)
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

    async def __call__(self, request: Request) -> Response:
        return await self.respond(request)

    def finished(
        self, request: Request, response: Response, times: tuple[float, float, float]
    ) -> None:
        """Nothing to do once sent (the access log around this app records it)."""

    async def respond(self, request: Request) -> Response:
        """The response to ``request`` (never raises for anything a client sends)."""
        method = request.method
        if method != GET and method != HEAD:
            return plain(405, b"method not allowed\n", ((b"allow", b"GET, HEAD"),))
        address = request.peer
        if self._proxies:
            address = client_address(address, request.header(b"x-forwarded-for"), self._proxies)
        if self._credentials is not None:
            auth = request.header(b"authorization")
            if not self._authorised(auth):
                now = self.clock()
                if auth:  # wrong credentials are a miss; the first, bare request is not
                    if (refused := self._miss(address, now)) is not None:
                        return refused
                    log.info("phones.unauthorised", address=address, path=request.path[:256])
                challenge = (b"www-authenticate", b'Basic realm="provd", charset="UTF-8"')
                return plain(401, b"unauthorised\n", (challenge,))
        raw_agent = request.headers.get(b"user-agent", b"")
        key = (request.target, raw_agent)
        route = self._routes.get(key)
        if route is None:
            path = request.path
            if firmware.is_firmware_path(path):
                now = self.clock()
                return await self._firmware(path.removeprefix(firmware.PREFIX), address, now)
            agent = raw_agent.decode("latin-1")
            try:
                ident = identify(path, agent)
            except IdentifyError as error:
                now = self.clock()
                if error.status == 404 and await self._known_phone_noise(path):
                    log.debug("phones.not_served", address=address, path=path[:256])
                    return plain(404, b"not found\n")
                return self._refuse(
                    address,
                    now,
                    error.status,
                    type(error).__name__,
                    path[:256],
                    agent[:MAX_USER_AGENT],
                )
            route = self._remember(key, _Route(ident, agent[:MAX_USER_AGENT]))
        ident = route.ident
        if route.settings is not self._settings:
            route.agent_ok = not ident.per_phone or self._agent_acceptable(ident, raw_agent)
            route.settings = self._settings
        if not route.agent_ok:
            reason = "UserAgentWithoutMac"
            return self._refuse(
                address, self.clock(), 403, reason, request.path[:256], route.user_agent
            )
        phone: PhoneData | None = None
        if ident.per_phone:
            assert ident.mac is not None
            try:
                phone = await self.lookup(ident.mac)
            except Exception as exc:  # a store/decryption bug: answer 500, keep serving
                return self._server_error("-", ident, exc.__class__.__name__, self.clock())
            if phone is None:
                now = self.clock()
                if (refused := self._miss(address, now)) is not None:
                    return refused
                log.info("phones.unknown_mac", address=address, mac=ident.mac, file=ident.file)
                return plain(404, b"not found\n")
        response = route.response
        renderer = self.renderer
        year = self._current_year()
        if (
            response is None
            or route.phone is not phone
            or route.renderer is not renderer
            or route.generation != renderer.generation
            or route.year != year
        ):
            try:
                rendered = renderer.render(phone, ident)
            except RenderError as error:
                return self._server_error(error.template, ident, error.message, self.clock())
            except Exception as exc:  # a bug in rendering: answer 500, keep serving
                message = f"{type(exc).__name__}: {exc}"[:300]
                return self._server_error("-", ident, message, self.clock())
            headers = [
                (b"content-type", rendered.content_type.encode()),
                (b"cache-control", b"no-store"),
            ]
            fields = (str(ident.vendor), ident.mac or "", ident.file)
            response = Response(200, headers, rendered.content, log_fields=fields)
            route.response, route.phone, route.renderer = response, phone, renderer
            route.generation, route.year = renderer.generation, year
        if logs.debug_enabled():
            # Debug only: a boot storm would flood the journal; fetches are in the store.
            log.debug(
                "phones.served",
                address=address,
                vendor=str(ident.vendor),
                file=ident.file,
                mac=ident.mac,
                model=ident.model,
                firmware=ident.firmware,
                method=method.decode(),
            )
        if phone is not None and method == GET:
            # Positional: the fields in FetchRecord's order (one of these per fetch).
            await self.record_fetch(
                FetchRecord(
                    self.wall_clock(),
                    address,
                    route.user_agent,
                    route.vendor,
                    ident.model,
                    ident.firmware,
                    ident.file,
                    phone.mac,
                )
            )
        return response

    def _remember(self, key: tuple[bytes, bytes], route: _Route) -> _Route:
        routes = self._routes
        if len(routes) >= MAX_ROUTES:  # the oldest goes (a scan must not grow this)
            del routes[next(iter(routes))]
        routes[key] = route
        return route

    def _current_year(self) -> int:
        """The UTC year (templates derive time-zone rules for it), checked once a second."""
        year, until = self._year
        now = time.monotonic()
        if now >= until:
            year = datetime.now(UTC).year
            self._year = (year, now + 1.0)
        return year

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

    def _agent_acceptable(self, ident: Identification, user_agent: bytes) -> bool:
        """Whether the User-Agent vouches for a per-phone request (see the module doc)."""
        if str(ident.vendor) in self._settings.anonymous_vendors:
            return True
        ua = _parse_user_agent(user_agent.decode("latin-1"))
        return ua is not None and ua.vendor is ident.vendor and ua.mac == ident.mac

    def _miss(self, address: str, now: float) -> Response | None:
        """Count a miss; the 429 reply if it is throttled, else None (answer as usual)."""
        throttled = self.throttle.miss(address, now)
        if throttled is None:
            return None
        scope, fields = throttled
        if fields:
            log.warning("phones.throttled", scope=scope, **fields)
        retry = str(int(self._settings.miss_window)).encode()
        return plain(429, b"too many requests\n", ((b"retry-after", retry),))

    def _refuse(
        self, address: str, now: float, status: int, reason: str, path: str, user_agent: str
    ) -> Response:
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
        return plain(status, b"not found\n" if status == 404 else b"forbidden\n")

    def _server_error(
        self, template: str, ident: Identification, message: str, now: float
    ) -> Response:
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
        return plain(500, b"internal server error\n")

    async def _firmware(self, name: str, address: str, now: float) -> Response:
        """A file from ``phones.firmware_dir`` (after auth, like phone files); a miss is 404."""
        found = await firmware.lookup(self.settings.firmware_dir, name, address)
        if found is None:
            if (refused := self._miss(address, now)) is not None:
                return refused
            return plain(404, b"not found\n")
        log.debug("phones.firmware_served", address=address, file=name, size=found.size)
        return Response(200, [(b"content-type", found.content_type.encode())], found)

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


def server_context(settings: PhonesSettings) -> ssl.SSLContext | None:
    """The TLS context for ``settings`` (certificate and key), None for plain HTTP."""
    if not settings.tls:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(settings.tls_cert, settings.tls_key)
    return context


async def serve_phones(
    app: PhonesApp,
    settings: PhonesSettings,
    *,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
    shutdown_trigger: Callable[[], Awaitable[None]] | None = None,
    limits: Limits | None = None,
) -> None:
    """Serve ``app`` on ``settings.listen`` until ``shutdown_trigger`` returns (or cancelled).

    ``app`` is anything with ``respond`` and ``finished`` (the daemon passes the access
    log around its :class:`PhonesApp`). Reports readiness with
    ``task_status.started(addresses)``, the bound URLs such as
    ``["http://127.0.0.1:40123"]``, so callers binding port 0 learn the port.
    """
    host, port = parse_listen(settings.listen)
    context = server_context(settings)
    listeners = await open_listeners(host, port)
    addresses = [url_of(sock, context is not None) for sock in listeners]
    server = HttpServer(app, limits, context)
    log.info("phones.listening", addresses=addresses, tls=settings.tls)
    task_status.started(addresses)
    await serve(server, listeners, shutdown_trigger=shutdown_trigger)
    log.info("phones.stopped")

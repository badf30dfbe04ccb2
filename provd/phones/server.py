"""The phone-facing HTTP(S) server: an ASGI app served by hypercorn's trio worker.

Per request: method check, miss throttling, optional HTTP Basic auth, :func:`identify`,
then either a model-common file (anyone authorised) or a per-phone file (only for a MAC
the daemon knows, via ``lookup``). Each per-phone GET is reported through ``record_fetch``.

Miss throttling: a client address that collects ``miss_limit`` misses (404, 403, wrong
credentials) within ``miss_window`` seconds gets 429 without a lookup until its misses age
out of the window, so a MAC scanner gets at most ``miss_limit`` guesses per window. 429s
themselves don't count, so a throttled client behind a shared NAT recovers on its own. At
most ``MAX_TRACKED`` addresses are tracked (least recently missing evicted first).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve

from provd.phones import firmware
from provd.phones.fetch import FetchRecord
from provd.phones.identify import IdentifyError, identify
from provd.phones.model import PhoneData
from provd.phones.render import Renderer
from provd.phones.settings import PhonesSettings
from provd.transport.asgi import lifespan

log = structlog.get_logger()

Lookup = Callable[[str], Awaitable[PhoneData | None]]
RecordFetch = Callable[[FetchRecord], Awaitable[None]]

MAX_TRACKED = 10_000


class MissTracker:
    """Sliding-window miss counts per client address, bounded in memory.

    Args:
        limit: misses allowed in ``window``; from then on :meth:`throttled` is True.
        window: window length in seconds.
        max_tracked: most addresses remembered.
    """

    def __init__(self, limit: int, window: float, max_tracked: int = MAX_TRACKED) -> None:
        self.limit = limit
        self.window = window
        self.max_tracked = max_tracked
        self._misses: OrderedDict[str, deque[float]] = OrderedDict()
        self._logged: dict[str, float] = {}

    def _prune(self, address: str, now: float) -> deque[float] | None:
        misses = self._misses.get(address)
        if misses is None:
            return None
        while misses and misses[0] <= now - self.window:
            misses.popleft()
        if not misses:
            del self._misses[address]
            self._logged.pop(address, None)
            return None
        return misses

    def throttled(self, address: str, now: float) -> bool:
        """Whether ``address`` has used up its misses for the current window."""
        misses = self._prune(address, now)
        return misses is not None and len(misses) >= self.limit

    def count(self, address: str) -> int:
        """Misses currently remembered for ``address`` (as of the last prune)."""
        misses = self._misses.get(address)
        return len(misses) if misses else 0

    def miss(self, address: str, now: float) -> None:
        """Record a miss by ``address`` at ``now``."""
        misses = self._prune(address, now)
        if misses is None:
            misses = self._misses[address] = deque(maxlen=self.limit)
        misses.append(now)
        self._misses.move_to_end(address)
        while len(self._misses) > self.max_tracked:
            evicted, _ = self._misses.popitem(last=False)
            self._logged.pop(evicted, None)

    def should_log(self, address: str, now: float) -> bool:
        """True once per window per throttled address: log throttling without flooding."""
        last = self._logged.get(address)
        if last is not None and now - last < self.window:
            return False
        self._logged[address] = now
        return True

    def __len__(self) -> int:
        return len(self._misses)


class PhonesApp:
    """The ASGI application phones talk to.

    Args:
        renderer: renders the files.
        lookup: ``async (mac) -> PhoneData | None``: the provisioned phone with that MAC.
        record_fetch: ``async (FetchRecord) -> None``: called after each per-phone GET.
        settings: the ``[phones]`` settings (auth and throttling are read from it).
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
        self.settings = settings
        self.clock = clock
        self.wall_clock = wall_clock
        self.misses = MissTracker(settings.miss_limit, settings.miss_window)
        self._credentials = (
            (settings.username.encode(), settings.password.encode()) if settings.username else None
        )

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

    async def _handle(
        self, scope: dict[str, Any]
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes | firmware.FirmwareFile]:
        method = scope["method"]
        if method not in ("GET", "HEAD"):
            return 405, [(b"allow", b"GET, HEAD"), *_TEXT], b"method not allowed\n"
        client = scope.get("client")
        address = client[0] if client else "unknown"
        path = scope.get("path", "")
        user_agent = _header(scope, b"user-agent")
        now = self.clock()
        if self.misses.throttled(address, now):
            if self.misses.should_log(address, now):
                log.warning("phones.throttled", address=address, misses=self.misses.count(address))
            return (
                429,
                [(b"retry-after", str(int(self.settings.miss_window)).encode()), *_TEXT],
                (b"too many requests\n"),
            )
        if self._credentials is not None:
            auth = _header(scope, b"authorization")
            if not self._authorised(auth):
                if auth:  # wrong credentials are a miss; the first, bare request is not
                    self.misses.miss(address, now)
                    log.info("phones.unauthorised", address=address, path=path)
                challenge = (b"www-authenticate", b'Basic realm="provd", charset="UTF-8"')
                return 401, [challenge, *_TEXT], b"unauthorised\n"
        if firmware.is_firmware_path(path):
            return await self._firmware(path.removeprefix(firmware.PREFIX), address, now)
        try:
            ident = identify(path, user_agent)
        except IdentifyError as error:
            self.misses.miss(address, now)
            log.info(
                "phones.refused",
                address=address,
                path=path,
                status=error.status,
                reason=type(error).__name__,
                user_agent=user_agent,
            )
            reply = b"not found\n" if error.status == 404 else b"forbidden\n"
            return error.status, list(_TEXT), reply
        phone: PhoneData | None = None
        if ident.per_phone:
            assert ident.mac is not None
            phone = await self.lookup(ident.mac)
            if phone is None:
                self.misses.miss(address, now)
                log.info("phones.unknown_mac", address=address, mac=ident.mac, file=ident.file)
                return 404, list(_TEXT), b"not found\n"
        rendered = self.renderer.render(phone, ident)
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

    async def _firmware(
        self, name: str, address: str, now: float
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes | firmware.FirmwareFile]:
        """A file from ``phones.firmware_dir`` (after auth, like phone files); a miss is 404."""
        found = await firmware.lookup(self.settings.firmware_dir, name, address)
        if found is None:
            self.misses.miss(address, now)
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


_TEXT = ((b"content-type", b"text/plain; charset=utf-8"),)


def _header(scope: dict[str, Any], name: bytes) -> str:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value.decode("latin-1")
    return ""


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

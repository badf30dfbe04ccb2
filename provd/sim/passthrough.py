"""The passthrough HTTP endpoint: ``<path>passthrough/<MAC>/<key>/<rest>`` as a bare ASGI app.

Why bare ASGI: the endpoint is one route with four outcomes (403 bad key, 404 unknown
device, 502/504 tunnel trouble, or the device's own answer), which needs no framework.
``key`` must be a live ``GetLoginInfo`` key (spec section 5: valid while its session lives).
The device sees ``/<rest>`` with the query string, as if asked directly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import structlog

from ..protocol import ProtocolError, normalize_mac
from ..transport.asgi import lifespan

if TYPE_CHECKING:
    from .devices import DevicesApp

log = structlog.get_logger("provd.sim.passthrough")

#: Cap on a relayed request body.
MAX_REQUEST_BODY = 1 << 20


class PassthroughError(Exception):
    """Carries the HTTP status the passthrough answers with."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


async def _respond(send: Any, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _plain(send: Any, status: int, text: str) -> None:
    await _respond(send, status, [(b"content-type", b"text/plain; charset=utf-8")], text.encode())


def passthrough_app(devices: DevicesApp, base_path: str):
    prefix = (base_path + "passthrough/").encode()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        if not raw_path.startswith(prefix):
            await _plain(send, 404, "not found")
            return
        parts = raw_path[len(prefix) :].decode("latin-1").split("/", 2)
        if len(parts) < 2:
            await _plain(send, 404, "not found")
            return
        try:
            mac = normalize_mac(parts[0])
        except ProtocolError:
            await _plain(send, 404, "not a MAC address")
            return
        if not devices.domain.is_live_key(parts[1]):
            log.info("passthrough.forbidden", mac=mac)
            await _plain(send, 403, "session key not valid")
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > MAX_REQUEST_BODY:
                await _plain(send, 413, "request too large")
                return
            if not message.get("more_body"):
                break
        target = "/" + (parts[2] if len(parts) > 2 else "")
        if scope.get("query_string"):
            target += "?" + scope["query_string"].decode("latin-1")
        try:
            response = await devices.relay_http(
                mac, scope["method"], target, list(scope.get("headers", [])), bytes(body)
            )
        except PassthroughError as exc:
            log.info("passthrough.failed", mac=mac, status=exc.status, reason=exc.reason)
            await _plain(send, exc.status, exc.reason)
            return
        log.info("passthrough.relayed", mac=mac, status=response.status)
        await _respond(send, response.status, response.headers, response.body)

    return app

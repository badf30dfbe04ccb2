"""The operator HTTP listener: ``/metrics`` (Prometheus), ``/healthz`` and ``/readyz``.

Served on ``[metrics] listen`` (empty: off), apart from the phones listener, so it can stay on
loopback or a management network while phones reach theirs.

- ``/healthz``: 200 while the event loop answers (liveness; a hung daemon gets no answer).
- ``/readyz``: 200 once the daemon is ready (store loaded, listeners bound) and not
  stopping, else 503; the body is JSON naming each check, including whether a PBX session
  and the Devices app are up (reported, not required: phones are served from the store
  while either is away).
- ``/metrics``: the Prometheus text exposition format.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .metrics import Metrics
from .transport.asgi import lifespan

log = structlog.get_logger("provd.health")


class HealthApp:
    """ASGI app. ``checks()`` returns the readiness facts: ``{"ready": bool, ...}``."""

    def __init__(self, metrics: Metrics, checks: Callable[[], dict[str, Any]]) -> None:
        self.metrics = metrics
        self.checks = checks

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        status, content_type, body = self._handle(scope["method"], scope.get("path", ""))
        headers = [
            (b"content-type", content_type),
            (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-store"),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send(
            {"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body}
        )

    def _handle(self, method: str, path: str) -> tuple[int, bytes, bytes]:
        text = b"text/plain; charset=utf-8"
        if method not in ("GET", "HEAD"):
            return 405, text, b"method not allowed\n"
        if path == "/healthz":
            return 200, text, b"ok\n"
        if path == "/readyz":
            checks = self.checks()
            body = json.dumps(checks).encode() + b"\n"
            return (200 if checks.get("ready") else 503), b"application/json", body
        if path == "/metrics":
            return 200, CONTENT_TYPE_LATEST.encode(), generate_latest(self.metrics.registry)
        return 404, text, b"not found\n"


async def serve_health(
    app: HealthApp,
    listen: str,
    *,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
    shutdown_trigger: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Serve ``app`` on ``listen`` ("host:port"); reports the bound URLs when started."""
    config = HypercornConfig()
    config.bind = [listen]
    config.accesslog = None
    config.errorlog = logging.getLogger("provd.health.http")
    async with trio.open_nursery() as nursery:
        addresses = await nursery.start(
            lambda task_status: hypercorn_serve(
                app, config, shutdown_trigger=shutdown_trigger, task_status=task_status, mode="asgi"
            )
        )
        log.info("metrics.listening", addresses=",".join(addresses))
        task_status.started(addresses)

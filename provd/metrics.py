"""Prometheus metrics and the phones access log.

One :class:`Metrics` per daemon, with its own ``prometheus_client`` registry (several daemons
in one test process do not collide). Counters and histograms are fed where things happen
(the :class:`AccessLog` around the phones HTTP app); gauges of the daemon's state
(phones by state, online, handshakes, sessions, reloads) are read at scrape time from a
:class:`DaemonView`, so they are never stale and cost nothing between scrapes.

Exposition: ``/metrics`` on the ``[metrics] listen`` address (provd.health), in the
Prometheus text format ``prometheus_client.generate_latest`` writes.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol

import structlog
from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from .phones.http import Request, Response
from .phones.identify import IdentifyError, identify

log = structlog.get_logger("provd.phones")

#: Seconds; phones fetch small files from memory, so the interesting range is sub-second.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
#: Phone lifecycle states (provd.store.records), always exported (0 when none).
STATES = ("pending", "provisioned", "failed")


class DaemonView(Protocol):
    """What the collector reads from a running daemon at scrape time."""

    def phone_states(self) -> Iterable[tuple[str, bool]]: ...  # (state, online) per phone
    def handshakes(self) -> tuple[int, int]: ...  # (in flight, queued)
    def pbx_sessions(self) -> int: ...
    def devices_snapshot(self) -> dict[str, Any]: ...  # OutageTracker.snapshot()
    def reload_counts(self) -> tuple[int, int]: ...  # (ok, refused)


class _DaemonCollector(Collector):
    def __init__(self, view: DaemonView) -> None:
        self.view = view

    def collect(self) -> Iterable[Metric]:
        view = self.view
        states = dict.fromkeys(STATES, 0)
        online = 0
        for state, is_online in view.phone_states():
            states[state] = states.get(state, 0) + 1
            online += bool(is_online)
        phones = GaugeMetricFamily("provd_phones", "Phones by lifecycle state", labels=["state"])
        for state, count in sorted(states.items()):
            phones.add_metric([state], count)
        yield phones
        yield GaugeMetricFamily(
            "provd_phones_online", "Phones holding a Sysclient connection to Devices", online
        )
        in_flight, queued = view.handshakes()
        yield GaugeMetricFamily(
            "provd_handshakes_in_flight", "Sysclient handshakes in progress", in_flight
        )
        yield GaugeMetricFamily(
            "provd_handshakes_queued", "Sysclient handshakes waiting for a slot", queued
        )
        sessions = view.pbx_sessions()
        yield GaugeMetricFamily("provd_pbx_sessions", "Logged-in PBX App object sessions", sessions)
        yield GaugeMetricFamily(
            "provd_pbx_session_up", "1 while a PBX App object session is logged in", sessions > 0
        )
        devices = view.devices_snapshot()
        yield GaugeMetricFamily(
            "provd_devices_session_up",
            "1 while the Devices app is reachable (some phone connected or none failing)",
            devices["up"] is not False,
        )
        yield CounterMetricFamily(
            "provd_reconnects",
            "Sysclient connections that ended (each is followed by a reconnect)",
            devices["reconnects"],
        )
        yield CounterMetricFamily(
            "provd_devices_outages", "Times the Devices app became unreachable", devices["outages"]
        )
        ok, refused = view.reload_counts()
        reloads = CounterMetricFamily(
            "provd_reloads", "Config reloads by result", labels=["result"]
        )
        reloads.add_metric(["ok"], ok)
        reloads.add_metric(["refused"], refused)
        yield reloads


class _VendorStats:
    """One vendor's fetch figures as plain numbers (see :class:`FetchStats`)."""

    __slots__ = ("fetch", "fetch_sum", "render", "render_sum", "statuses")

    def __init__(self) -> None:
        self.statuses: dict[int, int] = {}
        #: Per latency bucket (the last one: above every bound), not cumulative.
        self.fetch = [0] * (len(LATENCY_BUCKETS) + 1)
        self.render = [0] * (len(LATENCY_BUCKETS) + 1)
        self.fetch_sum = 0.0
        self.render_sum = 0.0


class FetchStats(Collector):
    """The fetch counters and latency histograms, counted as plain ints per vendor and
    turned into Prometheus families only at scrape time.

    In a boot storm this is on every request: ``prometheus_client``'s ``Counter.inc`` and
    ``Histogram.observe`` take a lock each and walk the buckets (issue 14: 5 % of the
    phone server's CPU); here a fetch is a dict lookup, a bisect and three additions. The
    exposition is the same: ``provd_fetches_total{vendor,status}``,
    ``provd_fetch_seconds`` and ``provd_render_seconds`` histograms by vendor.
    """

    def __init__(self) -> None:
        self.vendors: dict[str, _VendorStats] = {}

    def add(self, vendor: str, status: int, fetch: float, render: float) -> None:
        """Count one fetch: ``fetch`` seconds from request to sent, ``render`` to response."""
        stats = self.vendors.get(vendor)
        if stats is None:
            stats = self.vendors[vendor] = _VendorStats()
        statuses = stats.statuses
        statuses[status] = statuses.get(status, 0) + 1
        stats.fetch[bisect_left(LATENCY_BUCKETS, fetch)] += 1
        stats.fetch_sum += fetch
        stats.render[bisect_left(LATENCY_BUCKETS, render)] += 1
        stats.render_sum += render

    def collect(self) -> Iterable[Metric]:
        vendors = sorted(self.vendors.items())
        fetches = CounterMetricFamily(
            "provd_fetches", "Phone file requests by vendor and HTTP status", labels=_FETCH_LABELS
        )
        for vendor, stats in vendors:
            for status, count in sorted(stats.statuses.items()):
                fetches.add_metric([vendor, str(status)], count)
        yield fetches
        fetch_seconds = HistogramMetricFamily(
            "provd_fetch_seconds",
            "Phone file requests, from request to the last byte handed to the server",
            labels=["vendor"],
        )
        render_seconds = HistogramMetricFamily(
            "provd_render_seconds",
            "Producing a phone file: identify, look up and render (to the response start)",
            labels=["vendor"],
        )
        for vendor, stats in vendors:
            fetch_seconds.add_metric([vendor], _buckets(stats.fetch), stats.fetch_sum)
            render_seconds.add_metric([vendor], _buckets(stats.render), stats.render_sum)
        yield fetch_seconds
        yield render_seconds


_FETCH_LABELS = ["vendor", "status"]
_BOUNDS = [floatToGoString(b) for b in LATENCY_BUCKETS] + ["+Inf"]


def _buckets(counts: list[int]) -> list[tuple[str, float]]:
    """Cumulative ``(le, count)`` pairs, as the text format wants them."""
    total = 0
    pairs = []
    for bound, count in zip(_BOUNDS, list(counts), strict=True):
        total += count
        pairs.append((bound, total))
    return pairs


class Metrics:
    """The daemon's registry: fetch counters and latency histograms, plus the view."""

    def __init__(self, view: DaemonView | None = None) -> None:
        self.registry = CollectorRegistry()
        self.fetches = FetchStats()
        self.registry.register(self.fetches)
        if view is not None:
            self.registry.register(_DaemonCollector(view))


class RateLimit:
    """At most ``rate`` events per second on average, bursts up to ``rate`` (token bucket);
    what is suppressed is counted and reported with the next line that passes."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.clock = clock
        self.tokens = rate
        self.stamp = clock()
        self.suppressed = 0

    def allow(self) -> bool:
        if self.rate <= 0:
            return False
        now = self.clock()
        self.tokens = min(self.rate, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        self.suppressed += 1
        return False


class AccessLog:
    """Around the phones app (a :class:`provd.phones.http.Handler`): one ``phones.fetch`` info
    line per request (MAC, vendor, file, status, bytes, ms; rate-limited) and the fetch
    metrics, recorded once the server has sent the response.

    The wrapped app is reached through ``inner()`` on every request, so a daemon reload that
    replaces the app's renderer or settings is seen at once.
    """

    def __init__(
        self,
        inner: Callable[[], Any],
        metrics: Metrics,
        rate: Callable[[], float],
    ) -> None:
        self.inner = inner
        self.metrics = metrics
        self.limit = RateLimit(rate())
        self._rate = rate
        self._add = metrics.fetches.add

    def respond(self, request: Request) -> Awaitable[Response]:
        # The inner app's coroutine itself, not one wrapped around it (a frame less each).
        return self.inner().respond(request)

    def finished(
        self, request: Request, response: Response, times: tuple[float, float, float]
    ) -> None:
        received, responded, sent = times
        status = response.status
        fields = response.log_fields
        if fields is not None:
            vendor, mac, file = fields
        else:
            path = request.path
            try:
                ident = identify(path, request.header(b"user-agent"))
                vendor, mac, file = str(ident.vendor), ident.mac or "", ident.file
            except IdentifyError:
                vendor, mac, file = "unknown", "", path[-64:]
        self._add(vendor, status, sent - received, responded - received)
        limit = self.limit
        rate = self._rate()
        if rate != limit.rate:
            limit = self.limit = RateLimit(rate)
        if not limit.allow():
            return
        suppressed, limit.suppressed = limit.suppressed, 0
        log.info(
            "phones.fetch",
            mac=mac or "-",
            vendor=vendor,
            file=file,
            status=status,
            bytes=0 if request.method == b"HEAD" else response.length,
            ms=round((sent - received) * 1000, 1),
            address=request.peer,
            **({"suppressed": suppressed} if suppressed else {}),
        )

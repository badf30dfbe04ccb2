"""Issue 14, the boot storm's hot path: what a repeat fetch costs the phone server.

Fetch metrics counted as plain ints but exposed exactly as ``prometheus_client`` would;
no failed read before each keep-alive request; a phone fetching again and again does not
rewrite its lifecycle each time."""

from __future__ import annotations

import socket

import trio
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from provd.actors.lifecycle import FETCHED_AT_RESOLUTION, LifecycleBook
from provd.config import RegistrationSettings
from provd.metrics import LATENCY_BUCKETS, Metrics
from provd.phones import http
from provd.phones.http import HttpServer, Limits, Request, Response
from provd.store.records import PhoneRecord

MAC = "805ec0aa0001"


def _samples(text: str) -> set[str]:
    """The sample lines, ``_created`` timestamps left out (plain counters have none)."""
    return {
        line
        for line in text.splitlines()
        if line and not line.startswith("#") and "_created" not in line
    }


def test_fetch_stats_exposed_as_prometheus_client_would():
    observations = [
        ("yealink", 200, 0.0004, 0.0001),
        ("yealink", 200, 0.001, 0.001),  # exactly on a bound: counted in that bucket
        ("yealink", 404, 0.03, 0.0025),
        ("snom", 200, 7.5, 6.0),  # above every bound: +Inf only
        ("yealink", 200, 0.05, 0.049),
    ]
    metrics = Metrics()
    registry = CollectorRegistry()
    fetches = Counter("provd_fetches", "x", ["vendor", "status"], registry=registry)
    fetch_s = Histogram(
        "provd_fetch_seconds", "x", ["vendor"], buckets=LATENCY_BUCKETS, registry=registry
    )
    render_s = Histogram(
        "provd_render_seconds", "x", ["vendor"], buckets=LATENCY_BUCKETS, registry=registry
    )
    for vendor, status, fetch, render in observations:
        metrics.fetches.add(vendor, status, fetch, render)
        fetches.labels(vendor=vendor, status=str(status)).inc()
        fetch_s.labels(vendor=vendor).observe(fetch)
        render_s.labels(vendor=vendor).observe(render)
    ours = _samples(generate_latest(metrics.registry).decode())
    theirs = _samples(generate_latest(registry).decode())
    assert ours == theirs
    assert 'provd_fetches_total{status="200",vendor="yealink"} 3.0' in ours
    assert 'provd_fetch_seconds_bucket{le="0.001",vendor="yealink"} 2.0' in ours


class _CountingSocket(socket.socket):
    """Counts reads that found nothing to read."""

    empty_reads = 0

    def recv(self, *args):
        try:
            return super().recv(*args)
        except BlockingIOError:
            _CountingSocket.empty_reads += 1
            raise


class _Echo:
    async def respond(self, request: Request) -> Response:
        return Response(200, [(b"content-type", b"text/plain")], request.target)

    def finished(self, request, response, times) -> None:
        pass


async def test_keepalive_requests_cost_no_failed_read():
    """After answering, the server waits for the socket instead of trying a read that
    fails (a client waiting for its answer has sent nothing yet): one system call and an
    exception less per request in a boot storm."""
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    counted = _CountingSocket(fileno=ours.detach())
    counted.setblocking(False)
    _CountingSocket.empty_reads = 0
    server = HttpServer(_Echo(), Limits())
    stream = trio.SocketStream(trio.socket.from_stdlib_socket(theirs))
    with trio.fail_after(10):
        async with trio.open_nursery() as inner:  # ends when the server's side has closed
            inner.start_soon(server.serve_connection, counted, "192.0.2.1")
            for i in range(5):
                target = f"/file{i}".encode()
                await stream.send_all(b"GET " + target + b" HTTP/1.1\r\nHost: provd\r\n\r\n")
                got = b""
                while not got.endswith(target):
                    got += await stream.receive_some(65536)
                assert got.startswith(b"HTTP/1.1 200 ")
            await stream.aclose()
    # The very first read may find nothing (the client had not written yet); none after.
    assert _CountingSocket.empty_reads <= 1


def _book(clock) -> LifecycleBook:
    settings = RegistrationSettings(
        check_interval=300.0, retry_interval=10.0, warn_after=60.0, max_per_second=10.0
    )
    return LifecycleBook(lambda: settings, clock=clock)


def _record(state: str) -> PhoneRecord:
    return PhoneRecord(mac=MAC, code="c", usename="alice", cn="Alice A", hwid="", state=state)


def test_repeat_fetches_do_not_rewrite_the_lifecycle():
    now = [1000.0]
    book = _book(lambda: now[0])
    book.on_record(_record("provisioned"))
    book.on_fetch(MAC, 1000.0)
    first = book.phones[MAC]
    assert (first.state, first.fetched_at) == ("fetched", 1000.0)
    book.take_dirty()
    book.on_fetch(MAC, 1000.0 + FETCHED_AT_RESOLUTION / 2)  # a storm's repeat
    assert book.phones[MAC] is first and not book.dirty
    book.on_fetch(MAC, 1000.0 + FETCHED_AT_RESOLUTION)  # later: kept (and written)
    assert book.phones[MAC].fetched_at == 1000.0 + FETCHED_AT_RESOLUTION
    assert MAC in book.dirty


def test_fetch_after_reprovisioning_is_stamped_even_within_the_resolution():
    """The resolution never hides a transition: provisioned → fetched takes the time."""
    now = [1000.0]
    book = _book(lambda: now[0])
    book.on_record(_record("provisioned"))
    book.on_fetch(MAC, 1000.0)
    now[0] = 1002.0
    book.on_record(_record("pending"))  # provisioned anew
    book.on_record(_record("provisioned"))
    book.on_fetch(MAC, 1003.0)
    life = book.phones[MAC]
    assert (life.state, life.fetched_at) == ("fetched", 1003.0)


def test_kept_answer_takes_each_new_date(monkeypatch):
    """A response kept for repeats is sent as pre-joined bytes, its Date line renewed when
    the second changes; HEAD and Connection: close variants built from it stay right."""
    now = [1_800_000_000.0]
    monkeypatch.setattr(http.time, "time", lambda: now[0])
    response = Response(200, [(b"content-type", b"text/plain")], b"hello")
    first = response.encode()
    assert response.encode() is first  # same second: the same bytes, nothing joined
    now[0] += 86400 + 1
    second = response.encode()
    assert second != first and second.endswith(b"\r\n\r\nhello")
    assert second.count(b"date: ") == 1 and http.date_line() in second
    assert first.replace(first.split(b"\r\n")[1], second.split(b"\r\n")[1]) == second
    head = response.encode(head_only=True)
    assert head == second[: -len(b"hello")]
    closing = response.encode(close=True)
    assert closing.startswith(b"HTTP/1.1 200 OK\r\n" + http.date_line() + b"connection: close\r\n")
    assert closing.endswith(b"content-length: 5\r\n\r\nhello")
    closing_head = response.encode(head_only=True, close=True)
    assert closing_head == closing[: -len(b"hello")]


class _Big:
    async def respond(self, request: Request) -> Response:
        return Response(200, [(b"content-type", b"application/octet-stream")], b"x" * (8 << 20))

    def finished(self, request, response, times) -> None:
        pass


async def test_client_that_stops_reading_is_dropped_after_send_timeout(autojump_clock):
    """A partial send (the answer outgrew the socket buffer) still waits under
    ``send_timeout``: a client that never reads is dropped, nothing waits for ever."""
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    server = HttpServer(_Big(), Limits(header_timeout=5.0, keepalive_timeout=5.0, send_timeout=3.0))
    with trio.fail_after(30):
        async with trio.open_nursery() as inner:
            inner.start_soon(server.reap)
            theirs.sendall(b"GET /big HTTP/1.1\r\nHost: provd\r\n\r\n")
            start = trio.current_time()
            await server.serve_connection(ours, "192.0.2.1")
            assert 3.0 <= trio.current_time() - start <= 5.0
            inner.cancel_scope.cancel()
    theirs.close()

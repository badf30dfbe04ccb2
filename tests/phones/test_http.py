"""The phones' lean HTTP/1.1 server (provd.phones.http, issue 14): keep-alive, pipelining,
limits and timeouts on the wire; and the response cache of PhonesApp staying correct."""

from __future__ import annotations

import io
import socket

import attrs
import pytest
import structlog
import trio
from structlog.testing import capture_logs

from provd import logs
from provd.phones import CheckedRenderer, PhonesSettings
from provd.phones.http import MAX_HEAD, HttpServer, Limits, Request, Response

from .test_server import YEALINK_UA, Harness

LIMITS = Limits(header_timeout=2.0, keepalive_timeout=5.0, send_timeout=2.0)


class Echo:
    """Answers with the target; remembers what was finished."""

    def __init__(self) -> None:
        self.finished_requests: list[bytes] = []

    async def respond(self, request: Request) -> Response:
        if request.target == b"/boom":
            raise RuntimeError("handler bug")
        return Response(200, [(b"content-type", b"text/plain")], b"echo " + request.target)

    def finished(self, request, response, times) -> None:
        assert times[0] <= times[1] <= times[2]
        self.finished_requests.append(request.target)


class Client:
    """The client end of a socket pair whose other end a server connection serves."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buffer = b""

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def response(self, *, head: bool = False) -> tuple[int, dict[str, str], bytes]:
        while b"\r\n\r\n" not in self.buffer:
            data = await self.stream.receive_some(65536)
            assert data, f"closed before a response: {self.buffer!r}"
            self.buffer += data
        raw, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        status_line, *lines = raw.decode("latin-1").split("\r\n")
        assert status_line.startswith("HTTP/1.1 ")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.lower()] = value.strip()
        length = 0 if head else int(headers["content-length"])
        while len(self.buffer) < length:
            data = await self.stream.receive_some(65536)
            assert data
            self.buffer += data
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return int(status_line.split()[1]), headers, body

    async def closed(self) -> bool:
        """Whether the server closed the connection (after any buffered bytes)."""
        try:
            return await self.stream.receive_some(65536) == b""
        except trio.BrokenResourceError:
            return True


@pytest.fixture
async def connect(nursery):
    """``await connect(handler)``: a Client served by a fresh server connection."""

    async def open_one(handler, limits: Limits = LIMITS, peer: str = "192.0.2.1") -> Client:
        server = HttpServer(handler, limits)
        nursery.start_soon(server.reap)
        ours, theirs = socket.socketpair()
        ours.setblocking(False)
        nursery.start_soon(server.serve_connection, ours, peer)
        return Client(trio.SocketStream(trio.socket.from_stdlib_socket(theirs)))

    return open_one


def get(target: str, *extra: str, method: str = "GET") -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: provd", *extra, "", ""]
    return "\r\n".join(lines).encode()


class TestWire:
    async def test_pipelined_requests_answered_in_order_on_one_connection(self, connect):
        """Three requests in one write: three answers in order (HEAD without body), the
        connection stays open for a fourth; every answer has a Date."""
        echo = Echo()
        client = await connect(echo)
        with trio.fail_after(5):
            await client.send(get("/a") + get("/b", method="HEAD") + get("/c"))
            first = await client.response()
            second = await client.response(head=True)
            third = await client.response()
            await client.send(get("/d"))
            fourth = await client.response()
        assert [r[2] for r in (first, third, fourth)] == [b"echo /a", b"echo /c", b"echo /d"]
        assert second[0] == 200 and second[1]["content-length"] == str(len(b"echo /b"))
        assert client.buffer == b""  # no body after the HEAD answer
        assert all(r[1]["date"].endswith(" GMT") for r in (first, second, third, fourth))
        assert "connection" not in fourth[1]
        assert echo.finished_requests == [b"/a", b"/b", b"/c", b"/d"]

    async def test_request_with_body_answered_then_closed(self, connect):
        """A request announcing a body is answered; the connection is closed, the body
        never read as a request."""
        client = await connect(Echo())
        with trio.fail_after(5):
            await client.send(get("/x", "Content-Length: 20") + b"GET /smuggled HTTP/1.1\r\n")
            status, headers, body = await client.response()
            assert await client.closed()
        assert (status, body, headers["connection"]) == (200, b"echo /x", "close")

    async def test_http10_closes(self, connect):
        """HTTP/1.0 without keep-alive: one answer, Connection: close, closed."""
        client = await connect(Echo())
        with trio.fail_after(5):
            await client.send(b"GET /old HTTP/1.0\r\n\r\n")
            status, headers, _ = await client.response()
            assert await client.closed()
        assert status == 200 and headers["connection"] == "close"

    @pytest.mark.parametrize(
        "junk",
        [
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 GARBAGE \xff\xfe\r\n\r\n",
            b"GET /\xff HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n",
        ],
    )
    async def test_junk_gets_400_and_close(self, connect, junk):
        """Anything that is not HTTP/1.1: 400 and the connection is closed."""
        client = await connect(Echo())
        with trio.fail_after(5):
            await client.send(junk)
            status, headers, _ = await client.response()
            assert await client.closed()
        assert status == 400 and headers["connection"] == "close"

    async def test_good_request_before_junk_is_answered(self, connect):
        """A request followed by junk in the same packet: 200, then 400, then closed."""
        client = await connect(Echo())
        with trio.fail_after(5):
            await client.send(get("/ok") + b"\x00\x01junk\r\n\r\n")
            assert (await client.response())[2] == b"echo /ok"
            assert (await client.response())[0] == 400
            assert await client.closed()

    @pytest.mark.parametrize(
        "extra",
        [
            ["X-Big: " + "a" * MAX_HEAD],
            [f"X-{i}: v" for i in range(200)],
        ],
    )
    async def test_head_too_large(self, connect, extra):
        """A head over MAX_HEAD bytes or with too many fields: 431, closed."""
        client = await connect(Echo())
        with trio.fail_after(5):
            await client.send(get("/x", *extra))
            status, _, _ = await client.response()
            assert await client.closed()
        assert status == 431

    async def test_handler_failure_answers_500_once_logged(self, connect):
        """An exception in the handler: 500 with close, one error line naming it."""
        client = await connect(Echo())
        with capture_logs() as logs, trio.fail_after(5):
            await client.send(get("/boom"))
            status, headers, _ = await client.response()
            assert await client.closed()
        assert status == 500 and headers["connection"] == "close"
        [line] = [e for e in logs if e["event"] == "phones.handler_failed"]
        assert line["log_level"] == "error" and "handler bug" in line["error"]

    async def test_access_log_failure_keeps_serving(self, connect):
        """An exception in ``finished`` (the access log) is logged; the connection goes on."""

        class Broken(Echo):
            def finished(self, request, response, times) -> None:
                raise ValueError("log bug")

        client = await connect(Broken())
        with capture_logs() as logs, trio.fail_after(5):
            await client.send(get("/a"))
            assert (await client.response())[2] == b"echo /a"
            await client.send(get("/b"))
            assert (await client.response())[2] == b"echo /b"
        assert [e["error"] for e in logs if e["event"] == "phones.handler_failed"] == [
            "ValueError: log bug"
        ]


class TestTimeouts:
    async def test_slowloris_closed_after_header_timeout(self, connect, autojump_clock):
        """A head trickling in a line at a time is cut off header_timeout after it began."""
        client = await connect(Echo())
        start = trio.current_time()
        await client.send(b"GET /slow HTTP/1.1\r\n")
        with trio.fail_after(30):
            try:
                for i in range(100):
                    await trio.sleep(0.5)
                    await client.send(b"X-Slow-%d: x\r\n" % i)
            except trio.BrokenResourceError:
                pass
            assert await client.closed()
        assert LIMITS.header_timeout <= trio.current_time() - start <= LIMITS.header_timeout + 2

    async def test_silent_connection_closed(self, connect, autojump_clock):
        """A connection that never sends a byte is closed after header_timeout."""
        client = await connect(Echo())
        start = trio.current_time()
        with trio.fail_after(30):
            assert await client.closed()
        assert LIMITS.header_timeout <= trio.current_time() - start <= LIMITS.header_timeout + 1

    async def test_idle_keepalive_closed(self, connect, autojump_clock):
        """After an answer, an idle connection is closed after keepalive_timeout."""
        client = await connect(Echo())
        await client.send(get("/a"))
        await client.response()
        start = trio.current_time()
        with trio.fail_after(30):
            assert await client.closed()
        elapsed = trio.current_time() - start
        assert LIMITS.keepalive_timeout <= elapsed <= LIMITS.keepalive_timeout + 1


class TestResponseCache:
    """A repeat fetch is answered from the remembered response, but never a stale one."""

    PATH = "/001565a1b2c3.cfg"

    async def fetch(self, harness: Harness) -> bytes:
        async with harness.client() as client:
            response = await client.get(self.PATH, headers={"user-agent": YEALINK_UA})
        assert response.status_code == 200
        return response.content

    async def test_repeat_served_from_the_cache_and_recorded(self):
        """The second fetch renders nothing new, and is still recorded as a fetch."""
        harness = Harness()
        rendered: list[str] = []
        render = harness.app.renderer.render

        def counting(phone, ident, **kw):
            rendered.append(ident.file)
            return render(phone, ident, **kw)

        harness.app.renderer.render = counting
        assert await self.fetch(harness) == await self.fetch(harness)
        assert rendered == ["001565a1b2c3.cfg"] and len(harness.fetches) == 2

    async def test_new_phone_data_is_served_at_once(self):
        """New data for the phone (a new revision: a new PhoneData) is served next fetch."""
        harness = Harness()
        before = await self.fetch(harness)
        phone = harness.phones["001565a1b2c3"]
        harness.phones["001565a1b2c3"] = attrs.evolve(
            phone, cn="Renamed Person", revision=phone.revision + 1
        )
        after = await self.fetch(harness)
        assert b"Renamed Person" in after and b"Renamed Person" not in before

    async def test_template_reload_and_new_renderer_are_served_at_once(self, tmp_path):
        """Re-rendering (the renderer's generation) and a new renderer (a reload) apply."""
        harness = Harness()
        assert b"EDITED" not in await self.fetch(harness)
        (tmp_path / "yealink").mkdir()
        (tmp_path / "yealink" / "phone.cfg.j2").write_text("EDITED {{ mac }}\n")
        harness.app.renderer = CheckedRenderer("tls", tmp_path, year=2025)
        assert (await self.fetch(harness)).startswith(b"EDITED")
        (tmp_path / "yealink" / "phone.cfg.j2").write_text("AGAIN {{ mac }}\n")
        harness.app.renderer.reload()
        assert (await self.fetch(harness)).startswith(b"AGAIN")

    async def test_user_agent_policy_change_applies_to_remembered_routes(self):
        """A route answered 200 is refused once the policy changes, and back."""
        harness = Harness(anonymous_vendors=["yealink"])
        path = self.PATH
        async with harness.client() as client:
            assert (await client.get(path, headers={"user-agent": "x"})).status_code == 200
            harness.app.settings = PhonesSettings.from_mapping({"anonymous_vendors": []})
            assert (await client.get(path, headers={"user-agent": "x"})).status_code == 403
            harness.app.settings = harness.settings
            assert (await client.get(path, headers={"user-agent": "x"})).status_code == 200

    async def test_removed_phone_is_a_miss(self):
        """A phone removed after it was served gets 404 (and counts as a miss)."""
        harness = Harness()
        await self.fetch(harness)
        del harness.phones["001565a1b2c3"]
        async with harness.client() as client:
            response = await client.get(self.PATH, headers={"user-agent": YEALINK_UA})
        assert response.status_code == 404 and harness.app.misses.count("192.0.2.10") == 1


def test_debug_gate_follows_structlog():
    """The hot path's debug check agrees with structlog's level, resets included."""
    logs.configure("info", fmt="kv", stream=io.StringIO())
    assert not logs.debug_enabled()
    logs.configure("debug", fmt="kv", stream=io.StringIO())
    assert logs.debug_enabled()
    logs.configure("info", fmt="kv", stream=io.StringIO())
    structlog.reset_defaults()
    assert logs.debug_enabled()

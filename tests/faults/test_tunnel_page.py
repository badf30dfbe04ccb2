"""Issue 11.5, tunnel side: receive lengths, concurrent sessions, shutdown (SDK sysclient.htm).

Each "Found" test failed on the tunnel endpoint before this change.
"""

from __future__ import annotations

import struct

from provd.protocol.sysclient import MAX_TUNNEL_CHUNK, TunnelEvent, TunnelFrame
from provd.protocol.tunnel import MAX_SESSIONS, TunnelEndpoint

GET = b"GET / HTTP/1.1\r\nHost: device\r\n\r\n"


def send(sid: int, data: bytes = GET) -> TunnelFrame:
    return TunnelFrame(sid, TunnelEvent.SEND, data)


def want(sid: int, n: int) -> TunnelFrame:
    return TunnelFrame(sid, TunnelEvent.RECEIVE, struct.pack(">I", n))


def shutdown(sid: int) -> TunnelFrame:
    return TunnelFrame(sid, TunnelEvent.SHUTDOWN)


def page(sid: int) -> bytes:
    body = f"session {sid} ".encode() * 40
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


def test_receive_of_zero_sends_no_data():
    """Found: a RECEIVE asking for 0 bytes got up to 64 KiB; now an empty result while
    data remains, and the data follows the next real RECEIVE."""
    tunnel = TunnelEndpoint(lambda req: page(1))
    tunnel.receive(send(1))
    assert tunnel.receive(want(1, 0)) == [TunnelFrame(1, TunnelEvent.RECEIVE_RESULT, b"")]
    (frame,) = tunnel.receive(want(1, 9))
    assert frame.data == page(1)[:9]


def test_receive_longer_than_cap_gets_at_most_the_cap():
    """A RECEIVE beyond provd's chunk cap is answered with less, never more, than asked."""
    big = b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * (2 * MAX_TUNNEL_CHUNK)
    tunnel = TunnelEndpoint(lambda req: big)
    tunnel.receive(send(1))
    (frame,) = tunnel.receive(want(1, 0xFFFFFFFF))
    assert len(frame.data) == MAX_TUNNEL_CHUNK


def test_more_sessions_than_the_cap_shut_the_least_recent_not_the_connection():
    """Found: the 17th session raised ProtocolError, which ended the whole Sysclient
    connection; sessions a browser abandoned (never shut) filled the table for good. Now
    the least recently active session is shut and the new one is served."""
    tunnel = TunnelEndpoint(lambda req: page(0))
    for sid in range(1, MAX_SESSIONS + 1):
        tunnel.receive(send(sid))  # abandoned: no RECEIVE, no shutdown
    tunnel.receive(want(1, 5))  # session 1 is active again: 2 is now the least recent
    out = tunnel.receive(send(100))
    assert out == [shutdown(2), TunnelFrame(100, TunnelEvent.SEND_RESULT)]
    assert tunnel.sessions == MAX_SESSIONS
    assert tunnel.receive(want(100, 10))[0].event == TunnelEvent.RECEIVE_RESULT
    assert tunnel.receive(shutdown(2)) == [shutdown(2)]  # Devices' confirmation answered


def test_bad_receive_length_shuts_only_that_session():
    """Found: a RECEIVE without a 4-byte length raised ProtocolError (the whole Sysclient
    connection, every other session with it); now only that session is shut."""
    tunnel = TunnelEndpoint(lambda req: page(0))
    tunnel.receive(send(1))
    tunnel.receive(send(2))
    assert tunnel.receive(TunnelFrame(2, TunnelEvent.RECEIVE, b"\x00\x01")) == [shutdown(2)]
    assert tunnel.refused == 1
    assert tunnel.receive(want(1, 4)) == [TunnelFrame(1, TunnelEvent.RECEIVE_RESULT, b"HTTP")]
    assert tunnel.receive(want(2, 4)) == []  # the rest of the shut session is dropped


def test_interleaved_sessions_each_get_their_own_answer_within_lengths():
    """Several sessions at once, frames interleaved, different lengths: each gets its
    own response, no result longer than its RECEIVE asked, then the end and shutdown."""
    requests: dict[bytes, int] = {}

    def respond(request: bytes) -> bytes:
        sid = int(request.split(b"/")[1].split(b" ")[0])
        requests[request] = sid
        return page(sid)

    tunnel = TunnelEndpoint(respond)
    sids = [5, 9, 2, 77]
    lengths = {5: 1, 9: 13, 2: 100, 77: 4096}
    got: dict[int, bytearray] = {sid: bytearray() for sid in sids}
    for sid in sids:  # the request in two pieces each, interleaved
        tunnel.receive(send(sid, f"GET /{sid} HTTP/1.1\r\n".encode()))
    for sid in sids:
        assert tunnel.receive(send(sid, b"\r\n")) == [TunnelFrame(sid, TunnelEvent.SEND_RESULT)]
    done: set[int] = set()
    while len(done) < len(sids):
        for sid in sids:
            if sid in done:
                continue
            (frame,) = tunnel.receive(want(sid, lengths[sid]))
            if frame.event == TunnelEvent.SHUTDOWN:
                done.add(sid)
                continue
            assert frame.event == TunnelEvent.RECEIVE_RESULT
            assert 0 < len(frame.data) <= lengths[sid]
            got[sid] += frame.data
    assert {sid: bytes(data) for sid, data in got.items()} == {sid: page(sid) for sid in sids}
    assert sorted(requests.values()) == sorted(sids)
    for sid in sids:  # Devices confirms each: answered once, then nothing
        assert tunnel.receive(shutdown(sid)) == [shutdown(sid)]
        assert tunnel.receive(shutdown(sid)) == []
    assert tunnel.sessions == 0


class TestAnsweredLater:
    """``respond=None``: the actor builds the page asynchronously (a store read)."""

    def test_request_handed_out_once_then_answered_to_the_waiting_receive(self):
        """The RECEIVE that came first is answered when the response is handed in."""
        tunnel = TunnelEndpoint()
        assert tunnel.receive(send(3)) == [TunnelFrame(3, TunnelEvent.SEND_RESULT)]
        assert tunnel.requests() == [(3, GET)]
        assert tunnel.requests() == []
        assert tunnel.receive(want(3, 6)) == []
        assert tunnel.answer(3, page(3)) == [
            TunnelFrame(3, TunnelEvent.RECEIVE_RESULT, page(3)[:6])
        ]

    def test_answer_for_a_session_shut_meanwhile_is_dropped(self):
        """Devices shut the session before the page was built: nothing is sent."""
        tunnel = TunnelEndpoint()
        tunnel.receive(send(4))
        ((sid, _),) = tunnel.requests()
        assert tunnel.receive(shutdown(4)) == [shutdown(4)]
        assert tunnel.answer(sid, page(4)) == []
        assert tunnel.sessions == 0

    def test_shutdown_mid_response_is_confirmed_and_ends_the_session(self):
        """Devices ends a request before reading all of it: confirmed, session gone."""
        tunnel = TunnelEndpoint()
        tunnel.receive(send(6))
        tunnel.requests()
        tunnel.answer(6, page(6))
        assert tunnel.receive(want(6, 10))[0].event == TunnelEvent.RECEIVE_RESULT
        assert tunnel.receive(shutdown(6)) == [shutdown(6)]
        assert tunnel.sessions == 0


async def test_actor_answers_the_tunnel_with_the_phone_page(tmp_path):
    """The phone actor's tunnel handler answers a GET with the HTML phone page (read from
    the directory and the store: the last fetch's model), in chunks no longer than asked,
    two sessions interleaved; the SIP password is not in it."""
    import trio

    from provd.actors.phone import PhoneContext, _Link, _on_tunnel
    from provd.actors.state import DevicesLocator, HandshakeLimiter, Outcomes, PhoneDirectory
    from provd.config import Config
    from provd.phones.fetch import FetchRecord
    from provd.phones.render import Renderer
    from provd.protocol.sysclient import TunnelReceived
    from provd.store.actor import Store

    mac = "805ec0aa0009"
    store = Store(str(tmp_path / "provd.db"))
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        fields = dict(hwid="", usename="zoe", cn="Zoe Z", password="Zoe-Sip-Pw-9", domain="d")
        await store.call(lambda db: db.upsert_phone(mac=mac, code="1", dns="", **fields))
        await store.call(lambda db: db.set_state(mac, "provisioned"))
        fetch = FetchRecord(
            time=1.0,
            address="127.0.0.1",
            user_agent="Yealink SIP-T54W 96.86.0.1",
            vendor="yealink",
            model="T54W",
            firmware="96.86.0.1",
            file=f"{mac}.cfg",
            mac=mac,
        )
        await store.call(lambda db: db.record_fetches([fetch]))
        directory = PhoneDirectory()
        directory.put(await store.call(lambda db: db.phone(mac)))
        ctx = PhoneContext(
            config=Config.from_mapping({"appservice": {"password": "x" * 12}}),
            store=store,
            directory=directory,
            locator=DevicesLocator(),
            outcomes=Outcomes(),
            handshakes=HandshakeLimiter(1),
            renderer=Renderer,
        )
        link = _Link(directory.get(mac), ctx, TunnelEndpoint())

        async def feed(frame):
            return await _on_tunnel(TunnelReceived(frame), link)

        bodies = {1: bytearray(), 2: bytearray()}
        assert await feed(want(1, 700)) == []  # RECEIVE before the request: waits
        await feed(send(2))
        out = await feed(send(1))  # answered to the waiting RECEIVE of session 1
        assert out[0] == TunnelFrame(1, TunnelEvent.SEND_RESULT)
        bodies[1] += out[1].data
        open_ = {1, 2}
        while open_:
            for sid in sorted(open_):
                (frame,) = await feed(want(sid, 700))
                if frame.event == TunnelEvent.SHUTDOWN:
                    open_.discard(sid)
                    continue
                assert len(frame.data) <= 700
                bodies[sid] += frame.data
        store.close()
        nursery.cancel_scope.cancel()
    for sid in (1, 2):
        head, _, body = bytes(bodies[sid]).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200") and b"text/html" in head
        text = body.decode()
        assert "T54W" in text and "96.86.0.1" in text and "Zoe Z" in text
        assert "account.1.user_name = zoe" in text  # the file it would get
        assert "Zoe-Sip-Pw-9" not in text


async def test_page_trouble_fails_that_request_not_the_connection(monkeypatch):
    """The store failing leaves the fetches out of the page; a bug building the page
    answers that request 500. Neither raises out of the handler (which would end the
    Sysclient connection and every other session)."""
    from provd.actors import phone as phone_module
    from provd.actors.phone import PhoneContext, _Link, _on_tunnel
    from provd.actors.state import DevicesLocator, HandshakeLimiter, Outcomes, PhoneDirectory
    from provd.config import Config
    from provd.protocol.sysclient import TunnelReceived
    from provd.store.actor import StoreError
    from provd.store.records import PhoneRecord

    class BrokenStore:
        async def call(self, fn):
            raise StoreError("disk I/O error")

    mac = "805ec0aa0010"
    directory = PhoneDirectory()
    directory.put(PhoneRecord(mac=mac, code="1", cn="Ann", state="provisioned"))
    ctx = PhoneContext(
        config=Config.from_mapping({"appservice": {"password": "x" * 12}}),
        store=BrokenStore(),
        directory=directory,
        locator=DevicesLocator(),
        outcomes=Outcomes(),
        handshakes=HandshakeLimiter(1),
    )
    link = _Link(directory.get(mac), ctx, TunnelEndpoint())

    async def first_chunk(sid):
        await _on_tunnel(TunnelReceived(send(sid)), link)
        (frame,) = await _on_tunnel(TunnelReceived(want(sid, 60000)), link)
        return frame.data

    page_ = await first_chunk(1)
    assert page_.startswith(b"HTTP/1.1 200") and b"Ann" in page_ and b"No fetch yet" in page_

    def broken(request, data):
        raise KeyError("bug")

    monkeypatch.setattr(phone_module.phone_page, "respond", broken)
    assert (await first_chunk(2)).startswith(b"HTTP/1.1 500")

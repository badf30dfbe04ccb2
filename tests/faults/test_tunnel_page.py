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

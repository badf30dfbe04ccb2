"""The device side of tunnel sessions."""

import struct

import pytest

from provd.protocol.sysclient import TunnelEvent, TunnelFrame
from provd.protocol.tunnel import TunnelEndpoint

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"


def want(sid, n):
    return TunnelFrame(sid, TunnelEvent.RECEIVE, struct.pack(">I", n))


def test_request_then_receives_in_chunks_then_shutdown():
    """The response goes out in chunks no longer than asked, then shutdown."""
    seen = []
    tunnel = TunnelEndpoint(lambda req: seen.append(req) or RESPONSE)
    out = tunnel.receive(TunnelFrame(7, TunnelEvent.SEND, b"GET / HTTP/1.1\r\n\r\n"))
    assert out == [TunnelFrame(7, TunnelEvent.SEND_RESULT)]  # no payload (SDK)
    assert seen == [b"GET / HTTP/1.1\r\n\r\n"]
    chunks = []
    while True:
        (frame,) = tunnel.receive(want(7, 10))
        if frame.event == TunnelEvent.SHUTDOWN:
            break
        assert frame.event == TunnelEvent.RECEIVE_RESULT and len(frame.data) <= 10
        chunks.append(frame.data)
    assert b"".join(chunks) == RESPONSE


def test_receive_before_request_complete_waits():
    """A RECEIVE that arrives before the request is complete is answered later."""
    tunnel = TunnelEndpoint(lambda req: RESPONSE)
    assert tunnel.receive(TunnelFrame(1, TunnelEvent.SEND, b"GET / HTTP/1.1\r\n")) != []
    assert tunnel.receive(want(1, 100)) == []
    out = tunnel.receive(TunnelFrame(1, TunnelEvent.SEND, b"\r\n"))
    assert out[-1] == TunnelFrame(1, TunnelEvent.RECEIVE_RESULT, RESPONSE)


def test_shutdown_answered_with_shutdown():
    """A shutdown from Devices is answered with shutdown and ends the session."""
    tunnel = TunnelEndpoint(lambda req: RESPONSE)
    tunnel.receive(TunnelFrame(2, TunnelEvent.SEND, b"x"))
    assert tunnel.receive(TunnelFrame(2, TunnelEvent.SHUTDOWN)) == [
        TunnelFrame(2, TunnelEvent.SHUTDOWN)
    ]
    assert tunnel.receive(TunnelFrame(2, TunnelEvent.SHUTDOWN)) == []


@pytest.mark.parametrize(
    "frame",
    [
        TunnelFrame(1, TunnelEvent.RECEIVE, b"\x00"),
        TunnelFrame(1, TunnelEvent.SEND, b"x" * 70000),
    ],
)
def test_bad_frames(frame):
    """Malformed tunnel input shuts that session only (issue 11.5: no ProtocolError that
    would end the whole Sysclient connection)."""
    tunnel = TunnelEndpoint(lambda req: RESPONSE)
    assert tunnel.receive(frame) == [TunnelFrame(1, TunnelEvent.SHUTDOWN)]
    assert tunnel.refused == 1 and tunnel.sessions == 0


def test_send_result_is_header_only_on_the_wire():
    """Found 9.6: SEND_RESULT carries no payload ("No further data is sent")."""
    from provd.protocol.sysclient import encode_frame

    tunnel = TunnelEndpoint(lambda req: RESPONSE)
    (ack,) = tunnel.receive(TunnelFrame(3, TunnelEvent.SEND, b"GET"))
    assert encode_frame(ack) == b"\x02\x00\x00\x00\x03\x00\x00\x00\x03"


def test_shutdown_answered_even_after_own_shutdown():
    """Found 9.6: provd shut the exhausted session first; Devices' shutdown is answered."""
    tunnel = TunnelEndpoint(lambda req: RESPONSE)
    tunnel.receive(TunnelFrame(4, TunnelEvent.SEND, b"GET / HTTP/1.1\r\n\r\n"))
    assert tunnel.receive(want(4, 1000))[0].event == TunnelEvent.RECEIVE_RESULT
    assert tunnel.receive(want(4, 1000)) == [TunnelFrame(4, TunnelEvent.SHUTDOWN)]
    assert tunnel.receive(TunnelFrame(4, TunnelEvent.SHUTDOWN)) == [
        TunnelFrame(4, TunnelEvent.SHUTDOWN)
    ]
    assert tunnel.receive(TunnelFrame(4, TunnelEvent.SHUTDOWN)) == []  # once, no ping-pong


@pytest.mark.parametrize("event", [2, 3, 9, 0xFFFFFFFF])
def test_unknown_or_device_events_ignored(event):
    """Found 9.5: unknown tunnel events (newer firmware) are ignored, never an error."""
    tunnel = TunnelEndpoint(lambda req: RESPONSE)
    assert tunnel.receive(TunnelFrame(1, event, b"abc")) == []
    assert tunnel.ignored == 1

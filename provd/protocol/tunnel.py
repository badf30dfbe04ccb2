"""The device side of Sysclient tunnel sessions (spec section 6, tunnel frames).

The Devices UI reaches a device's web UI through ``<devices>/passthrough/<MAC>/<key>/...``;
Devices relays the HTTP bytes in tunnel frames. provd has no phone web UI to offer, so it
answers every tunnelled request with a small status page it is given. The spec names the
events but not every payload; provd's choices: ``SEND_RESULT`` carries the number of bytes
accepted (4 bytes, big-endian), and when the response is exhausted a ``RECEIVE`` is answered
with ``SHUTDOWN``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

import attrs

from .errors import ProtocolError
from .sysclient import MAX_TUNNEL_CHUNK, TunnelEvent, TunnelFrame

#: Cap on a buffered tunnelled request (headers of a GET; no uploads expected).
MAX_REQUEST = 64 * 1024
#: Concurrent tunnel sessions per device.
MAX_SESSIONS = 16


@attrs.define
class _Session:
    request: bytearray = attrs.field(factory=bytearray)
    response: bytes | None = None
    sent: int = 0
    wanted: int = 0  # a RECEIVE waiting for the response


class TunnelEndpoint:
    """Answers tunnelled HTTP requests with ``respond(request_bytes) -> response_bytes``."""

    def __init__(self, respond: Callable[[bytes], bytes]) -> None:
        self._respond = respond
        self._sessions: dict[int, _Session] = {}

    def receive(self, frame: TunnelFrame) -> list[TunnelFrame]:
        """Handle a frame from Devices; return the frames to send back.

        Raises:
            ProtocolError: unknown event, bad RECEIVE length, oversized request, too many
                sessions.
        """
        sid = frame.session
        if frame.event == TunnelEvent.SHUTDOWN:
            if self._sessions.pop(sid, None) is None:
                return []
            return [TunnelFrame(sid, TunnelEvent.SHUTDOWN)]
        session = self._sessions.get(sid)
        if session is None:
            if len(self._sessions) >= MAX_SESSIONS:
                raise ProtocolError("too many tunnel sessions")
            session = self._sessions[sid] = _Session()
        if frame.event == TunnelEvent.SEND:
            if len(session.request) + len(frame.data) > MAX_REQUEST:
                raise ProtocolError("tunnelled request too large")
            session.request += frame.data
            out = [TunnelFrame(sid, TunnelEvent.SEND_RESULT, struct.pack(">I", len(frame.data)))]
            if session.response is None and b"\r\n\r\n" in session.request:
                session.response = self._respond(bytes(session.request))
            if session.wanted and session.response is not None:
                out += self._deliver(sid, session, session.wanted)
            return out
        if frame.event == TunnelEvent.RECEIVE:
            if len(frame.data) != 4:
                raise ProtocolError("tunnel RECEIVE without a 4-byte length")
            (wanted,) = struct.unpack(">I", frame.data)
            if not 0 < wanted <= MAX_TUNNEL_CHUNK:
                wanted = MAX_TUNNEL_CHUNK
            if session.response is None:
                session.wanted = wanted
                return []
            return self._deliver(sid, session, wanted)
        raise ProtocolError(f"tunnel event {frame.event} not expected by a device")

    def _deliver(self, sid: int, session: _Session, wanted: int) -> list[TunnelFrame]:
        assert session.response is not None
        session.wanted = 0
        chunk = session.response[session.sent : session.sent + wanted]
        if not chunk:
            del self._sessions[sid]
            return [TunnelFrame(sid, TunnelEvent.SHUTDOWN)]
        session.sent += len(chunk)
        return [TunnelFrame(sid, TunnelEvent.RECEIVE_RESULT, chunk)]

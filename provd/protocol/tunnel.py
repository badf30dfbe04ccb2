"""The device side of Sysclient tunnel sessions (spec section 6, tunnel frames).

The Devices UI reaches a device's web UI through ``<devices>/passthrough/<MAC>/<key>/...``;
Devices relays the HTTP bytes in tunnel frames. provd has no phone web UI to offer, so it
answers every tunnelled request with a small status page it is given.

Per the SDK (``doc/protocol/sysclient.htm``): ``SEND_RESULT`` carries no payload ("No further
data is sent"); a ``SHUTDOWN`` from Devices is always answered with a ``SHUTDOWN`` ("a
sysclient must also send this message as an answer to a socket shutdown message"), also
when provd had shut the session first. When the response is exhausted a ``RECEIVE`` is
answered with ``SHUTDOWN``. Unknown events (newer firmware) are ignored.
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
        #: Events received that this endpoint does not know (newer firmware), for the log.
        self.ignored = 0
        #: Sessions provd shut, awaiting Devices' shutdown (bounded, oldest dropped).
        self._shut: dict[int, None] = {}

    def receive(self, frame: TunnelFrame) -> list[TunnelFrame]:
        """Handle a frame from Devices; return the frames to send back.

        Raises:
            ProtocolError: bad RECEIVE length, oversized request, too many sessions.
        """
        sid = frame.session
        if frame.event == TunnelEvent.SHUTDOWN:
            # Answered, also for a session provd shut itself first (SDK sysclient.htm). A
            # session never seen is not answered, so two sides cannot ping-pong forever.
            known = self._sessions.pop(sid, None) is not None
            if not known:
                if sid not in self._shut:
                    return []
                del self._shut[sid]
            return [TunnelFrame(sid, TunnelEvent.SHUTDOWN)]
        if frame.event not in (TunnelEvent.SEND, TunnelEvent.RECEIVE):
            self.ignored += 1  # RECEIVE_RESULT/SEND_RESULT are ours to send; others unknown
            return []
        session = self._sessions.get(sid)
        if session is None:
            if len(self._sessions) >= MAX_SESSIONS:
                raise ProtocolError("too many tunnel sessions")
            session = self._sessions[sid] = _Session()
        if frame.event == TunnelEvent.SEND:
            if len(session.request) + len(frame.data) > MAX_REQUEST:
                raise ProtocolError("tunnelled request too large")
            session.request += frame.data
            out = [TunnelFrame(sid, TunnelEvent.SEND_RESULT)]  # no payload (SDK)
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
        return []  # unreachable: only SEND and RECEIVE get here

    def _deliver(self, sid: int, session: _Session, wanted: int) -> list[TunnelFrame]:
        assert session.response is not None
        session.wanted = 0
        chunk = session.response[session.sent : session.sent + wanted]
        if not chunk:
            del self._sessions[sid]
            self._shut[sid] = None
            if len(self._shut) > 4 * MAX_SESSIONS:
                del self._shut[next(iter(self._shut))]
            return [TunnelFrame(sid, TunnelEvent.SHUTDOWN)]
        session.sent += len(chunk)
        return [TunnelFrame(sid, TunnelEvent.RECEIVE_RESULT, chunk)]

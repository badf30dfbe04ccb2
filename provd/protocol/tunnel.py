"""The device side of Sysclient tunnel sessions (spec section 6, tunnel frames).

The Devices UI reaches a device's web UI through ``<devices>/passthrough/<MAC>/<key>/...``;
Devices relays the HTTP bytes in tunnel frames, one session id per HTTP request. provd has
no phone web server: each tunnelled request is answered with a page the caller builds
(:mod:`provd.phones.page`), either at once (``respond`` given) or later (``respond`` None:
take the complete requests with :meth:`TunnelEndpoint.requests`, build the answer, however
long that takes, and hand it in with :meth:`TunnelEndpoint.answer`).

Per the SDK (``doc/protocol/sysclient.htm``, "Message flow of socket messages"):

* "A socket send is received with a new session id. The sysclient sends a socket send
  result with the session id." ``SEND_RESULT`` carries no payload ("No further data is
  sent").
* "The sysclient itself is responsible to handle multiple sessions and the flow of the
  events": sessions are independent; frames of several may interleave.
* "A socket recv is received to receive new data ... socket receive header: 1 dword: the
  length of data to receive": a ``RECEIVE_RESULT`` never carries more than that length
  (a length of 0 gets an empty result while data remains). "A socket recv might be
  received multiple times until all data is read"; one asked for after the end is answered
  with ``SHUTDOWN``.
* "A socket shutdown is received to indicate that this HTTP request is finished. A socket
  shutdown is sent from the sysclient as a confirmation" / "A sysclient must also send
  this message as an answer to a socket shutdown message": answered, also when provd had
  shut the session first; a session never seen is not answered, so two sides that both
  answer every shutdown cannot ping-pong forever.

A peer's mistake ends at most that session (house rule): a malformed ``RECEIVE``, an
oversized request, or more sessions than :data:`MAX_SESSIONS` (the least recently active
one is shut to make room: a browser that went away never sends its shutdown) shut one
session with ``SHUTDOWN``; nothing here raises. Data for a session provd shut is dropped
until Devices confirms the shutdown. Unknown events (newer firmware) are
ignored and counted.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

import attrs

from .sysclient import MAX_TUNNEL_CHUNK, TunnelEvent, TunnelFrame

#: Cap on a buffered tunnelled request (headers of a GET; no uploads expected).
MAX_REQUEST = 64 * 1024
#: Concurrent tunnel sessions per device; one more shuts the least recently active.
MAX_SESSIONS = 16


@attrs.define
class _Session:
    request: bytearray = attrs.field(factory=bytearray)
    #: The request was complete and handed out (to ``respond`` or :meth:`requests`).
    asked: bool = False
    response: bytes | None = None
    sent: int = 0
    #: The length of a RECEIVE waiting for the response (None: none waiting).
    wanted: int | None = None


class TunnelEndpoint:
    """Answers tunnelled HTTP requests.

    Args:
        respond: ``respond(request_bytes) -> response_bytes``, called when a request's
            headers are complete; None to answer later through :meth:`requests` and
            :meth:`answer`.
    """

    def __init__(self, respond: Callable[[bytes], bytes] | None = None) -> None:
        self._respond = respond
        #: Live sessions, least recently active first.
        self._sessions: dict[int, _Session] = {}
        #: Complete requests not yet taken by :meth:`requests` (respond is None).
        self._ready: list[int] = []
        #: Events received that this endpoint does not know (newer firmware), for the log.
        self.ignored = 0
        #: Sessions shut because of the peer's mistake or to make room, and the last reason.
        self.refused = 0
        self.last_refusal = ""
        #: Sessions provd shut, awaiting Devices' shutdown (bounded, oldest dropped).
        self._shut: dict[int, None] = {}

    @property
    def sessions(self) -> int:
        """Live sessions."""
        return len(self._sessions)

    def receive(self, frame: TunnelFrame) -> list[TunnelFrame]:
        """Handle a frame from Devices; return the frames to send back. Never raises."""
        sid = frame.session
        if frame.event == TunnelEvent.SHUTDOWN:
            known = self._sessions.pop(sid, None) is not None
            if not known:
                if sid not in self._shut:
                    return []
                del self._shut[sid]
            return [TunnelFrame(sid, TunnelEvent.SHUTDOWN)]
        if frame.event not in (TunnelEvent.SEND, TunnelEvent.RECEIVE):
            self.ignored += 1  # RECEIVE_RESULT/SEND_RESULT are ours to send; others unknown
            return []
        out: list[TunnelFrame] = []
        session = self._sessions.pop(sid, None)
        if session is None:
            if sid in self._shut:
                return []  # the rest of a session provd shut; Devices' shutdown will follow
            if len(self._sessions) >= MAX_SESSIONS:
                oldest = next(iter(self._sessions))
                out += self._refuse(oldest, "too many tunnel sessions: least recent shut")
            session = _Session()
        self._sessions[sid] = session  # (re)inserted last: the most recently active
        if frame.event == TunnelEvent.SEND:
            return out + self._on_send(sid, session, frame.data)
        return out + self._on_receive(sid, session, frame.data)

    def requests(self) -> list[tuple[int, bytes]]:
        """The complete requests waiting for :meth:`answer` (session id, request bytes),
        each handed out once."""
        ready, self._ready = self._ready, []
        return [(sid, bytes(self._sessions[sid].request)) for sid in ready if sid in self._sessions]

    def answer(self, sid: int, response: bytes) -> list[TunnelFrame]:
        """The response for session ``sid``; returns frames for a RECEIVE already waiting.
        A session shut meanwhile is ignored."""
        session = self._sessions.get(sid)
        if session is None or session.response is not None:
            return []
        session.response = response
        if session.wanted is not None:
            return self._deliver(sid, session, session.wanted)
        return []

    def _on_send(self, sid: int, session: _Session, data: bytes) -> list[TunnelFrame]:
        if len(session.request) + len(data) > MAX_REQUEST:
            return self._refuse(sid, "tunnelled request too large")
        session.request += data
        out = [TunnelFrame(sid, TunnelEvent.SEND_RESULT)]  # no payload (SDK)
        if not session.asked and b"\r\n\r\n" in session.request:
            session.asked = True
            if self._respond is None:
                self._ready.append(sid)
            else:
                out += self.answer(sid, self._respond(bytes(session.request)))
        return out

    def _on_receive(self, sid: int, session: _Session, data: bytes) -> list[TunnelFrame]:
        if len(data) != 4:
            return self._refuse(sid, "tunnel RECEIVE without a 4-byte length")
        (wanted,) = struct.unpack(">I", data)
        wanted = min(wanted, MAX_TUNNEL_CHUNK)  # less than asked is allowed, never more
        if session.response is None:
            session.wanted = wanted
            return []
        return self._deliver(sid, session, wanted)

    def _deliver(self, sid: int, session: _Session, wanted: int) -> list[TunnelFrame]:
        assert session.response is not None
        session.wanted = None
        if session.sent >= len(session.response):
            self._forget(sid)
            return [TunnelFrame(sid, TunnelEvent.SHUTDOWN)]  # all read: the end
        chunk = session.response[session.sent : session.sent + wanted]
        session.sent += len(chunk)
        return [TunnelFrame(sid, TunnelEvent.RECEIVE_RESULT, chunk)]

    def _refuse(self, sid: int, reason: str) -> list[TunnelFrame]:
        self.refused += 1
        self.last_refusal = reason
        self._forget(sid)
        return [TunnelFrame(sid, TunnelEvent.SHUTDOWN)]

    def _forget(self, sid: int) -> None:
        """Drop a session provd shuts; Devices' confirming shutdown is still answered."""
        self._sessions.pop(sid, None)
        self._shut[sid] = None
        if len(self._shut) > 4 * MAX_SESSIONS:
            del self._shut[next(iter(self._shut))]

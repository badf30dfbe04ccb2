"""One HTTP exchange relayed through a sysclient tunnel session, sans-I/O (spec section 6).

Theory of operation: the Devices app opens a tunnel session per passthrough request. It
sends the HTTP request bytes as ``SEND`` (event 0) frames, then asks for at most ``chunk``
bytes with ``RECEIVE`` (event 1, 4-byte big-endian length). Each ``RECEIVE_RESULT``
(event 2) must honour that length; an empty one means end of stream. We ask again until
h11 has a complete response, then ``SHUTDOWN`` (event 4). A device's ``SHUTDOWN`` ends the
stream (h11 decides whether what arrived is complete) and is answered with ``SHUTDOWN``.
``SEND_RESULT`` (event 3) is an acknowledgement and changes nothing; it carries no payload
(SDK: "No further data is sent"): one with a payload is a layout violation, recorded in
:attr:`TunnelRelay.violations` and, with ``strict``, a :class:`TunnelError`.

h11 builds the request and parses the response, so chunked and close-delimited bodies work.
"""

from __future__ import annotations

import struct

import attrs
import h11

from ..protocol.sysclient import TunnelEvent, TunnelFrame

#: Request bytes per SEND frame.
SEND_CHUNK = 16 * 1024
#: Cap on a relayed response.
MAX_RESPONSE = 16 * 1024 * 1024

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"transfer-encoding",
        b"te",
        b"upgrade",
        b"content-length",
        b"proxy-connection",
        b"trailer",
    }
)


@attrs.frozen
class HttpResponse:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


class TunnelError(Exception):
    """The device broke the tunnel protocol or HTTP; the passthrough answers 502."""


class TunnelRelay:
    def __init__(self, session: int, *, chunk: int = 16384, strict: bool = True) -> None:
        self.session = session
        self.chunk = chunk
        self.strict = strict
        #: Frames from the device that break the SDK layout, described.
        self.violations: list[str] = []
        self._h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=64 * 1024)
        self._waiting_for: int | None = None
        self._status: int | None = None
        self._headers: list[tuple[bytes, bytes]] = []
        self._body = bytearray()
        self.response: HttpResponse | None = None
        self.done = False

    def start(
        self, method: str, target: str, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> list[TunnelFrame]:
        """The frames opening the exchange: the request, then the first RECEIVE."""
        headers = [(k, v) for k, v in headers if k.lower() not in HOP_BY_HOP]
        if not any(k.lower() == b"host" for k, _ in headers):
            headers.append((b"host", b"device"))
        headers += [(b"content-length", str(len(body)).encode()), (b"connection", b"close")]
        raw = self._h11.send(h11.Request(method=method, target=target, headers=headers)) or b""
        if body:
            raw += self._h11.send(h11.Data(data=body)) or b""
        raw += self._h11.send(h11.EndOfMessage()) or b""
        frames = [
            TunnelFrame(self.session, TunnelEvent.SEND, raw[i : i + SEND_CHUNK])
            for i in range(0, len(raw), SEND_CHUNK)
        ]
        return [*frames, self._receive()]

    def on_frame(self, frame: TunnelFrame) -> list[TunnelFrame]:
        """Handle a frame from the device; returns frames to send back.

        Raises:
            TunnelError: more data than asked for, unasked data, bad HTTP, too large.
        """
        if self.done:
            return []
        if frame.event == TunnelEvent.SEND_RESULT:
            if frame.data:
                self.violations.append(f"SEND_RESULT with {len(frame.data)} bytes of payload")
                if self.strict:
                    raise TunnelError(self.violations[-1])
            return []
        if frame.event == TunnelEvent.SHUTDOWN:
            self._feed(b"")
            self.done = True
            if self.response is None:
                raise TunnelError("device shut the tunnel before a complete response")
            return [self._shutdown()]
        if frame.event != TunnelEvent.RECEIVE_RESULT:
            raise TunnelError(f"unexpected tunnel event {frame.event}")
        if self._waiting_for is None:
            raise TunnelError("data the Devices app did not ask for")
        if len(frame.data) > self._waiting_for:
            raise TunnelError(f"{len(frame.data)} bytes for a RECEIVE of {self._waiting_for}")
        self._waiting_for = None
        self._feed(frame.data)
        if self.response is not None:
            self.done = True
            return [self._shutdown()]
        if not frame.data:
            self.done = True
            raise TunnelError("tunnel ended before a complete response")
        return [self._receive()]

    def _receive(self) -> TunnelFrame:
        self._waiting_for = self.chunk
        return TunnelFrame(self.session, TunnelEvent.RECEIVE, struct.pack(">I", self.chunk))

    def _shutdown(self) -> TunnelFrame:
        return TunnelFrame(self.session, TunnelEvent.SHUTDOWN)

    def _feed(self, data: bytes) -> None:
        if self._h11.their_state is h11.DONE:
            return
        try:
            self._h11.receive_data(data)
            while True:
                event = self._h11.next_event()
                if event is h11.NEED_DATA or event is h11.PAUSED:
                    return
                if isinstance(event, h11.InformationalResponse):
                    continue
                if isinstance(event, h11.Response):
                    self._status = event.status_code
                    self._headers = list(event.headers)
                elif isinstance(event, h11.Data):
                    self._body += event.data
                    if len(self._body) > MAX_RESPONSE:
                        raise TunnelError("response too large")
                elif isinstance(event, h11.EndOfMessage):
                    assert self._status is not None
                    headers = [(k, v) for k, v in self._headers if k.lower() not in HOP_BY_HOP]
                    self.response = HttpResponse(self._status, headers, bytes(self._body))
                    return
                elif isinstance(event, h11.ConnectionClosed):
                    return
        except h11.RemoteProtocolError as exc:
            raise TunnelError(f"bad HTTP from device: {exc}") from None

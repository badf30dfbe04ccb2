"""A lean websocket client for the simulator's own AppWebsocket sessions (issue 14).

The Users service holds two client sessions while it provisions: to provd (one
``ProvisioningPhone`` and its result per phone) and to Devices (one
``GetProvisioningCode`` per phone). Through trio-websocket each had a reader task, a lock
per send and a memory channel every message crossed (~30 % of the simulator's CPU per
phone in the scale bench). :func:`connect` opens the same websocket as
:func:`provd.transport.connect` does (plain ``ws://``; ``wss://`` still goes through
trio-websocket) and serves it with :class:`ClientWebsocket`: the server's
:class:`~.wsserver.ServerWebsocket` run as a wsproto *client* connection (frames masked,
RFC 6455 section 5.1), so whoever calls :meth:`get_message` reads the stream itself.

It quacks like trio-websocket's ``WebSocketConnection`` as far as
:class:`provd.transport.AppWebsocket` needs: text messages in and out, closes reported as
``trio_websocket.ConnectionClosed`` (with the close code), ``aclose``.
"""

from __future__ import annotations

import contextlib
import ssl
from urllib.parse import urlsplit

import trio
import trio_websocket as tw
from wsproto.connection import ConnectionType
from wsproto.events import AcceptConnection, RejectConnection, Request
from wsproto.handshake import H11Handshake

from ..protocol.jsonwire import MAX_MESSAGE_SIZE
from ..transport import connect as tw_connect
from .wsserver import RECEIVE_BYTES, AppServerWebsocket

#: Largest upgrade answer read before giving up, bytes.
MAX_HEAD = 16 << 10


class ClientWebsocket(AppServerWebsocket):
    """One client websocket over one trio stream, no task of its own.

    One task reads (:meth:`get_message`, which answers pings on the way); other tasks may
    :meth:`send_message` meanwhile.
    """

    __slots__ = ()


async def handshake(
    stream: trio.abc.Stream, host: str, target: str, *, max_message_size: int = MAX_MESSAGE_SIZE
) -> ClientWebsocket:
    """Upgrade ``stream`` (RFC 6455 section 4.1) and return the open client websocket.

    Raises:
        trio_websocket.ConnectionRejected: the server answered with anything but 101.
        trio_websocket.HandshakeError: the stream ended or the answer was too long.
    """
    hs = H11Handshake(ConnectionType.CLIENT)
    await stream.send_all(hs.send(Request(host=host, target=target)))
    read = 0
    while True:
        for event in hs.events():
            if isinstance(event, AcceptConnection):
                assert hs.connection is not None
                return ClientWebsocket(stream, hs.connection, target, host, max_message_size)
            if isinstance(event, RejectConnection):
                raise tw.ConnectionRejected(event.status_code, event.headers, None)
        data = await stream.receive_some(RECEIVE_BYTES)
        read += len(data)
        if not data or read > MAX_HEAD:
            raise tw.HandshakeError("no websocket upgrade answer")
        hs.receive_data(data)


@contextlib.asynccontextmanager
async def _lean(url: str, max_message_size: int, connect_timeout: float):
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or 80
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    with trio.fail_after(connect_timeout):
        stream = await trio.open_tcp_stream(host, port)
        try:
            ws = await handshake(
                stream,
                f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
                target,
                max_message_size=max_message_size,
            )
        except BaseException:
            await trio.aclose_forcefully(stream)
            raise
    try:
        yield ws
    finally:
        await ws.aclose()


def connect(
    url: str,
    *,
    ssl_context: ssl.SSLContext | None = None,
    max_message_size: int = MAX_MESSAGE_SIZE,
    connect_timeout: float = 10.0,
):
    """``async with connect(url) as ws``: as :func:`provd.transport.connect`, lean for
    ``ws://`` (wrap in :class:`provd.transport.AppWebsocket`)."""
    if urlsplit(url).scheme != "ws" or ssl_context is not None:
        return tw_connect(
            url,
            ssl_context=ssl_context,
            max_message_size=max_message_size,
            connect_timeout=connect_timeout,
        )
    return _lean(url, max_message_size, connect_timeout)

"""Typed AppWebsocket connections over trio-websocket, and login on both sides.

Errors are translated at this boundary: a closed or broken websocket becomes
:class:`ConnectionLost`; malformed peer input stays a
:class:`~provd.protocol.ProtocolError` so the caller can close with a reason.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog
import trio
import trio_websocket as tw

from ..protocol import LoginRefused, ProtocolError
from ..protocol.jsonwire import MAX_MESSAGE_SIZE
from ..protocol.login import ClientLogin, Identity, ServerLogin, check_login
from ..protocol.messages import (
    AppChallenge,
    AppChallengeResult,
    AppCheckLogin,
    AppLogin,
    AppLoginResult,
    CheckBuild,
    CheckBuildResult,
    GetServiceLogin,
    GetServiceLoginResult,
    Message,
    decode_text,
    encode_text,
)
from .address import parse_listen

log = structlog.get_logger("provd.transport")

M = TypeVar("M", bound=Message)


class ConnectionLost(Exception):
    """The websocket closed or broke; ``reason`` says how (log-safe)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class AppWebsocket:
    """One AppWebsocket connection: JSON text messages in and out, typed."""

    def __init__(self, ws: tw.WebSocketConnection) -> None:
        self.ws = ws
        self.session_key: str | None = None

    @property
    def remote(self) -> str:
        r = self.ws.remote
        return f"{r.address}:{r.port}" if isinstance(r, tw.Endpoint) else str(r)

    async def send(self, msg: Message) -> None:
        try:
            await self.ws.send_message(encode_text(msg))
        except (tw.ConnectionClosed, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise ConnectionLost(f"send failed: {type(exc).__name__}") from None

    async def receive(self) -> Message:
        """The next message.

        Raises:
            ConnectionLost: the peer closed or the connection broke.
            ProtocolError: a binary frame, or malformed JSON/message.
        """
        try:
            data = await self.ws.get_message()
        except tw.ConnectionClosed as exc:
            reason = exc.reason
            raise ConnectionLost(f"closed ({reason.code if reason else 'no reason'})") from None
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise ConnectionLost("broken") from None
        if isinstance(data, bytes):
            raise ProtocolError("binary frame on an AppWebsocket connection")
        return decode_text(data)

    async def receive_kind(self, kind: type[M]) -> M:
        msg = await self.receive()
        if not isinstance(msg, kind):
            raise ProtocolError(f"expected {kind.MT}, got {type(msg).__name__}")
        return msg

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        with trio.move_on_after(2) as scope:
            scope.shield = True
            await self.ws.aclose(code, reason)


async def accept_login(
    conn: AppWebsocket, password: str, *, login_timeout: float = 10.0
) -> ServerLogin:
    """Run the server side of the login: challenge, verify, answer.

    Returns:
        The successful :class:`ServerLogin` (who logged in, session key).

    Raises:
        LoginRefused: wrong digest (the refusal was sent), or the login took too long.
        ProtocolError, ConnectionLost: as :meth:`AppWebsocket.receive`.
    """
    login = ServerLogin(password)
    with trio.move_on_after(login_timeout) as scope:
        while True:
            msg = await conn.receive()
            if isinstance(msg, AppChallenge):
                await conn.send(login.on_challenge(msg))
            elif isinstance(msg, AppLogin):
                result = login.on_login(msg)
                await conn.send(result)
                if result.ok:
                    conn.session_key = login.session_key
                    return login
                raise LoginRefused("wrong digest")
            elif isinstance(msg, AppCheckLogin):
                # The PBX Manager's password check: answered, never a protocol error
                # (spec section 2); after a match the connection may still log in. A
                # mismatch ends the connection once answered, as a wrong AppLogin does, so
                # the check is no password-guessing oracle.
                result = check_login(msg, password)
                if result.ok:
                    log.info("appservice.check_login", app=msg.app, ok=True)
                    await conn.send(result)
                    continue
                log.warning(
                    "appservice.check_login",
                    app=msg.app,
                    ok=False,
                    hint="the App object's password differs from appservice.password",
                )
                await conn.send(result)
                raise LoginRefused("AppCheckLogin digest does not match")
            elif isinstance(msg, CheckBuild):
                # The innovaphone JS client sends it before its AppChallenge when checkBuild
                # is set. No url: the client would redirect (spec section 2).
                await conn.send(msg.reply(CheckBuildResult))
            else:
                raise ProtocolError(f"{type(msg).__name__} before login")
    assert scope.cancelled_caught
    raise LoginRefused(f"no login within {login_timeout:g} s")


async def login_with_password(conn: AppWebsocket, identity: Identity, password: str) -> str:
    """Client login with a known password. Returns the session key."""
    client = ClientLogin(identity=identity, password=password)
    await conn.send(client.start())
    login = client.on_challenge(await conn.receive_kind(AppChallengeResult))
    assert isinstance(login, AppLogin)
    await conn.send(login)
    client.on_result(await conn.receive_kind(AppLoginResult))
    conn.session_key = client.session_key
    assert client.session_key is not None
    return client.session_key


async def login_as_service(
    conn: AppWebsocket,
    service: str,
    ask_pbx: Callable[[GetServiceLogin], Awaitable[GetServiceLoginResult]],
    pbx_session_key: str,
) -> str:
    """Client login to another app service with a login the PBX makes for us.

    ``ask_pbx`` sends ``GetServiceLogin`` on the PBX connection and returns its result.
    Returns the session key.
    """
    client = ClientLogin(service=service)
    await conn.send(client.start())
    ask = client.on_challenge(await conn.receive_kind(AppChallengeResult))
    assert isinstance(ask, GetServiceLogin)
    login = client.on_service_login(await ask_pbx(ask), pbx_session_key)
    await conn.send(login)
    client.on_result(await conn.receive_kind(AppLoginResult))
    conn.session_key = client.session_key
    assert client.session_key is not None
    return client.session_key


def connect(
    url: str,
    *,
    ssl_context: ssl.SSLContext | None = None,
    max_message_size: int = MAX_MESSAGE_SIZE,
    connect_timeout: float = 10.0,
):
    """``async with connect(url) as ws`` — a client websocket (raw; wrap in AppWebsocket)."""
    return tw.open_websocket_url(
        url,
        ssl_context=ssl_context,
        max_message_size=max_message_size,
        connect_timeout=connect_timeout,
        disconnect_timeout=2.0,
    )


async def serve(
    handler: Callable[[tw.WebSocketConnection], Awaitable[None]],
    listen: str,
    *,
    ssl_context: ssl.SSLContext | None = None,
    max_message_size: int = MAX_MESSAGE_SIZE,
    task_status: trio.TaskStatus[tw.WebSocketServer] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve websockets on ``listen`` (any URL path); readiness via ``nursery.start``.

    Every connection is accepted and handed to ``handler``; an exception escaping the
    handler is logged and ends only that connection.
    """
    host, port = parse_listen(listen)

    async def on_request(request: tw.WebSocketRequest) -> None:
        ws = await request.accept()
        try:
            await handler(ws)
        except Exception:
            log.exception("connection.crashed")

    await tw.serve_websocket(
        on_request,
        host,
        port,
        ssl_context,
        max_message_size=max_message_size,
        task_status=task_status,
    )

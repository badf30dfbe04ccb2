"""Hostile peers on the AppWebsocket listener, against the real ``provd run`` process.

Issue 8 "Hardening", items 1, 4 (trust), 10 and 13 (AppWebsocket part): nothing a peer
does on this listener ends the daemon; before login the limits are tight (message size,
handshake time, connection count, login rate); a logged-in session that stops answering
pings is closed; only the PBX App-object session may name the Devices URL, and only a
websocket URL.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import struct
from contextlib import asynccontextmanager

import pytest
import trio
import trio_websocket as tw
import wsproto
import wsproto.events as we

from provd.protocol.login import ClientLogin, Identity
from provd.protocol.messages import (
    AppChallengeResult,
    AppInfo,
    AppInfoResult,
    AppLoginResult,
    PbxInfo,
    Service,
    ServicesInfo,
    SubscribeServices,
    decode_text,
    encode_text,
)
from provd.transport import AppWebsocket, connect, login_with_password

from ..e2e.harness import INSTANCE_PASSWORD, ProvdProcess

PBX = Identity(
    app="provd",
    domain="example.com",
    sip="provd",
    guid="g",
    dn="provd",
    info={"appobj": "provd", "cn": "provd"},
)
USERS = Identity(
    app="users",
    domain="example.com",
    sip="users",
    guid="u",
    dn="Users",
    pbx_obj="users",
    info={"appobj": "users", "cn": "Users", "apps": [{"name": "users"}]},
)


class GuardedProvd(ProvdProcess):
    """A provd child with extra ``[appservice]`` keys (the harness writes that table)."""

    def __init__(self, workdir, appservice: str = "", **kw) -> None:
        super().__init__(workdir, **kw)
        self.appservice_keys = appservice

    def write_config(self) -> None:
        super().write_config()
        text = self.config_path.read_text()
        text = text.replace("[appservice]\n", "[appservice]\n" + self.appservice_keys, 1)
        self.config_path.write_text(text)


async def started(nursery, tmp_path, appservice: str = "", **kw) -> GuardedProvd:
    provd = GuardedProvd(tmp_path, appservice, **kw)
    await provd.start(nursery)
    return provd


def alive(provd: ProvdProcess) -> bool:
    return provd.proc is not None and provd.proc.returncode is None


@asynccontextmanager
async def logged_in(provd: ProvdProcess, identity: Identity = PBX):
    async with connect(provd.appservice_url) as ws:
        conn = AppWebsocket(ws)
        await login_with_password(conn, identity, INSTANCE_PASSWORD)
        yield conn


async def still_serves(provd: ProvdProcess) -> None:
    """The daemon is up and answers a real login."""
    assert alive(provd)
    async with logged_in(provd) as conn:
        await conn.send(AppInfo(src="alive"))
        assert (await conn.receive_kind(AppInfoResult)).src == "alive"


async def tcp(provd: ProvdProcess) -> trio.SocketStream:
    return await trio.open_tcp_stream("127.0.0.1", provd.appservice_port)


def upgrade_request(port: int) -> bytes:
    ws = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
    return ws.send(we.Request(host=f"127.0.0.1:{port}", target="/provd"))


async def closed_by_server(stream: trio.SocketStream) -> None:
    """Read (and drop) until the server closes the connection."""
    while True:
        try:
            if not await stream.receive_some(65536):
                return
        except trio.BrokenResourceError:
            return


# --- item 1: an upgrade followed by a TCP reset ------------------------------------------


async def test_upgrade_then_reset_leaves_daemon_up(tmp_path, nursery):
    """Upgrade request, then RST (SO_LINGER 0): logged once with the peer, daemon serves on."""
    with trio.fail_after(30):
        provd = await started(nursery, tmp_path)
        mark = len(provd.lines)
        for _ in range(20):
            sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_STREAM)
            await sock.connect(("127.0.0.1", provd.appservice_port))
            await sock.send(upgrade_request(provd.appservice_port))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()  # RST instead of FIN
        await still_serves(provd)
        match = await provd.wait_for(r"event=connection\.\w+ .*peer=127\.0\.0\.1:\d+", after=mark)
        assert "Traceback" not in provd.output()
        assert match
        await still_serves(provd)
        assert await provd.stop() == 0


# --- item 10: limits before login -----------------------------------------------------------


async def test_large_message_before_login_closed_full_cap_after(tmp_path, nursery):
    """A 100 KiB message before login closes with 1009; after login it is accepted."""
    with trio.fail_after(30):
        provd = await started(nursery, tmp_path, "max_login_message_size = 16384\n")
        mark = len(provd.lines)
        pad = "x" * 100_000
        async with connect(provd.appservice_url, max_message_size=1 << 20) as ws:
            # The server stops reading at 16 KiB and closes: the send itself may break.
            with pytest.raises(tw.ConnectionClosed):
                await ws.send_message(json.dumps({"mt": "AppChallenge", "pad": pad}))
                await ws.get_message()  # never an AppChallengeResult
        await provd.wait_for(
            r"event=appservice\.connection_lost .*reason=.closed \(1009\)", after=mark
        )
        async with logged_in(provd) as conn:
            await conn.ws.send_message(json.dumps({"mt": "SomethingNew", "pad": pad}))
            await conn.send(AppInfo(src="after-big"))
            assert (await conn.receive_kind(AppInfoResult)).src == "after-big"
        assert await provd.stop() == 0


async def test_handshake_timeout(tmp_path, nursery):
    """A TCP connection that never sends the upgrade is closed after handshake_timeout."""
    with trio.fail_after(20):
        provd = await started(nursery, tmp_path, "handshake_timeout = 0.5\n")
        stream = await tcp(provd)
        with trio.fail_after(5):  # the library default would be 60 s
            await closed_by_server(stream)
        await stream.aclose()
        await still_serves(provd)
        assert await provd.stop() == 0


async def test_connection_cap(tmp_path, nursery):
    """More than max_connections at once: extra ones are closed at once, one warning."""
    with trio.fail_after(30):
        provd = await started(nursery, tmp_path, "max_connections = 3\n", level="debug")
        async with logged_in(provd), logged_in(provd), logged_in(provd):
            extra = [await tcp(provd) for _ in range(5)]
            for stream in extra:
                with trio.fail_after(5):  # old code: held open, never closed
                    await closed_by_server(stream)
                await stream.aclose()
            await provd.wait_for("event=appservice.connection_limit .*limit=3")
        warnings = [line for line in provd.lines if "appservice.connection_limit" in line]
        assert len(warnings) == 1  # aggregated, not one per refusal
        await provd.wait_for("event=connection.released .*active=0")
        await still_serves(provd)  # the slots were given back
        assert await provd.stop() == 0


async def wrong_login(provd: ProvdProcess) -> None:
    """One wrong-password login, refused."""
    async with connect(provd.appservice_url) as ws:
        conn = AppWebsocket(ws)
        client = ClientLogin(identity=PBX, password="not-the-password")
        await conn.send(client.start())
        login = client.on_challenge(await conn.receive_kind(AppChallengeResult))
        await conn.send(login)
        result = await conn.receive_kind(AppLoginResult)
        assert not result.ok


async def test_login_rate_limited_with_growing_delay(tmp_path, nursery):
    """Wrong logins from one address wait ever longer; warnings are summed, not per attempt.

    A failure is counted before its refusal is sent and the next attempt is answered no
    earlier than its delay after that, so from the first AppLogin to the n-th refusal at
    least delay(1) + ... + delay(n-1) passes: a lower bound, not a timing guess.
    """
    with trio.fail_after(60):
        provd = await started(
            nursery,
            tmp_path,
            "login_delay_initial = 0.2\nlogin_delay_cap = 2.0\nlogin_report_interval = 3600.0\n",
        )
        mark = len(provd.lines)
        start = trio.current_time()
        elapsed = []
        for _ in range(5):
            await wrong_login(provd)
            elapsed.append(trio.current_time() - start)
        for n in range(2, 6):
            at_least = sum(0.2 * 2 ** (k - 1) for k in range(1, n))  # 0.2, 0.6, 1.4, 3.0
            assert elapsed[n - 1] > at_least, elapsed
        refused = [line for line in provd.lines[mark:] if "event=appservice.login_refused" in line]
        assert len(refused) == 1, refused  # the first at once, the others summed later
        assert "address=127.0.0.1" in refused[0] and "refusals=1" in refused[0]
        # The right password still gets in (after its turn); the pending refusals are then
        # reported in one line, and the address starts afresh.
        await still_serves(provd)
        await provd.wait_for(r"event=appservice\.login_refused .*refusals=4 ", after=mark)
        again = len(provd.lines)
        await wrong_login(provd)
        await provd.wait_for(
            r"event=appservice\.login_refused .*refusals=1 .*failures=1", after=again
        )
        assert await provd.stop() == 0


# --- item 13: pings on a logged-in session ----------------------------------------------------


class RawClient:
    """An AppWebsocket client on wsproto: it answers nothing unless told (no auto-pong)."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.ws = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)

    @classmethod
    async def logged_in(cls, provd: ProvdProcess) -> RawClient:
        client = cls(await tcp(provd))
        await client.answer(we.Request(host="127.0.0.1", target="/provd"))
        assert isinstance(await client.next_event(), we.AcceptConnection)
        login = ClientLogin(identity=PBX, password=INSTANCE_PASSWORD)
        await client.send(login.start())
        await client.send(login.on_challenge(await client.receive()))
        result = await client.receive()
        assert isinstance(result, AppLoginResult) and result.ok
        return client

    async def next_event(self) -> we.Event:
        while True:
            for event in self.ws.events():
                return event
            self.ws.receive_data(await self.stream.receive_some(65536))

    async def answer(self, event: we.Event) -> None:
        await self.stream.send_all(self.ws.send(event))

    async def send(self, msg) -> None:
        await self.answer(we.TextMessage(data=encode_text(msg)))

    async def receive(self):
        while True:
            event = await self.next_event()
            if isinstance(event, we.TextMessage):
                return decode_text(event.data)


async def test_ping_timeout_closes_half_open_session(tmp_path, nursery):
    """A client that logs in and then goes silent (no pongs) is noticed and closed."""
    with trio.fail_after(30):
        provd = await started(nursery, tmp_path, "ping_interval = 0.3\nping_timeout = 0.5\n")
        mark = len(provd.lines)
        client = await RawClient.logged_in(provd)
        # Now silent: nothing is read, so no pong ever goes back.
        await provd.wait_for("event=appservice.keepalive_failed .*no pong", after=mark)
        await provd.wait_for("event=appservice.session_closed", after=mark)
        await closed_by_server(client.stream)
        await client.stream.aclose()
        await still_serves(provd)
        assert await provd.stop() == 0


async def test_pings_answered_keep_session_open(tmp_path, nursery):
    """A client that answers pings keeps its session through many ping rounds."""
    with trio.fail_after(30):
        provd = await started(nursery, tmp_path, "ping_interval = 0.1\nping_timeout = 5.0\n")
        mark = len(provd.lines)
        client = await RawClient.logged_in(provd)
        pings = 0
        while pings < 5:
            event = await client.next_event()
            if isinstance(event, we.Ping):
                pings += 1
                await client.answer(event.response())
        await client.send(AppInfo(src="alive"))
        assert (await client.receive()).src == "alive"
        assert not any("keepalive_failed" in line for line in provd.lines[mark:])
        await client.stream.aclose()
        assert await provd.stop() == 0


# --- item 4: who may name the Devices URL -------------------------------------------------------


def stored_devices_url(provd: ProvdProcess) -> str | None:
    conn = sqlite3.connect(provd.workdir / "provd.db")
    try:
        row = conn.execute("SELECT value FROM settings WHERE key = 'devices_url'").fetchone()
    finally:
        conn.close()
    return row[0] if row else None


def devices(url: str) -> Service:
    return Service(name="devices-api", url=url, info={"apis": {"com.innovaphone.devices": {}}})


BAD_URL = "http://127.0.0.1:1/example.com/devices/"
GOOD_URL = "ws://127.0.0.1:1/example.com/devices/"


async def subscribed(pbx: AppWebsocket) -> str:
    """Announce a PBX on a logged-in session; returns the src of provd's SubscribeServices."""
    await pbx.send(PbxInfo(domain="example.com", pbx="master", apis=("Services",)))
    return (await pbx.receive_kind(SubscribeServices)).src


async def test_devices_url_http_from_pbx_refused_not_stored(tmp_path, nursery):
    """http:// from the PBX: refused, logged once naming URL and PBX, not stored; then a
    ws:// one from the same PBX is taken."""
    with trio.fail_after(30):
        provd = await started(nursery, tmp_path)
        mark = len(provd.lines)
        async with logged_in(provd) as pbx:
            src = await subscribed(pbx)
            for _ in range(2):
                await pbx.send(ServicesInfo(services=(devices(BAD_URL),), src=src))
            await pbx.send(AppInfo(src="sync"))  # handled in order: both ServicesInfo done
            assert (await pbx.receive_kind(AppInfoResult)).src == "sync"
            assert stored_devices_url(provd) is None
            line = await provd.wait_for("event=pbx.devices_url_refused .*", after=mark)
            assert BAD_URL in line.group(0) and "pbx=master" in line.group(0)
            assert sum("devices_url_refused" in x for x in provd.lines[mark:]) == 1
            await pbx.send(ServicesInfo(services=(devices(GOOD_URL),), src=src))
            await provd.wait_for("event=pbx.devices_service", after=mark)
        assert stored_devices_url(provd) == GOOD_URL
        await still_serves(provd)
        assert await provd.stop() == 0


async def test_devices_url_from_users_login_ignored(tmp_path, nursery):
    """A ServicesInfo on a Users-service login (no PbxInfo, no subscription) is ignored."""
    with trio.fail_after(30):
        provd = await started(nursery, tmp_path)
        mark = len(provd.lines)
        async with logged_in(provd, USERS) as users:
            await users.send(ServicesInfo(services=(devices(GOOD_URL),)))
            await users.send(AppInfo(src="sync"))
            assert (await users.receive_kind(AppInfoResult)).src == "sync"
            assert stored_devices_url(provd) is None
            await provd.wait_for("event=appservice.services_info_untrusted", after=mark)
        assert not any("pbx.devices_service" in x for x in provd.lines[mark:])
        assert await provd.stop() == 0

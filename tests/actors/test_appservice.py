"""The AppWebsocket side of the daemon, driven by the protocol core's client pieces."""

from contextlib import asynccontextmanager

import pytest
import trio
import trio_websocket as tw

from provd.protocol import LoginRefused
from provd.protocol.login import Identity
from provd.protocol.messages import (
    AppInfo,
    AppInfoResult,
    CheckBuild,
    CheckBuildResult,
    KeepAlive,
    PbxInfo,
    ProvisioningPhone,
    ProvisioningPhoneResult,
    Service,
    ServicesInfo,
    SubscribeServices,
)
from provd.transport import AppWebsocket, ConnectionLost, connect, login_with_password

from .conftest import PASSWORD

PBX = Identity(
    app="provd",
    domain="example.com",
    sip="provd",
    guid="g",
    dn="provd",
    info={"appobj": "provd", "cn": "provd"},
)


@asynccontextmanager
async def logged_in(url, password=PASSWORD):
    async with connect(url) as ws:
        conn = AppWebsocket(ws)
        await login_with_password(conn, PBX, password)
        yield conn


async def test_app_info_publishes_provisioning(daemon):
    """AppInfo is answered with com.innovaphone.provisioning and its title; src echoed.
    CheckBuild is answered without a url (a url makes the JS client redirect)."""
    _, bound = daemon
    with trio.fail_after(5):
        async with logged_in(bound.appservice_url) as conn:
            await conn.send(AppInfo(app="provd", src="a1"))
            answer = await conn.receive_kind(AppInfoResult)
            assert answer.src == "a1"
            assert answer.info["apis"]["com.innovaphone.provisioning"] == {"title": "provd"}
            await conn.send(CheckBuild(url="x", src="b"))
            build = await conn.receive_kind(CheckBuildResult)
            assert build.src == "b" and build.url is None


async def test_wrong_password_refused_and_closed(daemon):
    """A wrong instance password is refused and the socket closed."""
    _, bound = daemon
    with trio.fail_after(5):
        async with connect(bound.appservice_url) as ws:
            conn = AppWebsocket(ws)
            with pytest.raises(LoginRefused):
                await login_with_password(conn, PBX, "wrong")
            with pytest.raises(ConnectionLost):
                await conn.receive()


async def test_pbx_info_subscribes_services_and_learns_devices(daemon):
    """After PbxInfo provd subscribes to Services; ServicesInfo sets and stores the Devices URL."""
    d, bound = daemon
    with trio.fail_after(5):
        async with logged_in(bound.appservice_url) as conn:
            await conn.send(
                PbxInfo(domain="example.com", pbx="master", apis=("PbxApi", "Services"))
            )
            sub = await conn.receive_kind(SubscribeServices)
            devices = Service(
                name="devices-api",
                url="ws://127.0.0.1:1/example.com/devices/",
                info={"apis": {"com.innovaphone.devices": {}}},
            )
            await conn.send(ServicesInfo(services=(devices,), src=sub.src))
            await conn.send(KeepAlive())
            if d.locator.url != devices.url:
                await d.locator.wait_changed()
            assert d.locator.url == devices.url
            assert await d.store.call(lambda db: db.setting("devices_url")) == devices.url
            assert d.app_ctx.current_pbx() is not None


async def test_malformed_message_closes_only_that_session(daemon):
    """Garbage on one session closes it; another session is unaffected."""
    _, bound = daemon
    with trio.fail_after(5):
        async with (
            logged_in(bound.appservice_url) as good,
            logged_in(bound.appservice_url) as bad,
        ):
            await bad.ws.send_message("{not json")
            with pytest.raises(ConnectionLost):
                while True:
                    await bad.receive()
            await good.send(AppInfo(src="still"))
            assert (await good.receive_kind(AppInfoResult)).src == "still"


async def test_unknown_message_ignored(daemon):
    """An unknown mt does not close the session."""
    _, bound = daemon
    with trio.fail_after(5):
        async with logged_in(bound.appservice_url) as conn:
            await conn.ws.send_message('{"mt":"SomethingNew","api":"Future"}')
            await conn.send(AppInfo(src="after"))
            assert (await conn.receive_kind(AppInfoResult)).src == "after"


async def test_message_before_login_closes(daemon):
    """A message other than the login before login closes the connection."""
    _, bound = daemon
    with trio.fail_after(5):
        async with connect(bound.appservice_url) as ws:
            conn = AppWebsocket(ws)
            await conn.send(AppInfo())
            with pytest.raises(ConnectionLost):
                await conn.receive()


async def test_login_timeout(daemon):
    """A client that never logs in is disconnected after login_timeout."""
    _, bound = daemon
    with trio.fail_after(5):
        async with connect(bound.appservice_url) as ws:
            with pytest.raises(ConnectionLost):
                await AppWebsocket(ws).receive()


async def test_oversized_message_closes(daemon):
    """A message larger than the cap closes the session."""
    _, bound = daemon
    with trio.fail_after(5):
        async with logged_in(bound.appservice_url) as conn:
            with pytest.raises((ConnectionLost, tw.ConnectionClosed)):
                await conn.ws.send_message('{"mt":"AppInfo","x":"' + "a" * (2 << 20) + '"}')
                await conn.receive()
            assert conn.ws.closed.code == 1009  # message too big


async def test_bad_mac_answered_with_error(daemon):
    """ProvisioningPhone with a bad MAC is answered error, src echoed, session kept."""
    _, bound = daemon
    with trio.fail_after(5):
        async with logged_in(bound.appservice_url) as conn:
            await conn.send(ProvisioningPhone(mac="zz", code="1", src="p1"))
            answer = await conn.receive_kind(ProvisioningPhoneResult)
            assert (answer.result, answer.src) == ("error", "p1")
            assert "invalid MAC" in answer.error


async def test_provisioning_without_devices_times_out_with_error(tmp_path, nursery):
    """With no Devices known, ProvisioningPhone is answered error after the timeout."""
    from provd.actors.daemon import Daemon

    from .conftest import make_config

    d = Daemon(make_config(tmp_path, provisioning={"timeout": 0.3}))
    bound = await nursery.start(d.run)
    with trio.fail_after(5):
        async with logged_in(bound.appservice_url) as conn:
            await conn.send(ProvisioningPhone(mac="00:04:f2:aa:bb:cc", code="1", src="p"))
            answer = await conn.receive_kind(ProvisioningPhoneResult)
            assert answer.result == "error" and "did not complete" in answer.error
            record = d.directory.get("0004f2aabbcc")
            assert record is not None and record.state == "pending"
    d.shutdown()


async def test_tls_app_service(tmp_path, nursery):
    """With tls_cert/tls_key the app service speaks wss and logins work over it."""
    import ssl

    from provd.actors.daemon import Daemon

    from ..tlsutil import self_signed
    from .conftest import make_config

    cert, key = self_signed(tmp_path)
    d = Daemon(make_config(tmp_path, appservice={"tls_cert": str(cert), "tls_key": str(key)}))
    bound = await nursery.start(d.run)
    assert bound.appservice_url.startswith("wss://")
    context = ssl.create_default_context(cafile=str(cert))
    with trio.fail_after(5):
        async with connect(bound.appservice_url, ssl_context=context) as ws:
            conn = AppWebsocket(ws)
            await login_with_password(conn, PBX, PASSWORD)
            await conn.send(AppInfo(src="tls"))
            assert (await conn.receive_kind(AppInfoResult)).src == "tls"
    d.shutdown()

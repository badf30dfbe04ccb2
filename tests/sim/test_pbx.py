"""The simulated PBX against a test playing provd (spec sections 2, 3, 7), over loopback."""

import random

import trio

from provd.backoff import Backoff
from provd.protocol import crypto
from provd.protocol.messages import (
    DEVICES_API,
    PROVISIONING_API,
    AppInfo,
    GetLoginInfo,
    GetLoginInfoResult,
    GetNodeInfo,
    GetNodeInfoResult,
    GetServiceLogin,
    GetServiceLoginResult,
    KeepAlive,
    PbxInfo,
    PresenceUpdate,
    ServicesInfo,
    SetPresence,
    SetPresenceResult,
    SubscribePresence,
    SubscribePresenceResult,
    SubscribeServices,
    SubscribeServicesResult,
    UnknownMessage,
    app_info_result,
)
from provd.sim import Party, Simulator
from provd.transport import AppWebsocket, connect, login_as_service

from .helpers import HANG, FakeProvd, pbx_handshake, sim_config


class TestLogin:
    async def test_login_pbxinfo_appinfo(self, sim, fake_provd):
        """The App object logs in with a PBX-shaped info, then sends PbxInfo and AppInfo."""
        with trio.fail_after(HANG):
            peer = await fake_provd.next_peer()
            login = peer.login.login
            assert (login.app, login.domain, login.sip, login.pbx_obj) == (
                "provd",
                "example.com",
                "provd",
                "provd",
            )
            assert list(login.info) == ["appobj", "cn", "apps", "appurl"]
            assert login.info["apps"] == [{"name": "provd"}]
            assert login.info["appurl"] == "http" + fake_provd.url.removeprefix("ws")
            info = await peer.next()
            assert isinstance(info, PbxInfo)
            assert (info.domain, info.pbx_dns) == ("example.com", "pbx.example.com")
            assert info.apis == ("PbxApi", "Services", "PbxAdminApi")
            assert isinstance(await peer.next(), AppInfo)
            await sim.pbx.wait_logged_in()
        assert sim.pbx.status.connected

    async def test_wrong_password_refused_and_retried_with_backoff(self, nursery):
        """provd refuses a wrong App-object password; the PBX retries, doubling its delay."""
        fake = await FakeProvd(password="something-else").start(nursery)
        sim = Simulator(sim_config(), backoff=Backoff(initial=0.01, cap=0.04, rng=random.Random(1)))
        sim.set_provd(fake.url)
        await nursery.start(sim.run)
        with trio.fail_after(HANG):
            await sim.pbx.watch.wait_until(lambda: sim.pbx.status.refusals >= 4)
        assert fake.refused >= 4 and sim.pbx.status.logins == 0
        for attempt, delay in enumerate(sim.pbx.status.delays[:4]):
            ceiling = min(0.04, 0.01 * 2**attempt)
            assert ceiling / 2 <= delay <= ceiling

    async def test_reconnects_after_provd_goes_away(self, sim, fake_provd):
        """When provd closes the connection the PBX logs in again, and backs off first."""
        with trio.fail_after(HANG):
            peer = await fake_provd.next_peer()
            await peer.conn.close()
            await fake_provd.next_peer()
            await sim.pbx.wait_logged_in(2)
        assert sim.pbx.status.delays

    async def test_reject_logins_fault(self, sim, fake_provd):
        """With the PBX fault on, the App object uses a wrong password and is refused."""
        with trio.fail_after(HANG):
            peer = await fake_provd.next_peer()
            sim.faults.reject_logins(Party.PBX)
            await peer.conn.close()
            await sim.pbx.watch.wait_until(lambda: fake_provd.refused >= 1)
            sim.faults.reject_logins(Party.PBX, False)
            await fake_provd.next_peer()


class TestServices:
    async def subscribe(self, peer):
        await pbx_handshake(peer)
        await peer.conn.send(SubscribeServices(src="sub-1"))
        result = await peer.next()
        assert isinstance(result, SubscribeServicesResult) and result.src == "sub-1"
        info = await peer.next()
        assert isinstance(info, ServicesInfo) and info.src == "sub-1"
        return info

    async def test_services_info_lists_devices_and_provd(self, sim, fake_provd):
        """ServicesInfo lists Devices (URL ending in /) and provd with its published API."""
        with trio.fail_after(HANG):
            info = await self.subscribe(await fake_provd.next_peer())
        devices = info.find(DEVICES_API)
        assert devices is not None and devices.url.endswith("/")
        assert devices.url == sim.addresses.devices_url
        assert "apis" in devices.info
        provd = info.find(PROVISIONING_API)
        assert provd is not None and provd.url == fake_provd.url
        assert provd.info["apis"][PROVISIONING_API] == {}  # from provd's service info

    async def test_change_pushes_new_services_info(self, sim, fake_provd):
        """Moving the Devices service pushes a fresh ServicesInfo with the new URL."""
        with trio.fail_after(HANG):
            peer = await fake_provd.next_peer()
            await self.subscribe(peer)
            sim.move_devices("ws://127.0.0.1:1/moved/devices/")
            info = await peer.next()
        assert isinstance(info, ServicesInfo) and info.src == "sub-1"
        assert info.find(DEVICES_API).url == "ws://127.0.0.1:1/moved/devices/"

    async def test_service_login_to_devices_works(self, sim, fake_provd):
        """provd logs into Devices with the login the PBX makes (GetServiceLogin)."""
        with trio.fail_after(HANG):
            peer = await fake_provd.next_peer()
            info = await self.subscribe(peer)
            devices = info.find(DEVICES_API)

            async def ask_pbx(request: GetServiceLogin) -> GetServiceLoginResult:
                await peer.conn.send(
                    GetServiceLogin(app=request.app, challenge=request.challenge, src="gsl")
                )
                result = await peer.next()
                assert isinstance(result, GetServiceLoginResult) and result.src == "gsl"
                return result

            async with connect(devices.url) as ws:
                conn = AppWebsocket(ws)
                key = await login_as_service(conn, devices.name, ask_pbx, peer.session_key)
                await conn.send(GetLoginInfo(src="li"))
                result = await conn.receive()
        assert isinstance(result, GetLoginInfoResult) and result.src == "li"
        assert sim.domain.is_live_key(result.key) is False  # session closed with the socket
        assert len(key) == 64

    async def test_service_login_digest_uses_target_password(self, sim, fake_provd):
        """The digest is computed with the target's password; the key decrypts to its
        session key under this connection's key."""
        with trio.fail_after(HANG):
            peer = await fake_provd.next_peer()
            await pbx_handshake(peer)
            await peer.conn.send(GetServiceLogin(app="provd@example.com", challenge="4711"))
            result = await peer.next(skip=(ServicesInfo,))
        assert isinstance(result, GetServiceLoginResult) and not result.error
        expected = crypto.login_digest(
            app=result.app,
            domain=result.domain,
            sip=result.sip,
            guid=result.guid,
            dn=result.dn,
            info=result.info,
            challenge="4711",
            password=sim.config.provd.password,
        )
        assert result.digest == expected
        assert crypto.app_decrypt(result.salt, peer.session_key, result.key) == crypto.session_key(
            "4711", sim.config.provd.password
        )

    async def test_unknown_service_is_an_error(self, sim, fake_provd):
        """GetServiceLogin for a service the PBX does not know is answered with an error."""
        with trio.fail_after(HANG):
            peer = await fake_provd.next_peer()
            await pbx_handshake(peer)
            await peer.conn.send(GetServiceLogin(app="nope@example.com", challenge="1", src="x"))
            result = await peer.next(skip=(ServicesInfo,))
        assert isinstance(result, GetServiceLoginResult)
        assert result.error and result.src == "x" and not result.digest

    async def test_drop_after_message_fault(self, sim, fake_provd):
        """drop_after(PBX, "SubscribeServices") closes the session; the PBX reconnects."""
        sim.faults.drop_after(Party.PBX, "SubscribeServices")
        with trio.fail_after(HANG):
            peer = await fake_provd.next_peer()
            await pbx_handshake(peer)
            await peer.conn.send(SubscribeServices())
            await fake_provd.next_peer()
            await sim.pbx.wait_logged_in(2)
        assert sim.faults.dropped == [(Party.PBX, "SubscribeServices", "received")]


class TestPbxApiOnTheWire:
    async def test_keepalive_and_unknown_ignored_then_node_info(self, sim, fake_provd):
        """KeepAlive and an unknown mt get no answer and keep the session; GetNodeInfo works."""
        with trio.fail_after(HANG):
            peer = await fake_provd.next_peer()
            await pbx_handshake(peer)
            await peer.conn.send(KeepAlive())
            await peer.conn.send(UnknownMessage(mt="Bogus", body={"mt": "Bogus"}))
            await peer.conn.send(GetNodeInfo(src="n"))
            result = await peer.next(skip=(ServicesInfo,))
        assert isinstance(result, GetNodeInfoResult) and result.src == "n"
        assert (result.name, result.country_code, result.prefix_intl) == ("node-a", "49", "00")

    async def test_presence_subscription_gets_updates(self, sim, fake_provd):
        """SubscribePresence → result, PresenceState, PresenceUpdate; SetPresence pushes."""
        with trio.fail_after(HANG):
            peer = await fake_provd.next_peer()
            await pbx_handshake(peer)
            await peer.conn.send(SubscribePresence(sip="alice", src="p"))
            assert isinstance(await peer.next(skip=(ServicesInfo,)), SubscribePresenceResult)
            state = await peer.next()
            assert state.up and state.num == "201" and state.src == "p"
            assert isinstance(await peer.next(), PresenceUpdate)
            await peer.conn.send(SetPresence(sip="alice", contact="tel:", activity="busy", src="s"))
            result = await peer.next()
            update = await peer.next()
        assert isinstance(result, SetPresenceResult) and result.error is None
        assert isinstance(update, PresenceUpdate) and update.src == "p"
        assert update.presence[0].activity == "busy"


async def test_app_info_answer_is_what_gets_listed(sim, fake_provd):
    """provd's own AppInfoResult (not a guess) decides what ServicesInfo says about it."""
    with trio.fail_after(HANG):
        peer = await fake_provd.next_peer()
        await peer.next()
        app_info = await peer.next()
        await peer.conn.send(app_info_result(app_info, title="Custom Title", hidden=True))
        await sim.pbx.watch.wait_until(lambda: sim.pbx.status.app_info is not None)
    entry = sim.registry.find(PROVISIONING_API)
    assert entry.apis == {PROVISIONING_API: {}}  # the service info (pbx.service_apis_from)
    assert sim.pbx.status.app_info["apis"] == {PROVISIONING_API: {"title": "Custom Title"}}

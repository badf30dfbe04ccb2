"""The simulated Devices app against test clients (spec sections 5 and 6), over loopback.

The Devices-API client logs in with the transport's own login; the sysclient side is
provd's own :class:`SysclientDevice` core, so both sides' code paths are exercised.
"""

import httpx
import pytest
import trio
from trio_websocket import ConnectionClosed

from provd.protocol import LoginRefused
from provd.protocol.login import Identity
from provd.protocol.messages import (
    DeviceProvisioned,
    GetLoginInfo,
    GetLoginInfoResult,
    GetProvisionedDevice,
    GetProvisionedDeviceResult,
    GetProvisioningCategories,
    GetProvisioningCategoriesResult,
    GetProvisioningCode,
    GetProvisioningCodeResult,
)
from provd.protocol.sysclient import (
    AdminPasswordReceived,
    Authenticated,
    ConfigReceived,
    Identify,
    PasswordAssigned,
    TunnelEvent,
    TunnelReceived,
    decrypt_turn_password,
    encode_frame,
)
from provd.protocol.tunnel import TunnelEndpoint
from provd.sim import CODE_TTL, ROLLOUT_TTL, Direction, Party, Simulator
from provd.transport import AppWebsocket, ConnectionLost, connect, login_with_password

from .helpers import (
    ADMIN_PASSWORD,
    DEVICES_PASSWORD,
    HANG,
    TURN_PASSWORD,
    device_events,
    devices_client,
    sim_config,
    sysclient_connect,
)

MAC = "001565aabbcc"
BODY = b"<html>" + b"x" * 40 + b"</html>"
PAGE = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n%s" % (
    len(BODY),
    BODY,
)
IDENT = Identify(id=MAC, product="provd", version="1", name="Desk")


def initial_done(events):
    return any(isinstance(e, ConfigReceived) and e.completes_initial for e in events)


async def issue_code(conn, category="Phones", **fields):
    await conn.send(GetProvisioningCode(category=category, src="c", **fields))
    result = await conn.receive()
    assert isinstance(result, GetProvisioningCodeResult) and result.src == "c"
    return result


async def closed(ws) -> bool:
    """True once the server closed the socket (any further message means it did not)."""
    try:
        await ws.get_message()
    except ConnectionClosed:
        return True
    return False


async def provision(sim, nursery, ident=IDENT):
    """A device provisioned with a fresh code; returns (ws, device, events, code)."""
    async with devices_client(sim) as api:
        code = (await issue_code(api)).code
    ws, device = await sysclient_connect(sim, nursery, ident, code=code)
    events = await device_events(ws, device, initial_done)
    return ws, device, events, code


class TestApi:
    async def test_wrong_digest_refused(self, sim):
        """A login with the wrong password is refused."""
        with trio.fail_after(HANG), pytest.raises(LoginRefused):
            async with devices_client(sim, password="wrong"):
                pass

    async def test_reject_logins_fault(self, sim):
        """With the fault on, even the right password is refused."""
        sim.faults.reject_logins(Party.DEVICES_API)
        with trio.fail_after(HANG), pytest.raises(LoginRefused):
            async with devices_client(sim):
                pass

    async def test_login_info_key_lives_with_session(self, sim):
        """GetLoginInfo's GUID key is live while the session is, and admin for the instance
        domain."""
        with trio.fail_after(HANG):
            async with devices_client(sim) as api:
                await api.send(GetLoginInfo(src="k"))
                info = await api.receive()
                assert isinstance(info, GetLoginInfoResult) and info.src == "k" and info.admin
                assert len(info.key) == 36 and sim.domain.is_live_key(info.key)
            await sim.watch.wait_until(lambda: not sim.domain.is_live_key(info.key))

    async def test_categories_split_over_results_with_last(self, sim):
        """Three categories with two per result: two results, only the second has last."""
        with trio.fail_after(HANG):
            async with devices_client(sim) as api:
                await api.send(GetProvisioningCategories(src="cats"))
                first, second = await api.receive(), await api.receive()
        assert isinstance(first, GetProvisioningCategoriesResult)
        assert (first.last, second.last) == (False, True)
        assert first.src == second.src == "cats"
        names = [c.name for c in first.categories + second.categories]
        assert names == ["Phones", "Rollout", "Gateways"]

    async def test_categories_filtered_by_type(self, sim):
        """type=GW lists only gateway categories."""
        with trio.fail_after(HANG):
            async with devices_client(sim) as api:
                await api.send(GetProvisioningCategories(type="GW"))
                result = await api.receive()
        assert result.last and [c.name for c in result.categories] == ["Gateways"]

    async def test_code_validity_15_minutes_or_7_days(self, sim, clock):
        """A code is valid 15 minutes; with rollout 7 days (injected clock)."""
        with trio.fail_after(HANG):
            async with devices_client(sim) as api:
                short = await issue_code(api)
                long = await issue_code(api, rollout=True)
        assert len(short.code) == 12 and short.code.isdigit()
        assert short.valid_until == int(clock.now + CODE_TTL)
        assert long.valid_until == int(clock.now + ROLLOUT_TTL)

    async def test_unknown_category_is_an_error(self, sim):
        """GetProvisioningCode for an unknown category answers with an error and no code."""
        with trio.fail_after(HANG):
            async with devices_client(sim) as api:
                result = await issue_code(api, category="Nope")
        assert result.error and not result.code

    async def test_drop_after_message_fault(self, sim):
        """drop_after(DEVICES_API, GetLoginInfo) closes the session before it answers."""
        sim.faults.drop_after(Party.DEVICES_API, "GetLoginInfo")
        with trio.fail_after(HANG), pytest.raises(ConnectionLost):
            async with devices_client(sim) as api:
                await api.send(GetLoginInfo())
                await api.receive()

    async def test_delay_fault(self, sim):
        """delay(DEVICES_API, s) holds every answer back by s seconds."""
        sim.faults.delay(Party.DEVICES_API, 0.2)
        with trio.fail_after(HANG):
            async with devices_client(sim) as api:
                started = trio.current_time()
                await api.send(GetLoginInfo())
                await api.receive()
        assert trio.current_time() - started >= 0.2


class TestSysclient:
    async def test_first_identify_gets_password_admin_password_and_config(self, sim, nursery):
        """A valid code: 32-char password, admin password (0x0003) and items ending in last."""
        with trio.fail_after(HANG):
            _ws, _device, events, _code = await provision(sim, nursery)
        (assigned,) = [e for e in events if isinstance(e, PasswordAssigned)]
        assert len(assigned.password) == 32 and assigned.password == sim.sysclient_password(MAC)
        (admin,) = [e for e in events if isinstance(e, AdminPasswordReceived)]
        assert admin.password == ADMIN_PASSWORD
        items = [e.item for e in events if isinstance(e, ConfigReceived) and e.item]
        assert [i.type for i in items] == ["PHONE", "MEDIA", "NTP", "TLS_PROFILE", "VENDOR_X"]
        assert [i.last for i in items] == [False] * 5
        last = [e for e in events if isinstance(e, ConfigReceived)][-1]
        assert last.item is None and last.completes_initial  # the bare {"last":true} frame
        assert items[0].item["coder"] == "G722,OPUS-WB,G711A,G711u,G729"
        assert items[2].item["tz"] == "Europe/Berlin"
        media = items[1].item
        assert media["turnPassword"] != TURN_PASSWORD
        assert decrypt_turn_password(media, assigned.password) == TURN_PASSWORD

    async def test_device_online_and_provisioned_on_creating_session(self, sim, nursery):
        """DeviceProvisioned arrives on the session that asked for the code; the device
        shows online through the API."""
        with trio.fail_after(HANG):
            async with devices_client(sim) as api:
                code = (await issue_code(api)).code
                ws, device = await sysclient_connect(sim, nursery, IDENT, code=code)
                await device_events(ws, device, initial_done)
                note = await api.receive()
                assert isinstance(note, DeviceProvisioned) and note.code == code
                assert note.device.hw_id == MAC and note.device.online
                await api.send(GetProvisionedDevice(code=code, src="g"))
                result = await api.receive()
            assert isinstance(result, GetProvisionedDeviceResult) and result.device.id
            await ws.aclose()
            await sim.wait_online(MAC, False)
        assert sim.device(MAC).online is False

    async def test_reconnect_with_right_digest_admitted_silently(self, sim, nursery):
        """Later connects (default variant): challenge, digest, then nothing at all."""
        with trio.fail_after(HANG):
            ws, device, _, _ = await provision(sim, nursery)
            await ws.aclose()
            await sim.wait_online(MAC, False)
            ws, device = await sysclient_connect(sim, nursery, IDENT, password=device.password)
            device.receive(await ws.get_message())
            for out in device.outgoing():
                await ws.send_message(out)
            await sim.wait_online(MAC)
        assert len(sim.passwords_issued(MAC)) == 1

    async def test_reconnect_resend_variant_gets_config(self, nursery):
        """after_digest = "resend": challenge, digest, then the full set; no new password."""
        sim = Simulator(sim_config(devices={"after_digest": "resend"}))
        await nursery.start(sim.run)
        with trio.fail_after(HANG):
            ws, device, _, _ = await provision(sim, nursery)
            await ws.aclose()
            ws, device = await sysclient_connect(sim, nursery, IDENT, password=device.password)
            events = await device_events(ws, device, initial_done)
        assert isinstance(events[0], Authenticated)
        assert not any(isinstance(e, PasswordAssigned) for e in events)
        assert len(sim.passwords_issued(MAC)) == 1

    async def test_wrong_digest_closed(self, sim, nursery):
        """A wrong password's digest: Devices closes the socket."""
        with trio.fail_after(HANG):
            ws, _, _, _ = await provision(sim, nursery)
            await ws.aclose()
            ws, device = await sysclient_connect(sim, nursery, IDENT, password="x" * 32)
            challenge = await ws.get_message()
            device.receive(challenge)
            for out in device.outgoing():
                await ws.send_message(out)
            assert await closed(ws)

    @pytest.mark.parametrize("case", ["invalid", "expired", "unknown-device"])
    async def test_refusals_close(self, sim, nursery, clock, case):
        """Invalid code, expired code, or an unknown device without code: closed."""
        with trio.fail_after(HANG):
            code = "999999999999"
            if case == "expired":
                async with devices_client(sim) as api:
                    code = (await issue_code(api)).code
                clock.now += CODE_TTL + 1
            kwargs = {"password": "p" * 32} if case == "unknown-device" else {"code": code}
            ws, _device = await sysclient_connect(sim, nursery, IDENT, **kwargs)
            assert await closed(ws)
        assert sim.device(MAC) is None

    async def test_expire_codes_fault(self, sim, nursery):
        """faults.expire_codes() makes an issued code unusable."""
        with trio.fail_after(HANG):
            async with devices_client(sim) as api:
                code = (await issue_code(api)).code
            sim.faults.expire_codes()
            ws, _device = await sysclient_connect(sim, nursery, IDENT, code=code)
            assert await closed(ws)

    async def test_mac_in_another_domain_closed(self, sim, nursery):
        """A MAC provisioned in one domain is refused a code of another."""
        with trio.fail_after(HANG):
            ws, _, _, _ = await provision(sim, nursery)
            await ws.aclose()
            async with devices_client(sim, domain="other.org") as api:
                code = (await issue_code(api)).code
            ws, _device = await sysclient_connect(sim, nursery, IDENT, code=code)
            assert await closed(ws)
        assert sim.device(MAC).domain_id == 1

    async def test_config_change_pushed_to_connected_device(self, sim, nursery):
        """Changing a category's coder pushes a PHONE item, flagged last, to its devices."""
        with trio.fail_after(HANG):
            ws, device, _, _ = await provision(sim, nursery)
            changed = await sim.faults.change_category("Phones", coder="OPUS-WB,G711A")
            event, bare = await device_events(ws, device, lambda ev: len(ev) >= 2)
        assert changed == {"PHONE"}
        assert event.item.type == "PHONE" and event.item.item["coder"] == "OPUS-WB,G711A"
        assert bare.item is None and not bare.completes_initial

    async def test_last_inside_config_variant(self, nursery):
        """With last_inside_config the flag sits inside ``config``; the device still sees it."""
        sim = Simulator(sim_config(devices={"last_inside_config": True, "last_frame": "item"}))
        await nursery.start(sim.run)
        with trio.fail_after(HANG):
            _ws, _device, events, _ = await provision(sim, nursery)
        assert initial_done(events)
        last = [e for e in events if isinstance(e, ConfigReceived)][-1]
        assert last.item.item.get("last") is True

    async def test_restart_drops_sysclients_they_reconnect(self, sim, nursery):
        """A Devices restart closes every sysclient; reconnecting with the digest works."""
        with trio.fail_after(HANG):
            ws, device, _, _ = await provision(sim, nursery)
            await sim.faults.restart_devices()
            assert await closed(ws)
            assert sim.online() == set() and sim.device(MAC).online is False
            ws, device = await sysclient_connect(sim, nursery, IDENT, password=device.password)
            device.receive(await ws.get_message())
            for out in device.outgoing():
                await ws.send_message(out)
            await sim.wait_online(MAC)

    async def test_drop_mid_handshake_then_retry_with_code(self, sim, nursery):
        """Dropped after identify, before the password: the same MAC retries its code."""
        sim.faults.drop_after(Party.SYSCLIENT, "IDENTIFY")
        with trio.fail_after(HANG):
            async with devices_client(sim) as api:
                code = (await issue_code(api)).code
            ws, device = await sysclient_connect(sim, nursery, IDENT, code=code)
            assert await closed(ws)
            assert sim.faults.dropped == [(Party.SYSCLIENT, "IDENTIFY", Direction.RECEIVED)]
            ws, device = await sysclient_connect(sim, nursery, IDENT, code=code)
            events = await device_events(ws, device, initial_done)
        (assigned,) = [e for e in events if isinstance(e, PasswordAssigned)]
        assert assigned.password == sim.sysclient_password(MAC)
        assert len(sim.passwords_issued(MAC)) == 2

    async def test_code_of_another_mac_refused(self, sim, nursery):
        """A code binds to the first MAC that used it."""
        with trio.fail_after(HANG):
            _ws, _, _, code = await provision(sim, nursery)
            other = Identify(id="001565000001", product="provd", version="1")
            ws, _device = await sysclient_connect(sim, nursery, other, code=code)
            assert await closed(ws)


class TestPassthrough:
    async def login_key(self, api):
        await api.send(GetLoginInfo())
        return (await api.receive()).key

    async def serve_tunnel(self, ws, device, chunks, requests):
        """The device side, forever: provd's TunnelEndpoint answering with PAGE."""
        endpoint = TunnelEndpoint(lambda req: requests.append(req) or PAGE)
        while True:
            for event in device.receive(await ws.get_message()):
                assert isinstance(event, TunnelReceived)
                if event.frame.event == TunnelEvent.RECEIVE:
                    chunks.append(int.from_bytes(event.frame.data, "big"))
                for frame in endpoint.receive(event.frame):
                    if frame.event == TunnelEvent.RECEIVE_RESULT:
                        assert len(frame.data) <= chunks[-1]
                    await ws.send_message(encode_frame(frame))

    async def test_relays_request_through_tunnel_frames(self, sim, nursery):
        """An HTTP request reaches the device through tunnel frames, honouring the receive
        length (7 bytes here), and the device's answer comes back."""
        chunks: list[int] = []
        requests: list[bytes] = []
        with trio.fail_after(HANG):
            ws, device, _, _ = await provision(sim, nursery)
            nursery.start_soon(self.serve_tunnel, ws, device, chunks, requests)
            async with devices_client(sim) as api, httpx.AsyncClient() as http:
                key = await self.login_key(api)
                response = await http.get(
                    f"{sim.addresses.passthrough_base}{MAC}/{key}/admin/index.html?x=1"
                )
        assert response.status_code == 200
        assert response.content == BODY
        assert response.headers["content-type"] == "text/html"
        assert set(chunks) == {7} and len(chunks) >= len(PAGE) // 7
        assert requests[0].startswith(b"GET /admin/index.html?x=1 HTTP/1.1\r\n")

    async def test_bad_key_403_unknown_device_404_offline_502(self, sim, nursery):
        """Without a live key: 403; unknown MAC: 404; known but offline: 502."""
        with trio.fail_after(HANG):
            ws, _, _, _ = await provision(sim, nursery)
            await ws.aclose()
            await sim.wait_online(MAC, False)
            base = sim.addresses.passthrough_base
            async with devices_client(sim) as api, httpx.AsyncClient() as http:
                key = await self.login_key(api)
                forbidden = await http.get(f"{base}{MAC}/not-a-key/")
                unknown = await http.get(f"{base}0015650000ff/{key}/")
                offline = await http.get(f"{base}{MAC}/{key}/")
        assert (forbidden.status_code, unknown.status_code, offline.status_code) == (403, 404, 502)


async def test_unknown_path_closed(sim):
    """A websocket to a path that is neither the API nor sysclients is closed."""
    url = sim.addresses.devices_url.replace("/devices/", "/other/")
    with trio.fail_after(HANG):
        async with connect(url) as ws:
            assert await closed(ws)


async def test_plain_login_identity_domain_selects_domain(sim):
    """A login for another domain is not admin and sees that domain's categories."""
    with trio.fail_after(HANG):
        async with connect(sim.addresses.devices_url) as ws:
            api = AppWebsocket(ws)
            await login_with_password(api, Identity(app="x", domain="other.org"), DEVICES_PASSWORD)
            await api.send(GetLoginInfo())
            info = await api.receive()
            await api.send(GetProvisioningCategories())
            cats = await api.receive()
    assert info.admin is False
    assert [(c.name, c.domain_id) for c in cats.categories] == [("Phones", 2)]


async def test_state_file_survives_a_restart(tmp_path, nursery):
    """With state_file set, a provisioned device (and its password) is known after a
    restart of the simulator."""
    config = sim_config(state_file=str(tmp_path / "state.json"))
    first = Simulator(config)
    with trio.fail_after(HANG):
        async with trio.open_nursery() as inner:
            await inner.start(first.run)
            ws, device, _, _ = await provision(first, inner)
            await first.saved.wait_until(lambda: first.unsaved_changes == 0)
            inner.cancel_scope.cancel()
        second = Simulator(config)
        await nursery.start(second.run)
        ws, device = await sysclient_connect(second, nursery, IDENT, password=device.password)
        device.receive(await ws.get_message())
        for out in device.outgoing():
            await ws.send_message(out)
        await second.wait_online(MAC)
    assert device.state.value == "answered"

"""Issue 9 "Fidelity": AppWebsocket behaviour the innovaphone side relies on.

Each test drives an in-process daemon over loopback websockets (with the simulator where the
whole installation matters) and fails on the code before the fix it names.
"""

from contextlib import asynccontextmanager

import pytest
import trio
from structlog.testing import capture_logs

from provd.actors.daemon import Daemon
from provd.backoff import Backoff
from provd.config import ConfigError
from provd.protocol import crypto
from provd.protocol.login import Identity
from provd.protocol.messages import (
    PROVISIONING_API,
    AppChallenge,
    AppChallengeResult,
    AppCheckLogin,
    AppCheckLoginResult,
    AppInfo,
    AppInfoResult,
    AppLogin,
    AppLoginResult,
    CheckBuild,
    CheckBuildResult,
    ProvisioningPhone,
    ProvisioningPhoneResult,
)
from provd.protocol.messages.provisioning import MAX_MEMBER, MAX_PASSWORD_HEX
from provd.sim import Phone, Simulator
from provd.transport import AppWebsocket, ConnectionLost, connect, login_with_password

from ..actors.conftest import PASSWORD, make_config
from ..e2e.harness import sim_config
from ..tlsutil import self_signed

PBX = Identity(app="provd", domain="example.com", sip="provd", guid="g", dn="provd")
ALICE = Phone(mac="00:15:65:0f:00:01", user="alice", cn="Alice", password="Alice-Pwd-f1")


@asynccontextmanager
async def running(tmp_path, nursery, **sections):
    daemon = Daemon(make_config(tmp_path, **sections))
    bound = await nursery.start(daemon.run)
    try:
        yield daemon, bound
    finally:
        daemon.shutdown()


@asynccontextmanager
async def logged_in(url):
    async with connect(url) as ws:
        conn = AppWebsocket(ws)
        await login_with_password(conn, PBX, PASSWORD)
        yield conn


async def installation(nursery, bound, *, pbx=None, devices=None):
    """A simulator whose PBX and Users service point at the in-process daemon."""
    overrides = {"provd": {"url": bound.appservice_url + "provd", "password": PASSWORD}}
    if pbx:
        overrides["pbx"] = pbx
    if devices:
        overrides["devices"] = devices
    sim = Simulator(sim_config(**overrides), backoff=Backoff(initial=0.05, cap=0.3))
    await nursery.start(sim.run)
    return sim


# --- item 1: where the provisioning API is published -------------------------------------


@pytest.mark.parametrize("source", ["service_info", "app_info"])
async def test_users_finds_provd_through_services_info(tmp_path, nursery, source):
    """Found 1: a PBX listing a service's *service info* in ServicesInfo (the SDK's
    AppWebsocketServiceInfo) lists provd, and so does one reading info.apis; the Users
    service finds provd there and provisions a phone. Before: only info.apis was filled,
    so a service-info PBX never listed provd."""
    async with running(tmp_path, nursery) as (_daemon, bound):
        sim = await installation(nursery, bound, pbx={"service_apis_from": source})
        with trio.fail_after(20):
            (result,) = await sim.provision([ALICE], wait=10)
        assert result.ok, result
        listed = sim.registry.services_info().find(PROVISIONING_API)
        assert listed is not None and listed.url == bound.appservice_url + "provd"
        assert sim.pbx.status.service_info == {"apis": {PROVISIONING_API: {}}}
        assert PROVISIONING_API in sim.pbx.status.app_info["apis"]


async def test_app_info_result_carries_both_infos(tmp_path, nursery):
    """AppInfoResult: the app echoed, the API in info.apis and in the service info."""
    async with (
        running(tmp_path, nursery) as (_daemon, bound),
        logged_in(bound.appservice_url) as conn,
    ):
        with trio.fail_after(5):
            await conn.send(AppInfo(app="provd", src="i"))
            answer = await conn.receive_kind(AppInfoResult)
    assert (answer.app, answer.src) == ("provd", "i")
    assert answer.service_info == {"apis": {PROVISIONING_API: {}}}
    assert PROVISIONING_API in answer.info["apis"]


# --- item 7: CheckBuild and AppCheckLogin ----------------------------------------------------


async def test_check_build_before_login_answered_without_url(tmp_path, nursery):
    """Found 7: the JS client (checkBuild set) sends CheckBuild before AppChallenge; the
    answer has no url (a url makes it redirect) and the login goes on. Before: the url was
    echoed after login, and a CheckBuild before login closed the connection."""
    async with running(tmp_path, nursery) as (_daemon, bound):
        with trio.fail_after(5):
            async with connect(bound.appservice_url) as ws:
                conn = AppWebsocket(ws)
                await conn.send(CheckBuild(url="http://pbx/app.htm"))
                answer = await conn.receive_kind(CheckBuildResult)
                assert answer.url is None
                await login_with_password(conn, PBX, PASSWORD)
                await conn.send(CheckBuild(url="http://pbx/app.htm", src="again"))
                again = await conn.receive_kind(CheckBuildResult)
                assert (again.src, again.url) == ("again", None)


@pytest.mark.parametrize("form", ["login-digest", "short"])
async def test_app_check_login_right_and_wrong_password(tmp_path, nursery, form):
    """Found 7: AppCheckLogin on a fresh connection is answered (src echoed) with whether
    the digest matches the instance password; after a match the connection may log in,
    after a mismatch it is answered, then closed (no guessing oracle), with a warning.
    Before: 'AppCheckLogin before login' closed the connection unanswered."""

    def check(src: str, password: str) -> AppCheckLogin:
        challenge = "1234567890"
        if form == "short":
            digest = crypto.sha256_hex(f"provd:example.com:{challenge}:{password}")
        else:
            digest = Identity(app="provd", domain="example.com").digest(challenge, password)
        return AppCheckLogin(
            src=src, app="provd", domain="example.com", challenge=challenge, digest=digest
        )

    async with running(tmp_path, nursery) as (_daemon, bound):
        with trio.fail_after(5), capture_logs() as events:
            async with connect(bound.appservice_url) as ws:
                conn = AppWebsocket(ws)
                await conn.send(check("c1", PASSWORD))
                answer = await conn.receive_kind(AppCheckLoginResult)
                assert (answer.src, answer.ok, answer.app, answer.error) == (
                    "c1",
                    True,
                    "provd",
                    None,
                )
                await login_with_password(conn, PBX, PASSWORD)
            async with connect(bound.appservice_url) as ws:
                conn = AppWebsocket(ws)
                await conn.send(check("c2", "not-it"))
                answer = await conn.receive_kind(AppCheckLoginResult)
                assert (answer.src, answer.ok) == ("c2", False) and answer.error
                with pytest.raises(ConnectionLost):
                    await conn.receive()
    # Counted and logged by the login throttle like a wrong AppLogin (no guessing oracle).
    failed = [
        e
        for e in events
        if e["event"] == "appservice.login_refused" and "AppCheckLogin" in e["reason"]
    ]
    assert failed and failed[0]["log_level"] == "warning"


# --- item 8: tolerant decoding -----------------------------------------------------------


async def test_numeric_service_login_error_keeps_pbx_session(tmp_path, nursery):
    """Found 8: a PBX answering GetServiceLogin with a numeric error (and errorText) is
    understood: provd's PBX session stays up and the phone still gets its error text.
    Before: decoding the number failed and closed provd's PBX session."""
    async with running(tmp_path, nursery, provisioning={"timeout": 10.0, "code_attempts": 1}) as (
        _daemon,
        bound,
    ):
        sim = await installation(nursery, bound, pbx={"numeric_errors": True})
        sim.faults.refuse_service_logins(times=5)
        bad = Phone(mac="00:15:65:0f:00:09", user="mallory", password="x-Pwd-9", code="999")
        with trio.fail_after(20), capture_logs() as events:
            (result,) = await sim.provision([bad], wait=10)
            assert result.outcome == "error" and "provisioning code" in result.error
        refused = [e for e in events if e["event"] == "pbx.service_login"]
        assert refused and refused[0]["error"] == 1
        unavailable = [e for e in events if e["event"] == "devices_api.unavailable"]
        assert unavailable and "error 1" in unavailable[0]["reason"]
        assert "fault" in unavailable[0]["reason"]  # errorText made it into the reason
        assert sim.pbx.status.logins == 1 and sim.pbx.status.connected


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ('{"mt":"ProvisioningPhone","src":"m1","mac":"001565aabbcc"}', "code: missing"),
        ('{"mt":"ProvisioningPhone","src":"m1","mac":1234,"code":"1"}', "mac: expected"),
        ('{"mt":"ProvisioningPhone","src":"m1","mac":"001565aabbcc","code":[1]}', "code"),
    ],
)
async def test_malformed_provisioning_phone_answered_session_kept(tmp_path, nursery, raw, why):
    """Found 8: ProvisioningPhone missing a member or with a wrong type is answered
    result=error (src echoed) and the session stays open. Before: the session was closed."""
    async with (
        running(tmp_path, nursery) as (daemon, bound),
        logged_in(bound.appservice_url) as conn,
    ):
        with trio.fail_after(5):
            await conn.ws.send_message(raw)
            answer = await conn.receive_kind(ProvisioningPhoneResult)
            assert (answer.result, answer.src) == ("error", "m1")
            assert why in answer.error
            await conn.send(AppInfo(src="still-open"))
            assert (await conn.receive_kind(AppInfoResult)).src == "still-open"
        assert daemon.directory.get("001565aabbcc") is None


@pytest.mark.parametrize(
    "fields",
    [
        {"cn": "x" * (MAX_MEMBER + 1)},
        {"usename": "u" * 10_000},
        {"code": "9" * (MAX_MEMBER + 1)},
        {"seed1": "123456789012345", "password": "ab" * (MAX_PASSWORD_HEX // 2 + 1)},
        {"password": "p" * (MAX_MEMBER + 1)},
    ],
    ids=["cn", "usename", "code", "ciphertext", "plain-password"],
)
async def test_oversized_members_refused_and_not_stored(tmp_path, nursery, fields):
    """Found 8 (issue 8 item 12): over-long members are answered error, nothing stored."""
    async with (
        running(tmp_path, nursery) as (daemon, bound),
        logged_in(bound.appservice_url) as conn,
    ):
        base = {"mac": "00:15:65:aa:bb:01", "code": "123456789012"}
        with trio.fail_after(5):
            await conn.send(ProvisioningPhone(src="big", **{**base, **fields}))
            answer = await conn.receive_kind(ProvisioningPhoneResult)
        assert (answer.result, answer.src) == ("error", "big")
        assert "longer than" in answer.error
        assert daemon.directory.get("001565aabb01") is None
        rows = await daemon.store.call(lambda db: db.phones())
        assert rows == []


async def test_too_many_provisioning_requests_in_flight_answered_busy(tmp_path, nursery):
    """Found 8 (issue 8 item 12): one session may have a bounded number of ProvisioningPhone
    handlers in flight; beyond it the answer is error "busy" at once, and the others still
    get their own answers. Before: one task per message without bound."""
    from provd.actors.appservice import MAX_PROVISIONING_PER_SESSION as CAP

    # No Devices is known: each accepted request waits the provisioning timeout.
    async with (
        running(tmp_path, nursery, provisioning={"timeout": 3.0}) as (
            _daemon,
            bound,
        ),
        logged_in(bound.appservice_url) as conn,
    ):
        with trio.fail_after(20):
            for i in range(CAP + 1):
                mac = f"00:15:65:cc:00:{i:02x}"
                await conn.send(ProvisioningPhone(src=f"p{i}", mac=mac, code="123456789012"))
            first = await conn.receive_kind(ProvisioningPhoneResult)
            assert (first.src, first.result, first.error) == (f"p{CAP}", "error", "busy")
            # Read every other answer, so no handler is left in flight at shutdown.
            rest = [await conn.receive_kind(ProvisioningPhoneResult) for _ in range(CAP)]
        assert sorted(r.src for r in rest) == sorted(f"p{i}" for i in range(CAP))
        assert all("did not complete" in r.error for r in rest)


# --- item 10: wss to an App Platform ---------------------------------------------------------


async def test_devices_over_wss_with_ca_file(tmp_path, nursery):
    """Found 10: Devices served over wss:// with a self-signed certificate; provd given it
    as devices.ca_file provisions the phone (sysclient) over TLS. Before: no way to trust a
    private certificate (and no devices section at all)."""
    cert, key = self_signed(tmp_path)
    async with running(tmp_path, nursery, devices={"ca_file": str(cert)}) as (_d, bound):
        sim = await installation(
            nursery, bound, devices={"tls_cert": str(cert), "tls_key": str(key)}
        )
        assert sim.addresses.devices_url.startswith("wss://")
        with trio.fail_after(20):
            (result,) = await sim.provision([ALICE], wait=10)
            assert result.ok, result
            await sim.wait_online(ALICE.mac)


async def test_devices_json_api_over_wss_with_ca_file(tmp_path, nursery):
    """Found 10: the Devices JSON API connection (asking Devices why a code was refused)
    also uses devices.ca_file: the error the Users service sees carries Devices' answer."""
    cert, key = self_signed(tmp_path)
    async with running(
        tmp_path, nursery, devices={"ca_file": str(cert)}, provisioning={"code_attempts": 1}
    ) as (_d, bound):
        sim = await installation(
            nursery, bound, devices={"tls_cert": str(cert), "tls_key": str(key)}
        )
        bad = Phone(mac="00:15:65:0f:00:0a", user="eve", password="e-Pwd-1", code="4242")
        with trio.fail_after(20):
            (result,) = await sim.provision([bad], wait=10)
        assert result.outcome == "error"
        assert "Devices reports for the code" in result.error, result.error


async def test_devices_over_wss_without_ca_file_fails_verification(tmp_path, nursery):
    """Without the CA file the self-signed Devices certificate is refused (verification is
    on by default): the phone is not registered."""
    cert, key = self_signed(tmp_path)
    async with running(tmp_path, nursery, provisioning={"timeout": 1.0}) as (_d, bound):
        sim = await installation(
            nursery, bound, devices={"tls_cert": str(cert), "tls_key": str(key)}
        )
        with trio.fail_after(20):
            (result,) = await sim.provision([ALICE], wait=10)
        assert result.outcome == "error"
        assert sim.online() == set()


async def test_devices_verify_off_warns_and_connects(tmp_path, nursery):
    """devices.verify = false: a warning at start naming the key, and the connection works
    without a CA file."""
    cert, key = self_signed(tmp_path)
    with capture_logs() as events:
        async with running(tmp_path, nursery, devices={"verify": False}) as (_d, bound):
            sim = await installation(
                nursery, bound, devices={"tls_cert": str(cert), "tls_key": str(key)}
            )
            with trio.fail_after(20):
                (result,) = await sim.provision([ALICE], wait=10)
            assert result.ok, result
    warnings = [e for e in events if e["event"] == "daemon.devices_tls_unverified"]
    assert warnings and warnings[0]["log_level"] == "warning"
    assert warnings[0]["setting"] == "devices.verify"


def test_bad_ca_file_refused_naming_the_key(tmp_path):
    """A missing or non-PEM CA file is a config error naming devices.ca_file."""
    with pytest.raises(ConfigError, match=r"devices\.ca_file: .*no such file"):
        make_config(tmp_path, devices={"ca_file": str(tmp_path / "nope.pem")})
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(ConfigError, match=r"devices\.ca_file: .*junk\.pem"):
        make_config(tmp_path, devices={"ca_file": str(junk)})


# --- AppCheckLogin opens no door -----------------------------------------------------------


async def test_wrong_login_after_good_check_login_still_refused(tmp_path, nursery):
    """A matching AppCheckLogin does not log the connection in: a wrong AppLogin after it
    is still refused."""
    async with running(tmp_path, nursery) as (_daemon, bound):
        with trio.fail_after(5):
            async with connect(bound.appservice_url) as ws:
                conn = AppWebsocket(ws)
                digest = Identity(app="provd").digest("77", PASSWORD)
                await conn.send(AppCheckLogin(app="provd", challenge="77", digest=digest))
                assert (await conn.receive_kind(AppCheckLoginResult)).ok
                await conn.send(AppChallenge())
                await conn.receive_kind(AppChallengeResult)
                await conn.send(AppLogin(app="provd", digest="0" * 64))
                assert not (await conn.receive_kind(AppLoginResult)).ok

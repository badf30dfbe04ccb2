"""The admin API on the AppWebsocket server, and the App's files on the same listener.

Against the real daemon (a child process) and the simulator: who may use the API, how
requests are checked, that changes are logged with who made them and survive a restart.
"""

from __future__ import annotations

import json
import re
import sqlite3

import httpx
import trio

from provd.protocol.login import Identity
from provd.sim import Phone
from provd.sim.pbx import app_object_identity, http_url
from provd.transport import AppWebsocket, connect, login_as_service, login_with_password

from ..e2e.harness import INSTANCE_PASSWORD, start_installation

ADMIN = Identity(
    app="provd-admin", sip="provd-admin", guid="0" * 32, dn="Admin"
)  # the App's own password login (as the SDK's Connection.js builds it)


async def ask(conn: AppWebsocket, mt: str, **fields) -> dict:
    """Send one ProvdAdmin request; return its answer (indications in between are skipped)."""
    src = f"t-{mt}"
    await conn.ws.send_message(json.dumps({"api": "ProvdAdmin", "mt": mt, "src": src, **fields}))
    while True:
        answer = json.loads(await conn.ws.get_message())
        if answer.get("src") == src and answer.get("mt") == mt + "Result":
            return answer


async def test_users_service_and_pbx_logins_cannot_use_the_admin_api(tmp_path, nursery):
    with trio.fail_after(60):
        sim, provd = await start_installation(nursery, tmp_path)
        await sim.pbx.wait_subscribed()
        # The Users service's login (made by the PBX with GetServiceLogin).
        async with connect(provd.appservice_url + "provd") as ws:
            conn = AppWebsocket(ws)
            users = sim.users
            await login_as_service(
                conn, sim.config.provd.service_name, users._ask_pbx, users._pbx_key
            )
            answer = await ask(conn, "GetPhones")
            assert answer["error"] == "not an admin login" and "phones" not in answer
            answer = await ask(conn, "SetSettings", settings={"sip_transport": "tcp"})
            assert answer["error"] == "not an admin login"
        line = (await provd.wait_for(r"admin.not_admin.*mt=SetSettings")).string
        assert "by=users@example.com" in line
        # The PBX App object's own login is not an admin login either.
        async with connect(provd.appservice_url + "provd") as ws:
            conn = AppWebsocket(ws)
            identity = app_object_identity(sim.config, provd.appservice_url + "provd")
            await login_with_password(conn, identity, INSTANCE_PASSWORD)
            assert (await ask(conn, "GetSettings"))["error"] == "not an admin login"
        # Nothing was changed.
        async with connect(provd.appservice_url + "provd") as ws:
            conn = AppWebsocket(ws)
            await login_with_password(conn, ADMIN, INSTANCE_PASSWORD)
            settings = (await ask(conn, "GetSettings"))["settings"]
            assert settings["sip_transport"] == "tls"
        assert await provd.stop() == 0


async def test_admin_requests_are_checked_logged_stored_and_survive_a_restart(tmp_path, nursery):
    with trio.fail_after(90):
        _sim, provd = await start_installation(nursery, tmp_path)
        async with connect(provd.appservice_url + "provd") as ws:
            conn = AppWebsocket(ws)
            await login_with_password(conn, ADMIN, INSTANCE_PASSWORD)
            assert (await ask(conn, "GetPhones"))["phones"] == []
            # Bad requests are answered with the member named; the session stays.
            assert (await ask(conn, "GetPhone"))["error"] == "GetPhone.mac: missing"
            assert (await ask(conn, "GetPhone", mac=7))[
                "error"
            ] == "GetPhone.mac: expected a string"
            assert (await ask(conn, "GetPhone", mac="zz"))["error"].startswith("GetPhone.mac:")
            assert (await ask(conn, "Nonsense"))["error"] == "'Nonsense': not an admin request"
            answer = await ask(conn, "SetSettings", settings={"resync_interval": 5, "bogus": 1})
            fields = {e["field"] for e in answer["errors"]}
            assert fields == {"phones.resync_interval", "phones.bogus"}
            answer = await ask(conn, "SetSettings", settings={"time_zone": "Mars/Base"})
            assert answer["errors"][0]["field"] == "phones.time_zone"
            answer = await ask(conn, "SetSettings", settings={"password": "x" * 12})
            assert answer["errors"] == [
                {"field": "phones.password", "error": "set a user name with it"}
            ]
            # A good change: applied like a reload, logged with who, stored.
            answer = await ask(
                conn, "SetSettings", settings={"sip_transport": "tcp", "resync_interval": 3600}
            )
            assert "errors" not in answer and "error" not in answer, answer
            assert answer["settings"]["sip_transport"] == "tcp"
        line = (await provd.wait_for(r"admin.setting_changed.*phones.sip_transport")).string
        assert "by=provd-admin" in line
        await provd.wait_for(r"daemon.reloaded")
        db = sqlite3.connect(provd.workdir / "provd.db")
        (stored,) = db.execute("SELECT value FROM settings WHERE key = 'admin.phones'").fetchone()
        db.close()
        assert json.loads(stored) == {"sip_transport": "tcp", "resync_interval": 3600}

        assert await provd.stop() == 0
        await provd.start(nursery)
        async with connect(provd.appservice_url + "provd") as ws:
            conn = AppWebsocket(ws)
            await login_with_password(conn, ADMIN, INSTANCE_PASSWORD)
            answer = await ask(conn, "GetSettings")
            assert answer["settings"]["sip_transport"] == "tcp"
            assert answer["settings"]["resync_interval"] == 3600
            assert answer["stored"] == ["resync_interval", "sip_transport"]
        assert await provd.stop() == 0


async def test_app_files_served_with_types_caching_and_csp(tmp_path, nursery):
    with trio.fail_after(60):
        _sim, provd = await start_installation(nursery, tmp_path)
        base = http_url(provd.appservice_url) + "example.com/provd/"
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            page = await client.get("provd-admin.htm")
            assert page.status_code == 200
            assert page.headers["content-type"] == "text/html; charset=utf-8"
            assert page.headers["cache-control"] == "no-cache"
            csp = page.headers["content-security-policy"]
            assert "default-src 'none'" in csp and "script-src 'self'" in csp
            assert f"ws://{page.url.netloc.decode()}" in csp
            assert page.headers["x-content-type-options"] == "nosniff"
            build = re.search(r'data-build="([0-9a-f]{16})"', page.text)[1]
            head = await client.head("provd-admin.htm")
            assert head.status_code == 200 and head.content == b""
            assert head.headers["content-length"] == str(len(page.content))
            again = await client.get(
                "provd-admin.htm", headers={"If-None-Match": page.headers["etag"]}
            )
            assert again.status_code == 304
            for name, ctype in (("app.js", "text/javascript"), ("app.css", "text/css")):
                asset = await client.get(f"b/{build}/{name}")
                assert asset.status_code == 200
                assert asset.headers["content-type"] == f"{ctype}; charset=utf-8"
                assert "immutable" in asset.headers["cache-control"]
                assert f"b/{build}/{name}" in page.text
            assert (await client.get(f"b/{'0' * 16}/app.js")).status_code == 404
            assert (await client.get("../../etc/passwd")).status_code == 404
            assert (await client.post("provd-admin.htm", content=b"x")).status_code == 405
        # Garbage instead of HTTP: a 400, and the listener goes on serving.
        stream = await trio.open_tcp_stream("127.0.0.1", provd.appservice_port)
        await stream.send_all(b"\x16\x03\x01 not http\r\n\r\n")
        reply = await stream.receive_some(100)
        assert reply.startswith(b"HTTP/1.1 400")
        await stream.aclose()
        async with connect(provd.appservice_url + "provd") as ws:
            await login_with_password(AppWebsocket(ws), ADMIN, INSTANCE_PASSWORD)
        assert await provd.stop() == 0


async def test_phone_detail_masks_secrets_actions_and_live_updates(tmp_path, nursery):
    phone = Phone(mac="80:5e:c0:aa:00:09", user="ida", cn="Ida", password="Ida-Secret-Pwd-9")
    with trio.fail_after(60):
        sim, provd = await start_installation(nursery, tmp_path)
        async with connect(provd.appservice_url + "provd") as ws:
            conn = AppWebsocket(ws)
            await login_with_password(conn, ADMIN, INSTANCE_PASSWORD)
            first = await ask(conn, "SubscribePhones")
            assert first["phones"] == []
            assert [r.outcome for r in await sim.provision([phone])] == ["ok"]
            # Indications with the subscription's src, until the phone is provisioned.
            while True:
                update = json.loads(await conn.ws.get_message())
                assert update["src"] == "t-SubscribePhones", update
                if update["mt"] == "PhoneUpdate" and update["phone"]["state"] == "provisioned":
                    break
            mac = "805ec0aa0009"
            detail = await ask(conn, "GetPhone", mac=mac)
            text = json.dumps(detail)
            for secret in (phone.password, sim.sysclient_password(mac), "Turn-Secret-e2e"):
                assert secret not in text  # Devices items and the file are masked
            assert detail["items"]["MEDIA"]["turnPassword"] == "********"
            assert detail["file"]["name"] == f"/{mac}.cfg"
            assert "********" in detail["file"]["text"]
            assert detail["phone"]["user"] == "ida" and detail["phone"]["running"] is True
            assert "error" not in await ask(conn, "Rerender", mac=mac)
            assert "error" not in await ask(conn, "Reconnect", mac=mac)
            await provd.wait_for(r"admin.phone_reconnect.*mac=805ec0aa0009")
            assert (await ask(conn, "Reconnect", mac="805ec0ffffff"))["error"] == (
                "no phone 805ec0ffffff"
            )
        assert await provd.stop() == 0

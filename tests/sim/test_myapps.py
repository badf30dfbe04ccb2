"""The simulated myApps: the login it hands the App is one provd's server login accepts."""

import httpx
import trio

from provd.protocol.login import ServerLogin
from provd.protocol.messages import AppChallenge, AppLogin
from provd.sim import SimConfig, Simulator
from provd.sim.myapps import app_page_url, user_login


def test_get_login_verifies_with_the_app_object_password():
    sim = Simulator(SimConfig.default())
    server = ServerLogin(sim.config.provd.password)
    challenge = server.on_challenge(AppChallenge()).challenge
    login = user_login(sim.pbx, "provd-admin", challenge)
    fields = {k: login[k] for k in ("app", "domain", "sip", "guid", "dn", "info", "digest")}
    result = server.on_login(AppLogin(pbx_obj=login["pbxObj"], **fields))
    assert result.ok is True
    assert login["key"] == server.session_key
    assert (login["sip"], login["info"]["appobj"]) == ("admin", "provd")
    # An app this administrator does not have: an error, no digest.
    other = user_login(sim.pbx, "provd", challenge)
    assert other["error"] and "digest" not in other
    # A wrong App-object password makes a login provd refuses.
    server = ServerLogin(sim.config.provd.password)
    challenge = server.on_challenge(AppChallenge()).challenge
    sim.pbx.password = "not-" + sim.pbx.password
    bad = user_login(sim.pbx, "provd-admin", challenge)
    fields = {k: bad[k] for k in ("app", "domain", "sip", "guid", "dn", "info", "digest")}
    assert server.on_login(AppLogin(pbx_obj="provd-admin", **fields)).ok is False


def test_app_page_next_to_the_websocket_url():
    assert app_page_url("ws://h:1/provd", "provd-admin") == "http://h:1/provd/provd-admin.htm"
    assert app_page_url("wss://h/d/provd/", "a") == "https://h/d/provd/a.htm"


async def test_shell_page_embeds_the_app_and_answers_get_login(nursery):
    sim = Simulator(SimConfig.from_mapping({"provd": {"url": "ws://127.0.0.1:9/provd"}}))
    addresses = await nursery.start(sim.run)
    with trio.fail_after(10):
        async with httpx.AsyncClient(base_url=addresses.myapps_url) as client:
            page = await client.get("/?theme=dark")
            assert 'src="http://127.0.0.1:9/provd/provd-admin.htm?theme=dark"' in page.text
            assert (
                (await client.get("/myapps.js"))
                .headers["content-type"]
                .startswith("text/javascript")
            )
            login = (
                await client.get("/login", params={"app": "provd-admin", "challenge": "1"})
            ).json()
            assert login["mt"] == "Login" and login["pbxObj"] == "provd-admin"
            assert (await client.get("/nothing")).status_code == 404

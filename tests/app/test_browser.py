"""The admin App in a real browser (headless Chromium) against the real daemon and simulator.

myApps is the simulator's shell page: the App inside its iframe logs in through
``getLogin``, shows the phones live, and a setting changed in it reaches a phone's file.
Opened on its own, the App logs in with the instance password. The Users service's login
(made by the simulated PBX), used from the same browser, is refused the admin API
(tests/app/test_admin_api.py checks the same on the wire, with more cases).
"""

from __future__ import annotations

import functools
import json
from typing import Any

import httpx
import trio
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

from provd.phones import Vendor
from provd.phones.examples import phone_request
from provd.protocol.login import Identity
from provd.protocol.messages import GetServiceLogin, encode
from provd.sim import Phone
from provd.sim.pbx import http_url

from ..e2e.harness import INSTANCE_PASSWORD, cli, start_installation
from .browser import chromium, css, quit_browser, shot, text_in, wait

PHONES = [
    Phone(mac="80:5e:c0:aa:00:01", user="alice", cn="Alice Adler", password="Alice-Pwd-b1"),
    Phone(mac="00:04:13:aa:00:02", user="bruno", cn="Bruno Bär", password="Bruno-Pwd-b2"),
    Phone(mac="00:0b:82:aa:00:03", user="chloe", cn="Chloé Clément", password="Chloe-Pwd-b3"),
]
LATE = Phone(mac="0c:38:3e:aa:00:04", user="dara", cn="Dara Doyle", password="Dara-Pwd-b4")


def mac12(phone: Phone) -> str:
    return phone.mac.replace(":", "")


async def run(fn, *args):
    """A blocking selenium step, off the trio thread (the simulator keeps running)."""
    return await trio.to_thread.run_sync(functools.partial(fn, *args))


def rows(browser) -> dict[str, str]:
    """MAC → state text of every row in the phone table."""
    # One script, so a live re-render between two element reads cannot make them stale.
    return browser.execute_script(
        "const out = {};"
        "for (const r of document.querySelectorAll('#phones tbody tr'))"
        "  out[r.dataset.mac] = r.querySelector('.state').textContent;"
        "return out;"
    )


def open_in_myapps(browser, url: str) -> None:
    browser.get(url)
    browser.switch_to.frame(css(browser, "iframe#app"))
    text_in(browser, "#conn", "Connected as Administrator")
    wait(browser, lambda b: len(rows(b)) == len(PHONES))


def ws_challenge(browser, url: str) -> str:
    """In the browser: open a websocket to provd and ask for a challenge."""
    browser.switch_to.default_content()
    return browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "const ws = new WebSocket(arguments[0]); window.__ws = ws;"
        "ws.onmessage = (m) => { const o = JSON.parse(m.data);"
        "  if (o.mt === 'AppChallengeResult') done(o.challenge); };"
        "ws.onopen = () => ws.send(JSON.stringify({mt: 'AppChallenge'}));",
        url,
    )


def ws_login_then_admin_request(browser, login: dict[str, Any]) -> dict[str, Any]:
    """In the browser: log in with ``login``, then ask the admin API for the phones."""
    return browser.execute_async_script(
        "const done = arguments[arguments.length - 1]; const ws = window.__ws;"
        "ws.onmessage = (m) => { const o = JSON.parse(m.data);"
        "  if (o.mt === 'AppLoginResult') {"
        "    if (!o.ok) done(o); else ws.send(JSON.stringify("
        "      {api: 'ProvdAdmin', mt: 'GetPhones', src: 'users-1'}));"
        "  } else if (o.mt === 'GetPhonesResult') { ws.close(); done(o); } };"
        "ws.send(arguments[0]);",
        # As text: chromedriver would sort the keys of an object argument, and the order of
        # ``info``'s keys is part of the digest.
        json.dumps(login),
    )


def go(browser, hash_: str, ready: str) -> None:
    browser.execute_script("location.hash = arguments[0]", hash_)
    css(browser, ready)


def live_row(browser, mac: str) -> None:
    """The late phone's row shows up, provisioned, with no page load in between."""
    wait(browser, lambda b: "provisioned" in rows(b).get(mac, ""))
    assert browser.execute_script("return window.__sameDocument === true")


def filter_by_category(browser, mac: str) -> None:
    """A category set now shows live, and the category filter narrows the list to it."""
    wait(
        browser,
        lambda b: (
            b.execute_script(
                "const c = document.querySelector(`tr[data-mac='${arguments[0]}'] "
                "td[data-label=Category]`); return c && c.textContent;",
                mac,
            )
            == "Sales"
        ),
    )
    Select(browser.find_element(By.ID, "f-category")).select_by_value("Sales")
    wait(browser, lambda b: list(rows(b)) == [mac])
    Select(browser.find_element(By.ID, "f-category")).select_by_value("")
    wait(browser, lambda b: len(rows(b)) == len(PHONES) + 1)


def change_setting(browser) -> None:
    go(browser, "#/settings", "#settings-form")
    # A bad value first: the message names the field, nothing is stored.
    resync = browser.find_element(By.ID, "s-resync_interval")
    resync.clear()
    resync.send_keys("5")
    browser.find_element(By.ID, "settings-save").click()
    text_in(browser, "#s-resync_interval-error", "phones.resync_interval")
    assert resync.get_attribute("aria-invalid") == "true"
    shot(browser, "settings-error-light")
    resync.clear()
    resync.send_keys("3600")
    server = browser.find_element(By.ID, "s-time_server")
    server.clear()
    server.send_keys("ntp.admin.example")
    browser.find_element(By.ID, "settings-save").click()
    text_in(browser, "#settings-saved", "phones.time_server")


def remove_with_confirmation(browser, mac: str) -> None:
    """Remove asks first: Cancel keeps the phone, Remove takes it off the live list."""
    go(browser, f"#/phone/{mac}", "#act-remove")
    browser.find_element(By.ID, "act-remove").click()
    css(browser, "#confirm-dialog[open]")
    browser.find_element(By.ID, "confirm-cancel").click()
    wait(browser, lambda b: not b.find_element(By.ID, "confirm-dialog").get_attribute("open"))
    assert browser.find_element(By.ID, "act-remove").is_displayed()
    browser.find_element(By.ID, "act-remove").click()
    css(browser, "#confirm-dialog[open]")
    browser.find_element(By.ID, "confirm-ok").click()
    css(browser, "#phones")
    wait(browser, lambda b: mac not in rows(b) and len(rows(b)) == len(PHONES))


def screenshots(browser, mac: str) -> None:
    """The main pages, light and dark, and at 320 px (only with PROVD_SCREENSHOTS)."""
    pages = [
        ("phones", "#/phones", "#phones tbody tr"),
        ("phone", f"#/phone/{mac}", "#file-text"),
        ("health", "#/health", "#h-pbx"),
        ("settings", "#/settings", "#settings-form"),
    ]
    for theme in ("light", "dark"):
        if browser.execute_script("return document.documentElement.dataset.theme") != theme:
            browser.find_element(By.ID, "theme").click()
        for name, hash_, ready in pages:
            go(browser, hash_, ready)
            if name == "phone":  # show a Devices item, its secrets masked
                browser.find_element(By.CSS_SELECTOR, "#item-MEDIA summary").click()
            shot(browser, f"{name}-{theme}")
    browser.find_element(By.ID, "theme").click()  # back to light
    browser.set_window_size(320, 860)
    for name, hash_, ready in pages[:2]:
        go(browser, hash_, ready)
        shot(browser, f"{name}-320")
    # At 320 px nothing may overflow sideways.
    assert browser.execute_script(
        "return document.documentElement.scrollWidth <= document.documentElement.clientWidth"
    )


def keyboard_only(browser) -> None:
    """Tab reaches a phone link and Enter opens its detail page."""
    go(browser, "#/phones", "#phones tbody tr")
    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.TAB)
    for _ in range(20):
        active = browser.switch_to.active_element
        href = active.get_attribute("href") or ""
        if "#/phone/" in href:
            active.send_keys(Keys.ENTER)
            css(browser, "#act-reconnect")
            return
        active.send_keys(Keys.TAB)
    raise AssertionError("no phone link reachable with Tab")


async def test_app_in_myapps_logs_in_follows_phones_and_changes_a_setting(tmp_path, nursery):
    with trio.fail_after(180):
        sim, provd = await start_installation(nursery, tmp_path)
        assert [r.outcome for r in await sim.provision(PHONES)] == ["ok"] * 3
        for phone in PHONES:
            await sim.wait_online(phone.mac)
        assert sim.addresses is not None and sim.addresses.myapps_url
        browser, profile = await run(chromium)
        try:
            # 1. myApps' shell, the App logs in through getLogin; the demo's phones show.
            await run(open_in_myapps, browser, sim.addresses.myapps_url)
            states = await run(rows, browser)
            assert states == {mac12(p): "provisioned" for p in PHONES}
            with trio.fail_after(15):
                line = (await provd.wait_for(r"appservice.logged_in.* app=provd-admin")).string
            assert " sip=admin " in line + " "  # the administrator myApps logged in

            # 1b. the Users service's login (made by the PBX for the Users App object), used
            # from the same browser, gets no admin API.
            challenge = await run(ws_challenge, browser, provd.appservice_url + "provd")
            request = GetServiceLogin(app=sim.config.provd.service_name, challenge=challenge)
            made = sim.registry.service_login(
                request, caller=sim.users.identity, pbx_session_key=sim.users._pbx_key
            )
            login = encode(Identity.of(made).login(made.digest))
            answer = await run(ws_login_then_admin_request, browser, login)
            assert answer == {
                "api": "ProvdAdmin",
                "mt": "GetPhonesResult",
                "src": "users-1",
                "error": "not an admin login",
            }
            await run(browser.switch_to.frame, await run(css, browser, "iframe#app"))

            # 2. a live change: a phone provisioned now appears and turns provisioned.
            await run(browser.execute_script, "window.__sameDocument = true")
            async with trio.open_nursery() as inner:
                inner.start_soon(sim.provision, [LATE])
                await run(live_row, browser, mac12(LATE))

            # ... and a change to a phone already listed (its key category, set by the CLI).
            done = await run(
                functools.partial(cli, provd=provd),
                "phones",
                "keys",
                mac12(PHONES[1]),
                "--category",
                "Sales",
            )
            assert done.returncode == 0, done.stderr
            await run(filter_by_category, browser, mac12(PHONES[1]))

            # 3. a setting changed in the App reaches a phone's file; logged with who.
            await run(change_setting, browser)
            with trio.fail_after(15):
                line = (await provd.wait_for(r"admin.setting_changed.*phones.time_server.*")).string
            assert "by=admin@example.com" in line
            request = phone_request(Vendor.YEALINK, mac12(PHONES[0]))
            async with httpx.AsyncClient(base_url=provd.phones_url, timeout=10) as client:
                answer = await client.get(request.path, headers={"User-Agent": request.user_agent})
            assert answer.status_code == 200
            assert "ntp.admin.example" in answer.text

            await run(keyboard_only, browser)
            await run(remove_with_confirmation, browser, mac12(LATE))
            with trio.fail_after(15):
                line = (await provd.wait_for(r"admin.phone_removed.*mac=0c383eaa0004")).string
            assert "by=admin@example.com" in line
            await run(screenshots, browser, mac12(PHONES[0]))
        finally:
            with trio.CancelScope(shield=True):
                await run(quit_browser, browser, profile)
        assert await provd.stop() == 0


def standalone_login(browser, url: str) -> None:
    browser.get(url)
    css(browser, "#login-dialog[open]")
    field = browser.find_element(By.ID, "login-password")
    field.send_keys("not-the-password")
    browser.find_element(By.ID, "login-submit").click()
    text_in(browser, "#login-error", "Wrong password")
    css(browser, "#login-dialog[open]")
    field = browser.find_element(By.ID, "login-password")
    field.send_keys(INSTANCE_PASSWORD)
    browser.find_element(By.ID, "login-submit").click()
    text_in(browser, "#conn", "Connected")
    wait(browser, lambda b: len(rows(b)) == 1)


async def test_app_standalone_logs_in_with_the_instance_password(tmp_path, nursery):
    with trio.fail_after(120):
        sim, provd = await start_installation(nursery, tmp_path)
        assert [r.outcome for r in await sim.provision(PHONES[:1])] == ["ok"]
        url = http_url(provd.appservice_url) + "example.com/provd/provd-admin.htm"
        browser, profile = await run(chromium)
        try:
            await run(standalone_login, browser, url)
            states = await run(rows, browser)
            assert states == {mac12(PHONES[0]): "provisioned"}
        finally:
            with trio.CancelScope(shield=True):
                await run(quit_browser, browser, profile)
        assert await provd.stop() == 0

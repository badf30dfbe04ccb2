"""Issue 11.5 done-when: the phone page, through the simulator's Devices passthrough, in
headless Chromium, against the real daemon.

``provd sim`` (as the CLI runs it, with its control socket) and ``provd run`` (a child
process); the phone is provisioned through the simulated Users service and fetches its
file once (so model and firmware are known); then the Devices UI's URL for it, printed
by ``provd sim ctl passthrough MAC``, is loaded: the page shows the phone's data and no
secret, in its text or its source. Meanwhile several requests run through the tunnel at
once, with a small receive length, and a POST is refused.
"""

from __future__ import annotations

import html
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import attrs
import httpx
import trio
from selenium.webdriver.common.by import By

from provd.cli import sim as sim_cli
from provd.phones import Vendor
from provd.sim import Phone

from ..e2e.harness import ROOT, ProvdProcess, sim_config
from .browser import SHOTS, chromium, css, quit_browser
from .test_browser import run

PHONE = Phone(mac="80:5e:c0:aa:00:51", user="alice", cn="Alice Adler", password="Alice-Sip-Pw-51")
MAC = "805ec0aa0051"
#: The simulated Devices asks for this many bytes per tunnel RECEIVE.
CHUNK = 700
REG_ADDR = "127.0.0.1:5062"


def load(browser, url: str) -> dict[str, str]:
    browser.get(url)
    css(browser, "#state")
    found = {
        key: browser.find_element(By.ID, key).text
        for key in ("vendor", "model", "firmware", "cn", "sip", "state", "online")
    }
    found["text"] = browser.find_element(By.TAG_NAME, "body").text
    found["source"] = browser.page_source
    found["file"] = css(browser, "pre#file").text
    if SHOTS:  # PROVD_SCREENSHOTS=docs refreshes docs/phone-page.png
        height = browser.execute_script("return document.documentElement.scrollHeight")
        browser.set_window_size(1200, min(int(height) + 140, 2400))
        browser.save_screenshot(str(Path(SHOTS) / "phone-page.png"))
    return found


async def test_phone_page_in_chromium_through_the_passthrough(tmp_path, nursery):
    """Vendor, model, firmware, user and state on the page; no SIP, device, admin, TURN
    or web password in its text or source; concurrent tunnel sessions all answered."""
    control = tempfile.mkdtemp(prefix="provd-page-", dir="/tmp")  # AF_UNIX paths are short
    try:
        await _check(tmp_path, nursery, control + "/sim.sock")
    finally:
        shutil.rmtree(control)


def passthrough_url(socket_path: str, mac: str) -> str:
    """``provd sim ctl passthrough MAC``, as an operator runs it."""
    proc = subprocess.run(
        [sys.executable, "-m", "provd", "sim", "ctl", "--socket", socket_path, "passthrough", mac],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["url"]


async def _check(tmp_path: Path, nursery: trio.Nursery, socket_path: str) -> None:
    with trio.fail_after(120):
        # Registration checks soon after the fetch, so the page shows "registered".
        provd = ProvdProcess(tmp_path, extra="[registration]\nretry_interval = 0.2\n")
        await provd.start(nursery)
        config = sim_config(devices={"tunnel_chunk": CHUNK})
        config = attrs.evolve(
            config, provd=attrs.evolve(config.provd, url=provd.appservice_url + "provd")
        )
        sim = await nursery.start(
            lambda task_status: sim_cli.run(config, control=socket_path, task_status=task_status)
        )
        (result,) = await sim.provision([PHONE])
        assert result.ok, result
        await sim.wait_online(MAC)
        # The simulated phone fetches its file, then registers at the PBX from REG_ADDR.
        sim.pbxadmin.set_rule(MAC, register=True, addr=REG_ADDR)
        fetched = await sim.fetch_file(provd.phones_url, Vendor.YEALINK, MAC)
        assert fetched.status_code == 200
        await provd.wait_for(rf"event=phone\.provisioned .*mac={MAC}")  # items in
        await provd.wait_for(f"event=phone.lifecycle mac={MAC} from=fetched to=registered")
        url = await trio.to_thread.run_sync(passthrough_url, socket_path, PHONE.mac)
        assert url.startswith(sim.addresses.passthrough_base + MAC + "/")

        # Several sessions at once through the tunnel, each read in CHUNK-byte RECEIVEs.
        bodies: list[httpx.Response] = []
        async with httpx.AsyncClient(timeout=20) as client:

            async def fetch_page(path: str) -> None:
                bodies.append(await client.get(url + path))

            async with trio.open_nursery() as inner:
                for path in ("", "index.html", "file", "", "file", ""):
                    inner.start_soon(fetch_page, path)
            refused = await client.post(url, content=b"x=1")
        assert [r.status_code for r in bodies] == [200] * 6
        assert refused.status_code == 405
        assert sim.devices_app.violations == []

        browser, profile = await run(chromium)
        try:
            seen = await run(load, browser, url)
        finally:
            with trio.CancelScope(shield=True):
                await run(quit_browser, browser, profile)

        assert seen["vendor"] == "Yealink"
        assert seen["model"] == "T46S"
        assert seen["firmware"] == "66.86.0.15"
        assert seen["cn"] == "Alice Adler"
        assert seen["sip"].startswith("alice")
        assert seen["state"] == "registered"
        assert REG_ADDR in seen["text"]  # where the PBX saw it register from
        assert seen["online"] == "online"
        assert "127.0.0.1" in seen["text"]  # the fetch's address
        assert "account.1.user_name = alice" in seen["file"]

        conn = sqlite3.connect(tmp_path / "provd.db")
        (web_password,) = conn.execute(
            "SELECT web_password FROM phones WHERE mac = ?", (MAC,)
        ).fetchone()
        conn.close()
        secrets = [
            PHONE.password,
            sim.sysclient_password(MAC),
            "Admin-Pwd-e2e-42",
            "Turn-Secret-e2e",
            web_password,
        ]
        for secret in secrets:
            assert secret and len(secret) >= 4
            for where in ("text", "source", "file"):
                assert secret not in seen[where], where
                assert html.escape(secret) not in seen[where], where
            for response in bodies:
                assert secret not in response.text
        assert "********" in seen["text"]
        assert await provd.stop() == 0

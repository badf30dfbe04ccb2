"""innovaphone's own JavaScript AppWebsocket client logs in to provd (spec sections 2, 8.3).

The client is the SDK file ``web1/appwebsocket/innovaphone.appwebsocket.Connection.js``, read
at test time from the SDK mirror (see ``conftest.py``); it is not part of this repository.
It runs under node 20 (``--experimental-websocket`` gives it the browser's ``WebSocket``)
with a few lines of browser shims. The test fails, naming it, if node is absent.

What it proves against a real provd: the client's CheckBuild (sent before its challenge) is
answered without a redirect, its password login completes (AppLoginResult ok), ``src`` is
echoed to its ``sendSrc`` callback, and a password it encrypts with its own session key
(``Connection.encrypt``) decrypts in provd.
"""

import json
import shutil
import subprocess

import pytest
import trio

from provd.actors.daemon import Daemon

from ..actors.conftest import PASSWORD, make_config
from .conftest import SDK_GIT_DIR

SDK_CLIENT = "web1/appwebsocket/innovaphone.appwebsocket.Connection.js"
MAC = "001565ee0001"
SECRET = "S3cret-Päss & <more>"

# Browser shims, then the SDK file (appended at test time), then the driver.
SHIMS = r"""
"use strict";
const report = (what) => { process.stdout.write("RESULT " + JSON.stringify(what) + "\n"); };
const redirects = [];
globalThis.window = globalThis;
window.addEventListener = () => {};
window.top = window; window.self = window;
window.parent = { postMessage: (m) => report({ postMessage: m }) };
globalThis.applicationCache = null;
globalThis.location = {
  get href() { return "http://pbx.example.com/provd/app.htm"; },
  set href(v) { redirects.push(v); report({ redirect: v }); },
};
"""

DRIVER = r"""
const [url, password, mac, secret] = process.argv.slice(2);
const conn = new innovaphone.appwebsocket.Connection(
  url, "provd", password, "example.com",
  function onconnected(domain, user, dn) {
    report({ connected: true, domain: domain, user: user, dn: dn });
    conn.sendSrc({ mt: "AppInfo", app: "provd" }, function (answer) {
      report({ appInfo: answer });
      const src = new conn.Src(function (result) {
        report({ provisioning: result, redirects: redirects.length });
        process.exit(0);
      });
      const seed1 = "10046478319880090512700";
      src.send({ mt: "ProvisioningPhone", mac: mac, code: "123456789012", usename: "js",
                 cn: "JS", seed1: seed1, password: src.encrypt(seed1, secret),
                 domain: "example.com", dns: "pbx.example.com" });
    });
  },
  function onmessage(m) { report({ unexpected: m }); },
  function onerror(error) { report({ error: error }); process.exit(2); return true; },
  function onclosed() { report({ closed: true }); process.exit(3); }
);
conn.checkBuild = true;  // set before the socket opens: CheckBuild goes first
setTimeout(() => { report({ timeout: true }); process.exit(4); }, 8000);
"""


def sdk_client_source() -> str:
    git = shutil.which("git")
    if git is None:
        pytest.fail("git is needed to read the innovaphone SDK mirror")
    done = subprocess.run(
        [git, f"--git-dir={SDK_GIT_DIR}", "show", f"HEAD:{SDK_CLIENT}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(
            f"cannot read {SDK_CLIENT} from the innovaphone SDK mirror {SDK_GIT_DIR}: "
            f"{done.stderr.strip()} (this test runs innovaphone's own client and needs it)"
        )
    return done.stdout


async def test_innovaphone_js_client_logs_in(tmp_path, nursery):
    node = shutil.which("node")
    if node is None:
        pytest.fail("node (v20+, for --experimental-websocket) is needed for this test")
    script = tmp_path / "client.js"
    script.write_text(SHIMS + sdk_client_source() + DRIVER, encoding="utf-8")

    daemon = Daemon(make_config(tmp_path, provisioning={"timeout": 0.5}))
    bound = await nursery.start(daemon.run)
    args = [bound.appservice_url + "provd", PASSWORD, MAC, SECRET]
    with trio.fail_after(20):
        done = await trio.run_process(
            [node, "--experimental-websocket", str(script), *args],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    daemon.shutdown()
    out = done.stdout.decode()
    results = [json.loads(line[7:]) for line in out.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0, (out, done.stderr.decode())
    connected, app_info, provisioning = results
    assert connected == {"connected": True, "domain": "example.com", "user": "provd", "dn": "Admin"}
    assert app_info["appInfo"]["mt"] == "AppInfoResult"
    assert "com.innovaphone.provisioning" in app_info["appInfo"]["serviceInfo"]["apis"]
    answer = provisioning["provisioning"]
    assert answer["mt"] == "ProvisioningPhoneResult"  # src echoed: it reached the Src object
    assert provisioning["redirects"] == 0
    record = daemon.directory.get(MAC)
    assert record is not None and record.password == SECRET  # JS session key == provd's

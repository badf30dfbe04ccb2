"""The simulated myApps: a shell page that embeds provd's admin App and answers ``getLogin``.

In a real installation myApps (the innovaphone client) loads an App's page in an iframe;
the App posts ``{"mt":"getLogin","app":..,"challenge":..}`` to ``window.parent``, myApps
asks the PBX for a login for that app (the PBX computes it with the App object's password)
and posts the login back as ``{"mt":"Login", app, domain, sip, guid, dn, info, digest,
pbxObj, key}`` (facts from the SDK's ``web1/appwebsocket/innovaphone.appwebsocket
.Connection.js``). Here the shell page does the posting and asks this small HTTP server
(``GET /login?app=..&challenge=..``) for the login, which the simulated PBX makes for the
configured administrator (``[myapps]`` in the sim config).
"""

from __future__ import annotations

import json
from urllib.parse import parse_qs, quote, urlsplit

import structlog
import trio

from ..protocol import crypto
from ..protocol.login import Identity
from ..transport.address import parse_listen
from ..transport.front import BadRequest, HttpResponse, answer, read_head, to_request
from .pbx import SimPbx, http_url

log = structlog.get_logger("provd.sim.myapps")


def app_page_url(provd_ws_url: str, app: str) -> str:
    """The admin App's page next to provd's websocket URL (the App object's URL)."""
    return http_url(provd_ws_url).rstrip("/") + "/" + quote(app) + ".htm"


def user_login(pbx: SimPbx, app: str, challenge: str) -> dict[str, object]:
    """The login the PBX makes for the configured administrator to ``app`` (myApps' view)."""
    cfg = pbx.config.myapps
    if app != cfg.app:
        return {"mt": "Login", "app": app, "error": 3, "errorText": "no such app for this user"}
    url = pbx.url or ""
    info = {
        "appobj": pbx.config.pbx.app_object,
        "cn": cfg.dn,
        "apps": [{"name": app}],
        "appurl": app_page_url(url, app)[: -len(".htm")],
    }
    identity = Identity(
        app=app,
        domain=pbx.config.pbx.domain,
        sip=cfg.sip,
        guid=cfg.guid,
        dn=cfg.dn,
        pbx_obj=app,
        info=info,
    )
    password = pbx.password
    return {
        "mt": "Login",
        "app": app,
        "domain": identity.domain,
        "sip": identity.sip,
        "guid": identity.guid,
        "dn": identity.dn,
        "info": info,
        "digest": identity.digest(challenge, password),
        "pbxObj": app,
        "key": crypto.session_key(challenge, password),
    }


SHELL = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>myApps (simulated)</title>
<style>
html,body{margin:0;height:100%;font:15px system-ui,sans-serif}
body{display:flex;flex-direction:column}
header{background:#2b3440;color:#fff;padding:.4rem .8rem;display:flex;gap:1rem;align-items:center}
header b{font-weight:600} header span{opacity:.8;font-size:.85rem}
iframe{flex:1;border:0;width:100%}
</style>
<script src="myapps.js" defer></script></head>
<body><header><b>myApps</b><span>simulated &middot; logged in as %USER%</span></header>
<iframe id="app" title="%APP%" src="%SRC%"></iframe></body></html>
"""

SCRIPT = """// myApps (simulated): answer the embedded App's getLogin with the PBX's login.
window.addEventListener("message", async (e) => {
  let obj;
  try { obj = JSON.parse(e.data); } catch { return; }
  if (!obj || obj.mt !== "getLogin") return;
  const q = new URLSearchParams({ app: obj.app, challenge: obj.challenge });
  const r = await fetch("login?" + q.toString());
  const login = await r.json();
  e.source.postMessage(JSON.stringify(login), "*");
});
"""


class MyAppsShell:
    def __init__(self, pbx: SimPbx) -> None:
        self.pbx = pbx

    async def respond(self, target: str) -> HttpResponse:
        url = urlsplit(target)
        query = parse_qs(url.query)
        cfg = self.pbx.config.myapps
        if url.path in ("/", "/myapps.htm"):
            src = app_page_url(self.pbx.url or "", cfg.app)
            theme = query.get("theme", [""])[0]
            if theme in ("light", "dark"):
                src += f"?theme={theme}"
            page = SHELL.replace("%SRC%", src).replace("%APP%", cfg.app)
            page = page.replace("%USER%", f"{cfg.dn} ({cfg.sip})")
            return HttpResponse(200, page.encode(), (("content-type", "text/html; charset=utf-8"),))
        if url.path == "/myapps.js":
            return HttpResponse(
                200, SCRIPT.encode(), (("content-type", "text/javascript; charset=utf-8"),)
            )
        if url.path == "/login":
            app = query.get("app", [""])[0]
            challenge = query.get("challenge", [""])[0]
            login = user_login(self.pbx, app, challenge)
            log.info("myapps.get_login", app=app, sip=cfg.sip, error=login.get("error"))
            return HttpResponse(
                200, json.dumps(login).encode(), (("content-type", "application/json"),)
            )
        return HttpResponse(404, b"not found\n", (("content-type", "text/plain"),))

    async def _connection(self, stream: trio.SocketStream) -> None:
        try:
            with trio.move_on_after(10):
                try:
                    request, _ = await read_head(stream)
                except BadRequest:
                    request = None
                if request is None:
                    await trio.aclose_forcefully(stream)
                    return
                req = to_request(request)
                await answer(stream, await self.respond(req.target), head_only=False)
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            log.info("myapps.connection_failed", error=type(exc).__name__)
        finally:
            await trio.aclose_forcefully(stream)

    async def run(self, listen: str, *, task_status: trio.TaskStatus[str]) -> None:
        host, port = parse_listen(listen)
        listeners = await trio.open_tcp_listeners(port, host=host)
        bound = listeners[0].socket.getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        url = f"http://{shown}:{bound}/"
        log.info("myapps.listening", url=url)
        async with trio.open_nursery() as nursery:
            await nursery.start(trio.serve_listeners, self._connection, listeners)
            task_status.started(url)

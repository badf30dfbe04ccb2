"""provd's admin App: its static files, served on the AppWebsocket listener.

myApps loads ``<base URL>/<admin_app>.htm`` in an iframe (the PBX App object's URL); the
page's scripts and styles live under ``<base URL>/b/<build>/`` where ``<build>`` is a hash
over all the App's files. So the page itself is always revalidated (``no-cache`` with an
``ETag``) while everything it loads is cached for a year (``immutable``): a new provd
version changes the hash and browsers fetch the new files at once. Every answer carries a
Content-Security-Policy that allows only the App's own files and its websocket.
"""

from __future__ import annotations

import hashlib
import re
from importlib import resources
from urllib.parse import unquote, urlsplit

from ..transport.front import HttpRequest, HttpResponse

CONTENT_TYPES = {
    ".htm": "text/html; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
PAGE = "provd-admin.htm"
_HOST = re.compile(r"[A-Za-z0-9.\-]+(?::\d{1,5})?|\[[0-9A-Fa-f:.]+\](?::\d{1,5})?")


def _files() -> dict[str, bytes]:
    root = resources.files(__package__).joinpath("static")
    return {
        p.name: p.read_bytes()
        for p in root.iterdir()
        if p.is_file()
        and not p.name.startswith(".")
        and "." + p.name.rpartition(".")[2] in CONTENT_TYPES
    }


class AppFiles:
    """The HTTP handler for the App's files (see :mod:`provd.transport.front`)."""

    def __init__(self, name: str = "provd-admin", title: str = "provd") -> None:
        self.name = name
        self.files = _files()
        digest = hashlib.sha256()
        for fname in sorted(self.files):
            digest.update(fname.encode() + b"\0" + self.files[fname])
        self.build = digest.hexdigest()[:16]
        page = self.files[PAGE].decode("utf-8")
        page = page.replace("%BUILD%", self.build).replace("%APP%", name)
        self.page = page.replace("%TITLE%", _html_escape(title)).encode("utf-8")
        self.page_etag = '"' + hashlib.sha256(self.page).hexdigest()[:16] + '"'

    def csp(self, host: str | None) -> str:
        connect = "'self'"
        if host and _HOST.fullmatch(host):
            connect += f" ws://{host} wss://{host}"
        return (
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            f"connect-src {connect}; base-uri 'none'; form-action 'none'; frame-ancestors *"
        )

    def _headers(self, ctype: str, cache: str, host: str | None) -> tuple[tuple[str, str], ...]:
        return (
            ("content-type", ctype),
            ("cache-control", cache),
            ("content-security-policy", self.csp(host)),
            ("x-content-type-options", "nosniff"),
            ("referrer-policy", "no-referrer"),
        )

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        host = request.headers.get("host")
        if request.method not in ("GET", "HEAD"):
            return HttpResponse(405, b"method not allowed\n", (("allow", "GET, HEAD"),))
        path = unquote(urlsplit(request.target).path)
        parts = path.split("/")
        if parts[-1] == f"{self.name}.htm":
            if request.headers.get("if-none-match") == self.page_etag:
                return HttpResponse(304, b"", (("etag", self.page_etag),))
            headers = self._headers(CONTENT_TYPES[".htm"], "no-cache", host)
            return HttpResponse(200, self.page, (*headers, ("etag", self.page_etag)))
        if len(parts) >= 3 and parts[-3] == "b" and parts[-2] == self.build:
            name = parts[-1]
            body = self.files.get(name)
            if body is not None and name != PAGE:
                ctype = CONTENT_TYPES["." + name.rpartition(".")[2]]
                cache = "public, max-age=31536000, immutable"
                return HttpResponse(200, body, self._headers(ctype, cache, host))
        return HttpResponse(
            404, b"not found\n", self._headers("text/plain; charset=utf-8", "no-store", host)
        )


def _html_escape(text: str) -> str:
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    )

"""The phone's page in the Devices UI: what a phone actor answers through the tunnel.

The Devices UI opens a device's own web UI through its passthrough (spec section 6);
provd's phones have no web UI of provd's, so the phone's actor answers with this page:
who the phone is (vendor, model and firmware from its last fetch's User-Agent), its user,
where it is in its lifecycle and since when, its last fetches, its configuration items
and the file it would get now, every secret masked.

Paths, relative to the passthrough root: ``/`` (or ``/index.html``) the HTML page, ``/file``
the file as plain text. GET and HEAD only (405 otherwise), a request h11 cannot parse is
400. The page is self-contained: inline CSS, no script, no external resource (a CSP says
so); every value is escaped with :func:`html.escape`.

Secrets: configuration items go through :func:`provd.protocol.admin.mask_item` (members
named like ``pass``/``pwd``/``key``/``seed``/``secret``...), the file is rendered with
``mask_secrets=True`` (as ``provd render``), and as a last guard every secret the record
holds (SIP, device, admin and web passwords, and the masked item values) is replaced in
the finished response (raw and escaped), so one that slipped into a label cannot leak.
"""

from __future__ import annotations

import contextlib
import html
import json
import time
from collections.abc import Iterable
from typing import Any

import attrs
import h11

from .. import __version__
from ..protocol.admin import mask_item
from ..store.records import PhoneRecord
from .account import MASK
from .examples import phone_request
from .fetch import FetchRecord
from .identify import IdentifyError, Vendor, identify, vendor_for_oui
from .model import PhoneData

#: Fetches shown on the page.
FETCHES_SHOWN = 10
#: Shortest secret replaced in the finished page (shorter ones would mask ordinary words).
MIN_SECRET = 4


@attrs.frozen
class FilePreview:
    """The file the phone would get now (secrets masked), or why there is none."""

    name: str = ""
    content_type: str = ""
    text: str = ""
    error: str = ""


@attrs.frozen
class PageData:
    """Everything the page shows, gathered by the actor."""

    mac: str
    record: PhoneRecord | None
    fetches: tuple[FetchRecord, ...] = ()
    file: FilePreview = FilePreview(error="not rendered")
    #: The phone's lifecycle (issue 11.1), any object with the attributes named in
    #: :data:`LIFECYCLE_FIELDS` and ``state``/``error``; None: the record's state only.
    lifecycle: Any = None
    now: float = attrs.field(factory=time.time)


def file_preview(
    renderer: Any,
    data: PhoneData | None,
    record: PhoneRecord,
    fetch: FetchRecord | None,
    *,
    model: str | None = None,
) -> FilePreview:
    """Render the per-phone file ``record``'s phone would fetch now, secrets masked.

    The vendor comes from the last fetch (else the MAC's OUI), the model from ``model``, else
    the last fetch; the file name is that vendor's usual per-phone file (as ``provd render``).
    Used by the phone page and the admin App's file view.
    """
    vendor: Vendor | None = None
    if fetch is not None and fetch.vendor:
        with contextlib.suppress(ValueError):
            vendor = Vendor(fetch.vendor)
    if vendor is None:
        vendor = vendor_for_oui(record.mac)
    if vendor is None:
        return FilePreview(error="vendor unknown from the MAC's OUI and no fetch yet")
    if renderer is None:
        return FilePreview(error="no renderer")
    if data is None:
        return FilePreview(error=f"not served yet: the phone is {record.state}")
    path = phone_request(vendor, record.mac).path
    try:
        ident = identify(path, None)
    except IdentifyError as exc:
        return FilePreview(name=path, error=str(exc))
    model = model or (fetch.model if fetch is not None else None)
    if model:
        ident = attrs.evolve(ident, model=model)
    try:
        rendered = renderer.render(data, ident, mask_secrets=True)
    except ValueError as exc:  # no template for that model, a value the vendor cannot take
        return FilePreview(name=path, error=str(exc))
    except Exception as exc:  # a broken override template: say so on the page, keep serving
        return FilePreview(name=path, error=f"cannot render: {type(exc).__name__}")
    return FilePreview(
        name=path,
        content_type=rendered.content_type,
        text=rendered.content.decode("utf-8", "replace"),
    )


# --- HTTP ------------------------------------------------------------------------------------


def respond(request: bytes, data: PageData) -> bytes:
    """The HTTP/1.1 response bytes for a tunnelled ``request`` (never raises)."""
    conn = h11.Connection(h11.SERVER)
    try:
        conn.receive_data(request)
        event = conn.next_event()
    except h11.RemoteProtocolError:
        event = None
    if not isinstance(event, h11.Request):
        return _raw(400, "text/plain; charset=utf-8", b"bad request\n")
    method = event.method.decode("ascii", "replace").upper()
    path = event.target.decode("latin-1").split("?", 1)[0]
    if method not in ("GET", "HEAD"):
        status, ctype, body, extra = (
            405,
            "text/plain; charset=utf-8",
            b"GET or HEAD only\n",
            [(b"allow", b"GET, HEAD")],
        )
    elif path in ("/", "/index.html"):
        status, ctype, body, extra = 200, "text/html; charset=utf-8", _guard(page(data), data), []
    elif path == "/file":
        text = data.file.text if data.file.text else f"{data.file.error}\n"
        status, ctype, body, extra = 200, "text/plain; charset=utf-8", _guard(text, data), []
    else:
        status, ctype, body, extra = 404, "text/plain; charset=utf-8", b"not found\n", []
    headers = [
        (b"content-type", ctype.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        (b"connection", b"close"),
        (b"content-security-policy", b"default-src 'none'; style-src 'unsafe-inline'"),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
        *extra,
    ]
    try:
        out = conn.send(h11.Response(status_code=status, headers=headers)) or b""
        if method != "HEAD":
            out += conn.send(h11.Data(data=body)) or b""
        out += conn.send(h11.EndOfMessage()) or b""
    except h11.LocalProtocolError:  # e.g. an HTTP/1.0 peer h11 frames differently
        return _raw(status, ctype, b"" if method == "HEAD" else body)
    return out


def error_response(status: int, text: str) -> bytes:
    """A plain-text error response (for a page that could not be built)."""
    return _raw(status, "text/plain; charset=utf-8", f"{text}\n".encode())


def _raw(status: int, ctype: str, body: bytes) -> bytes:
    reason = {
        200: "OK",
        400: "Bad Request",
        404: "Not Found",
        405: "Method Not Allowed",
        500: "Internal Server Error",
    }
    return (
        f"HTTP/1.1 {status} {reason.get(status, 'Error')}\r\nContent-Type: {ctype}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body


def secrets_of(data: PageData) -> list[str]:
    """Every secret the page must not show: the record's passwords and the values of
    configuration item members that :func:`mask_item` masks."""
    record = data.record
    if record is None:
        return []
    found = [
        record.password,
        record.sysclient_password,
        record.admin_password,
        record.web_password,
    ]
    for item in record.config.values():
        found += _masked_values(item, mask_item(item))
    return sorted(
        {s for s in found if isinstance(s, str) and len(s) >= MIN_SECRET}, key=len, reverse=True
    )


def _masked_values(item: Any, masked: Any) -> list[str]:
    if isinstance(item, dict) and isinstance(masked, dict):
        out: list[str] = []
        for key, value in item.items():
            if masked.get(key) == MASK and value != MASK:
                out.append(str(value))
            else:
                out += _masked_values(value, masked.get(key))
        return out
    if isinstance(item, list) and isinstance(masked, list):
        return [v for a, b in zip(item, masked, strict=False) for v in _masked_values(a, b)]
    return []


def _guard(text: str, data: PageData) -> bytes:
    for secret in secrets_of(data):
        text = text.replace(secret, MASK).replace(html.escape(secret), MASK)
    return text.encode("utf-8")


# --- the page --------------------------------------------------------------------------------


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def when(ts: float | None, now: float) -> str:
    """``2026-11-23 03:10:00 UTC (5 min ago)``, or ``-``."""
    if not ts:
        return "-"
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))
    ago = max(0.0, now - ts)
    if ago < 90:
        rel = f"{int(ago)} s ago"
    elif ago < 5400:
        rel = f"{int(ago // 60)} min ago"
    elif ago < 172800:
        rel = f"{int(ago // 3600)} h ago"
    else:
        rel = f"{int(ago // 86400)} days ago"
    return f"{stamp} ({rel})"


def _item(item: Any) -> str:
    """One configuration item (masked) as ``name = value`` lines, ``type`` left out."""
    if not isinstance(item, dict):
        return f"<code>{_e(json.dumps(item, ensure_ascii=False))}</code>"
    lines = []
    for name, value in sorted(item.items()):
        if name == "type":
            continue
        shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        lines.append(f'<span class="k">{_e(name)}</span> = <code>{_e(shown)}</code>')
    return "<br>".join(lines) or "-"


def _mac(mac: str) -> str:
    return ":".join(mac[i : i + 2] for i in range(0, len(mac), 2))


def _rows(pairs: Iterable[tuple[str, str]]) -> str:
    """Table rows from (label, already escaped HTML)."""
    return "".join(f"<tr><th>{_e(k)}</th><td>{v}</td></tr>" for k, v in pairs)


#: Lifecycle fields (issue 11.1: pending → provisioned → fetched → registered), read with
#: defaults from the phone's lifecycle object (``provd.store.records.Lifecycle``, kept by
#: the registration checker) or, failing that, from the record: (attribute, label, kind),
#: kind "time" an epoch timestamp, "flag" a yes/no, "text" as is.
LIFECYCLE_FIELDS = (
    ("since", "since", "time"),
    ("provisioned_at", "provisioned", "time"),
    ("fetched_at", "fetched", "time"),
    ("registered_at", "registered", "time"),
    ("addr", "registration address", "text"),
    ("registration_address", "registration address", "text"),
    ("checked_at", "last PBX check", "time"),
    ("warned", "not registered in time", "flag"),
)


def lifecycle(record: PhoneRecord, life: Any, now: float) -> list[tuple[str, str]]:
    """(label, HTML) rows for the phone's lifecycle: ``life`` (any object with the
    attributes of :data:`LIFECYCLE_FIELDS`, or None) first, then the record."""
    state = str(getattr(life, "state", "") or record.state)
    rows = [("state", f'<span class="state s-{_e(state)}" id="state">{_e(state)}</span>')]
    if life is not None and record.state != state:
        rows.append(("Devices", _e(record.state)))
    seen: set[str] = set()
    for attr, label, kind in LIFECYCLE_FIELDS:
        value = getattr(life, attr, None)
        if value in (None, "", 0, False):
            value = getattr(record, attr, None)
        if value in (None, "", 0, False) or label in seen:
            continue
        if kind == "time" and isinstance(value, int | float):
            shown = _e(when(float(value), now))
        elif kind == "flag":
            shown = '<span class="err">yes</span>'
        else:
            shown = _e(value)
        seen.add(label)
        rows.append((label, shown))
    error = str(getattr(life, "error", "") or record.error)
    if error:
        rows.append(("last error", f'<span class="err">{_e(error)}</span>'))
    online = "online" if record.online else "offline"
    rows += [
        ("connection to Devices", f'<span class="{online}" id="online">{online}</span>'),
        ("created", _e(when(record.created, now))),
        ("last change", _e(when(record.updated, now))),
        ("revision", _e(record.revision)),
    ]
    return rows


def page(data: PageData) -> str:
    """The HTML page for ``data`` (secrets already masked in what it is given)."""
    record, now = data.record, data.now
    title = f"provd · phone {_mac(data.mac)}"
    if record is None:
        body = f'<p class="err">provd does not know the phone {_e(_mac(data.mac))} (any more).</p>'
        return _document(title, "", body, now)
    fetch = data.fetches[0] if data.fetches else None
    oui_vendor = vendor_for_oui(record.mac)
    vendor = fetch.vendor if fetch and fetch.vendor else (oui_vendor.value if oui_vendor else "")
    model = (fetch.model if fetch else None) or ""
    firmware = (fetch.firmware if fetch else None) or ""
    product = " ".join(p for p in (vendor.capitalize(), model) if p) or "phone"
    phone_rows = [
        ("vendor", f'<span id="vendor">{_e(vendor.capitalize() or "unknown")}</span>'),
        ("model", f'<span id="model">{_e(model or "not known until it fetches")}</span>'),
        ("firmware", f'<span id="firmware">{_e(firmware or "-")}</span>'),
        ("MAC", _e(_mac(record.mac))),
        ("hardware id", _e(record.hwid or "-")),
        ("User-Agent", f"<code>{_e(fetch.user_agent)}</code>" if fetch else "-"),
    ]
    sip = f"{record.usename}@{record.domain}" if record.domain else record.usename
    user_rows = [
        ("name", f'<span id="cn">{_e(record.cn or "-")}</span>'),
        ("SIP", f'<span id="sip">{_e(sip or "-")}</span>'),
        ("PBX", _e(record.dns or "-")),
        ("password", MASK if record.password else "-"),
    ]
    fetch_rows = "".join(
        f"<tr><td>{_e(when(f.time, now))}</td><td>{_e(f.address)}</td>"
        f"<td><code>{_e(f.file)}</code></td><td>{_e(f.firmware or '')}</td></tr>"
        for f in data.fetches[:FETCHES_SHOWN]
    )
    fetches = (
        '<table class="list" id="fetches"><tr><th>time</th><th>address</th><th>file</th>'
        f"<th>firmware</th></tr>{fetch_rows}</table>"
        if fetch_rows
        else '<p class="muted" id="fetches">No fetch yet.</p>'
    )
    items = "".join(
        f"<tr><th>{_e(kind)}</th><td>{_item(mask_item(item))}</td></tr>"
        for kind, item in sorted(record.config.items())
    )
    items_html = (
        f'<table class="kv" id="items">{items}</table>'
        if items
        else '<p class="muted" id="items">No configuration item from Devices yet.</p>'
    )
    f = data.file
    if f.text:
        file_html = (
            f"<p><code>{_e(f.name)}</code> · {_e(f.content_type)} · "
            '<a href="file">as plain text</a></p>'
            f'<pre id="file">{_e(f.text)}</pre>'
        )
    else:
        file_html = f'<p class="muted" id="file">{_e(f.error)}</p>'
    state = str(getattr(data.lifecycle, "state", "") or record.state)
    header = (
        f"<header><h1>{_e(product)}</h1><p>{_e(record.cn or record.usename or '')}"
        f' · <span class="state s-{_e(state)}">{_e(state)}</span>'
        f" · {'online' if record.online else 'offline'}</p></header>"
    )
    body = (
        '<div class="grid">'
        f'<section><h2>Phone</h2><table class="kv">{_rows(phone_rows)}</table></section>'
        f'<section><h2>User</h2><table class="kv">{_rows(user_rows)}</table></section>'
        f'<section><h2>Lifecycle</h2><table class="kv" id="lifecycle">'
        f"{_rows(lifecycle(record, data.lifecycle, now))}</table></section>"
        "</div>"
        f"<section><h2>Last fetches</h2>{fetches}</section>"
        f"<section><h2>Configuration items</h2>{items_html}</section>"
        f"<section><h2>The file it would get</h2>{file_html}</section>"
    )
    return _document(title, header, body, now)


def _document(title: str, header: str, body: str, now: float) -> str:
    footer = (
        f"<footer>provd {_e(__version__)} · secrets are shown as {MASK} · "
        f"{_e(time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(now)))}</footer>"
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head>"
        f"<body>{header}<main>{body}</main>{footer}</body></html>"
    )


_CSS = """
:root{color-scheme:light dark;--fg:#1d2327;--muted:#6b7780;--bg:#f5f7f8;--card:#fff;
--line:#dde3e7;--accent:#0a7d6e;--bad:#b3261e;--warn:#9a6700}
@media (prefers-color-scheme:dark){:root{--fg:#e6eaec;--muted:#98a4ab;--bg:#15191c;
--card:#1e2428;--line:#2f373c;--accent:#4cc2b0;--bad:#ff8a80;--warn:#e3b341}}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
color:var(--fg);background:var(--bg)}
header{padding:14px 20px;background:var(--accent);color:#fff}
header h1{margin:0;font-size:20px;font-weight:600}header p{margin:2px 0 0;opacity:.9}
header .state{background:rgba(255,255,255,.2);color:#fff}
main{padding:12px 20px;max-width:1200px}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(300px,1fr));gap:0 16px}
section{background:var(--card);border:1px solid var(--line);border-radius:6px;
padding:6px 14px 10px;margin:10px 0;overflow:auto}
h2{font-size:13px;text-transform:uppercase;letter-spacing:.06em;color:var(--muted);
margin:6px 0}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;vertical-align:top;padding:3px 8px 3px 0;border-bottom:1px solid var(--line)}
tr:last-child th,tr:last-child td{border-bottom:0}
.kv th{width:38%;font-weight:500;color:var(--muted);white-space:nowrap}
.list th{font-weight:500;color:var(--muted)}#items th{width:18%}
code,pre{font:12px/1.4 ui-monospace,"DejaVu Sans Mono",monospace;word-break:break-all}
pre{background:var(--bg);border:1px solid var(--line);border-radius:4px;padding:8px;
max-height:420px;overflow:auto;white-space:pre-wrap;margin:4px 0}
.state{display:inline-block;padding:0 8px;border-radius:9px;background:var(--line);font-weight:600}
.s-provisioned,.s-registered,.s-fetched{background:#d7f0e8;color:#0b5e4b}
.s-failed{background:#fbe0de;color:var(--bad)}.s-pending{background:#fff2cc;color:var(--warn)}
.online{color:var(--accent);font-weight:600}.offline{color:var(--bad);font-weight:600}
.k{color:var(--muted)}.err{color:var(--bad)}.muted{color:var(--muted)}a{color:var(--accent)}
footer{padding:8px 20px 16px;color:var(--muted);font-size:12px}
"""

"""``host:port`` listen strings and websocket URLs."""

from __future__ import annotations

import urllib.parse


def parse_listen(text: str) -> tuple[str, int]:
    """``"127.0.0.1:8090"`` / ``"[::1]:8090"`` → ``(host, port)``.

    Raises:
        ValueError: no port, a port outside 0..65535, or an empty host.
    """
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f"{text!r} is not host:port")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"{text!r}: port is not a number") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"{text!r}: port out of range")
    return host, port


def ws_url(host: str, port: int, path: str = "/", *, tls: bool = False) -> str:
    """A websocket URL for a listener, bracketing IPv6 hosts."""
    if ":" in host:
        host = f"[{host}]"
    return f"{'wss' if tls else 'ws'}://{host}:{port}{path}"


def sysclients_url(devices_url: str) -> str:
    """The Sysclient endpoint of a Devices service: its URL with ``sysclients`` appended.

    The service URL should end with ``/``; add it when it does not (spec section 6).
    """
    if not devices_url.endswith("/"):
        devices_url += "/"
    return devices_url + "sysclients"


#: Longest Devices URL accepted (a URL, not a payload).
MAX_DEVICES_URL = 2048


def devices_url_problem(url: str) -> str | None:
    """Why ``url`` cannot be the Devices service URL, or None if it can.

    The Devices API and the sysclients endpoint are websockets (spec sections 5 and 6):
    only ``ws://`` and ``wss://`` with a host, and nothing a log line or a request line
    could be confused by.
    """
    if not isinstance(url, str) or not url:
        return "empty"
    if len(url) > MAX_DEVICES_URL:
        return f"longer than {MAX_DEVICES_URL} characters"
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        return "contains whitespace or control characters"
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return "not a valid URL"
    if parts.scheme.lower() not in ("ws", "wss"):
        return "not a ws:// or wss:// URL"
    if not parts.hostname:
        return "no host"
    return None

"""``host:port`` listen strings and websocket URLs."""

from __future__ import annotations


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

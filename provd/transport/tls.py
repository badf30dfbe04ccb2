"""TLS client contexts for ``wss://`` connections to an App Platform (spec section 8.3).

A Devices service runs on an App Platform whose certificate is often self-signed or from a
private CA. The operator gives that certificate (or its CA) as ``devices.ca_file``; turning
verification off (``devices.verify = false``) is possible but logged loudly at every start.
``ws://`` URLs get no context at all (trio-websocket refuses one for them).
"""

from __future__ import annotations

import functools
import ssl


class TlsSetupError(ValueError):
    """The CA file cannot be used; the message names the path and why."""


@functools.lru_cache(maxsize=8)
def client_context(ca_file: str = "", verify: bool = True) -> ssl.SSLContext:
    """An SSL context for websocket clients, built once per ``(ca_file, verify)``.

    Args:
        ca_file: PEM file of trusted certificates *added to* the system's; empty: system only.
        verify: False turns certificate and host name checks off (the caller warns).

    Raises:
        TlsSetupError: ``ca_file`` is unreadable or holds no certificate.
    """
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if ca_file:
        try:
            context.load_verify_locations(cafile=ca_file)
        except FileNotFoundError:
            raise TlsSetupError(f"{ca_file}: no such file") from None
        except OSError as exc:
            raise TlsSetupError(f"{ca_file}: cannot read ({exc.strerror})") from None
        except ssl.SSLError as exc:
            raise TlsSetupError(f"{ca_file}: not a PEM certificate file ({exc.reason})") from None
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def context_for(url: str, *, ca_file: str = "", verify: bool = True) -> ssl.SSLContext | None:
    """The context to pass to :func:`~provd.transport.connect` for ``url``: None for
    ``ws://`` (plain), :func:`client_context` for ``wss://``."""
    if not url.lower().startswith("wss://"):
        return None
    return client_context(ca_file, verify)

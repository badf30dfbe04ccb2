"""MAC addresses as provd keys them: 12 lowercase hex digits, no separators."""

from __future__ import annotations

import re

from .errors import ProtocolError

_SEPARATORS = re.compile(r"[:\-.\s]")
_MAC = re.compile(r"[0-9a-f]{12}")


def normalize_mac(text: str) -> str:
    """``00:04:F2-aa...`` → ``0004f2aa...``.

    Raises:
        ProtocolError: not a string, or not 12 hex digits once separators are removed.
    """
    if not isinstance(text, str) or len(text) > 32:
        raise ProtocolError("MAC is not a short string")
    mac = _SEPARATORS.sub("", text).lower()
    if not _MAC.fullmatch(mac):
        raise ProtocolError("MAC is not 12 hex digits")
    return mac

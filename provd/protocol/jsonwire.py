"""JSON on the wire: one strict decoder, one compact encoder.

innovaphone peers exchange JSON objects in websocket text frames (AppWebsocket) and after a
3-byte header in binary frames (Sysclient). The login digest is computed over a re-encoding
of the ``info`` object that must match the peer's byte for byte (spec section 2), so the
encoder keeps key order and escapes neither non-ASCII characters nor ``/``.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from .errors import ProtocolError

#: Cap on one JSON message, in bytes. The largest real message (a category list or a
#: ServicesInfo) is a few kB; 1 MiB leaves room and still refuses a memory bomb.
MAX_MESSAGE_SIZE = 1 << 20

#: Cap on nesting, so a deeply nested array cannot exhaust the recursion limit.
MAX_DEPTH = 32


#: One encoder and one decoder for the process: ``json.dumps``/``json.loads`` with any
#: option build a new one on every call (a few microseconds each, on every message of
#: every peer; issue 14). Both are stateless between calls.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def dumps(obj: Any) -> str:
    """Encode compactly, keys in insertion order, non-ASCII and ``/`` unescaped."""
    return _ENCODER.encode(obj)


def _reject_constant(name: str) -> Any:
    raise ProtocolError(f"JSON constant {name} not allowed")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _depth_ok(text: str) -> bool:
    depth = 0
    in_string = False
    escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return False
        elif ch in "]}":
            depth -= 1
    return True


def loads_object(data: str | bytes, *, max_size: int = MAX_MESSAGE_SIZE) -> dict[str, Any]:
    """Decode one JSON object.

    Args:
        data: the text, or its UTF-8 bytes.
        max_size: refuse input longer than this many bytes (or characters for ``str``).

    Returns:
        The object, keys in wire order.

    Raises:
        ProtocolError: too large, not UTF-8, not JSON, too deeply nested, or not an object.
    """
    if len(data) > max_size:
        raise ProtocolError(f"message of {len(data)} bytes exceeds {max_size}")
    if isinstance(data, bytes | bytearray | memoryview):
        try:
            data = bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError("message is not valid UTF-8") from None
    elif not data.isascii():
        try:
            data.encode("utf-8")
        except UnicodeEncodeError:
            raise ProtocolError("message is not valid Unicode") from None
    deep_possible = data.count("[") + data.count("{") > MAX_DEPTH
    if deep_possible and not _depth_ok(data):
        raise ProtocolError(f"JSON nested deeper than {MAX_DEPTH}")
    try:
        obj = _DECODER.decode(data)
    except ProtocolError:
        raise
    except (ValueError, RecursionError):
        raise ProtocolError("message is not valid JSON") from None
    if not isinstance(obj, dict):
        raise ProtocolError("message is not a JSON object")
    # Every string must be valid Unicode: hashing or storing it must not fail later.
    if _SURROGATE_ESCAPE.search(data) and _has_lone_surrogate(obj):
        raise ProtocolError("message holds a lone UTF-16 surrogate")
    return obj


#: A ``\\u`` escape of a UTF-16 surrogate (paired ones are fine, lone ones are not).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def _has_lone_surrogate(obj: Any) -> bool:
    if isinstance(obj, str):
        try:
            obj.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(obj, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in obj.items())
    if isinstance(obj, list):
        return any(_has_lone_surrogate(v) for v in obj)
    return False


def is_finite_number(value: Any) -> bool:
    """True for JSON numbers that are real ints or finite floats (bool excluded)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, float) and math.isfinite(value)

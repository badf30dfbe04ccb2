"""The admin API provd's App speaks (``"api":"ProvdAdmin"``): requests checked, sans-I/O.

Every request is a JSON object with ``mt`` and an optional ``src`` (echoed in the answer and
in every indication that belongs to it, spec section 2). The answer's ``mt`` is the
request's with ``Result`` appended; a request provd cannot accept gets that answer with an
``error`` text naming the field, and the session stays open (a peer's mistake costs it that
one request). The table below is the schema; README "The admin App" documents it.
"""

from __future__ import annotations

import re
from typing import Any

import attrs

from .errors import ProtocolError
from .mac import normalize_mac

ADMIN_API = "ProvdAdmin"

#: Request ``mt`` → its members: name → (kind, required). ``mac`` is checked as a MAC.
REQUESTS: dict[str, dict[str, tuple[type, bool]]] = {
    "GetPhones": {},
    "SubscribePhones": {},
    "GetPhone": {"mac": (str, True)},
    "Reconnect": {"mac": (str, True)},
    "Rerender": {"mac": (str, True)},
    "RemovePhone": {"mac": (str, True)},
    "GetHealth": {},
    "GetSettings": {},
    "SetSettings": {"settings": (dict, True)},
}

#: Requests that change something (logged with who made them).
CHANGES = frozenset({"Reconnect", "Rerender", "RemovePhone", "SetSettings"})

_SRC = re.compile(r"[\x20-\x7e]{0,128}")


@attrs.frozen
class AdminRequest:
    mt: str
    src: str | None
    args: dict[str, Any]

    def result(self, **fields: Any) -> dict[str, Any]:
        """The answer to this request (``src`` echoed)."""
        out: dict[str, Any] = {"api": ADMIN_API, "mt": self.mt + "Result"}
        if self.src is not None:
            out["src"] = self.src
        out.update(fields)
        return out

    def indication(self, mt: str, **fields: Any) -> dict[str, Any]:
        """An indication belonging to this request (a subscription's updates)."""
        out: dict[str, Any] = {"api": ADMIN_API, "mt": mt}
        if self.src is not None:
            out["src"] = self.src
        out.update(fields)
        return out


def parse_request(body: dict[str, Any]) -> AdminRequest:
    """Check one admin request.

    Raises:
        ProtocolError: unknown ``mt``, a member missing or of the wrong type, a bad MAC;
            the reason names the member (``GetPhone.mac: missing``).
    """
    mt = body.get("mt")
    if not isinstance(mt, str) or mt not in REQUESTS:
        raise ProtocolError(f"{mt!r}: not an admin request")
    src = body.get("src")
    if src is not None and (not isinstance(src, str) or not _SRC.fullmatch(src)):
        raise ProtocolError(f"{mt}.src: must be printable text of at most 128 characters")
    args: dict[str, Any] = {}
    for name, (kind, required) in REQUESTS[mt].items():
        value = body.get(name)
        if value is None:
            if required:
                raise ProtocolError(f"{mt}.{name}: missing")
            continue
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ProtocolError(
                f"{mt}.{name}: expected {'an object' if kind is dict else 'a string'}"
            )
        if name == "mac":
            try:
                value = normalize_mac(value)
            except ProtocolError as exc:
                raise ProtocolError(f"{mt}.mac: {exc.reason}") from None
        args[name] = value
    return AdminRequest(mt=mt, src=src, args=args)


def error_result(body: dict[str, Any], error: str) -> dict[str, Any]:
    """The ``<mt>Result`` with ``error`` for a request that could not be parsed."""
    mt = body.get("mt") if isinstance(body.get("mt"), str) else "Unknown"
    src = body.get("src") if isinstance(body.get("src"), str) else None
    return AdminRequest(mt=str(mt)[:64], src=src, args={}).result(error=error)


#: Names the admin can set live (``phones.<name>``), in the order the App shows them.
SETTINGS = (
    "sip_transport",
    "resync_interval",
    "time_server",
    "time_zone",
    "firmware",
    "keys",
    "username",
    "password",
)

#: Words that mark a Devices item member as secret (masked before it leaves provd).
_SECRET = re.compile(r"pass|pwd|secret|key|seed|token|cred", re.IGNORECASE)
MASK = "********"


def mask_item(item: Any) -> Any:
    """A Devices configuration item with every secret-looking member masked."""
    if isinstance(item, dict):
        return {
            k: (MASK if _SECRET.search(str(k)) and v not in ("", None) else mask_item(v))
            for k, v in item.items()
        }
    if isinstance(item, list):
        return [mask_item(v) for v in item]
    return item

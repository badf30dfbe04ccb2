"""Function keys: what each programmable key of a phone does, from a pluggable source.

A :class:`Key` is a line key, a BLF (busy lamp field: watch a colleague, press to call) or a
speed dial, with a label and a target (a number or SIP user, empty for a line key). Keys
come from a :class:`KeySource`; today :class:`OperatorKeys` (the operator's keys per Devices
category in ``[phones.keys.<category>]``, and per phone from ``provd phones keys MAC``).
The PBX's favourites (:class:`provd.phones.pbx.FavouriteKeys`) are the second source: they
wrap the operator's keys and fill the positions after them.

Text forms (CLI and config): ``blf:201:Anna``, ``speed:*95:Voicemail``, ``line::Line 1``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from attrs import field, frozen, validators

from provd.phones.model import PhoneData

KINDS = ("line", "blf", "speed")
#: Most keys per phone (the largest expansion setups stay below).
MAX_KEYS = 100
_TARGET = re.compile(r"[A-Za-z0-9*#+._@-]{0,64}")


@frozen
class Key:
    """One function key.

    Attributes:
        kind: ``"line"``, ``"blf"`` or ``"speed"``.
        target: the number or SIP user watched/dialled (``""`` for a line key).
        label: text shown next to the key.
    """

    kind: str = field(validator=validators.in_(KINDS))
    target: str = ""
    label: str = ""

    def __attrs_post_init__(self) -> None:
        if not _TARGET.fullmatch(self.target):
            raise ValueError(f"key target {self.target!r}: digits, letters, * # + . _ @ - only")
        if self.kind != "line" and not self.target:
            raise ValueError(f"a {self.kind} key needs a target")
        if len(self.label) > 64 or any(ch in self.label for ch in "\r\n"):
            raise ValueError("key label: at most 64 characters on one line")

    @classmethod
    def parse(cls, text: str) -> Key:
        """``kind:target:label`` (label optional). Raises ValueError naming what is wrong."""
        kind, _, rest = text.partition(":")
        target, _, label = rest.partition(":")
        if kind not in KINDS:
            raise ValueError(f"{text!r}: kind must be one of {', '.join(KINDS)}")
        return cls(kind, target.strip(), label.strip())

    def __str__(self) -> str:
        return f"{self.kind}:{self.target}:{self.label}"

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "target": self.target, "label": self.label}


def keys_from(value: Any, where: str) -> tuple[Key, ...]:
    """Keys from a config/store value: a list of ``"kind:target:label"`` strings or tables.

    Raises:
        ValueError: naming ``where`` and the bad entry.
    """
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise ValueError(f"{where}: must be a list of keys")
    if len(value) > MAX_KEYS:
        raise ValueError(f"{where}: at most {MAX_KEYS} keys")
    out = []
    for i, item in enumerate(value, 1):
        try:
            if isinstance(item, str):
                out.append(Key.parse(item))
            elif isinstance(item, Mapping):
                kind, target = str(item.get("kind", "")), str(item.get("target", ""))
                out.append(Key(kind, target, str(item.get("label", ""))))
            else:
                raise ValueError("must be 'kind:target:label' or a table")
        except ValueError as exc:
            raise ValueError(f"{where}[{i}]: {exc}") from None
    return tuple(out)


class KeySource(Protocol):
    """Where a phone's keys come from."""

    def keys(self, phone: PhoneData) -> tuple[Key, ...]:
        """The phone's keys, in key order (may be empty)."""


class OperatorKeys:
    """Keys from the operator: the phone's own (``provd phones keys``), else its category's.

    Args:
        categories: ``{category: keys}`` from ``[phones.keys]``; ``"*"`` applies to phones
            without a category (or with one that has no entry).
    """

    def __init__(self, categories: Mapping[str, Iterable[Key]]) -> None:
        self.categories = {name: tuple(keys) for name, keys in categories.items()}

    def source(self, phone: PhoneData) -> str:
        """Where :meth:`keys` takes ``phone``'s keys from (for ``provd render --explain``)."""
        if phone.keys:
            return "operator, per phone (provd phones keys)"
        if phone.key_category in self.categories:
            return f"operator config phones.keys.{phone.key_category}"
        if "*" in self.categories:
            return 'operator config phones.keys."*"'
        return "none"

    def keys(self, phone: PhoneData) -> tuple[Key, ...]:
        if phone.keys:
            return phone.keys
        found = self.categories.get(phone.key_category)
        return found if found is not None else self.categories.get("*", ())

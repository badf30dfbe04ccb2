"""Typed messages and their JSON codec.

Theory of operation: a message class is a frozen attrs class registered under its
``(api, mt)`` pair by :func:`message`. Its annotated fields *are* the schema: decoding walks
the fields, checks each wire value against the annotation, and builds the instance, so a
message object that exists is valid. Fields whose wire name differs from the Python name
(``pbxObj`` → ``pbx_obj``) say so with :func:`wire`. Unknown members are ignored (a tolerant
reader, as peers add fields between releases); an unknown ``mt`` decodes to
:class:`UnknownMessage` so the caller can ignore it instead of closing the session.

Dispatch is one hop: ``_REGISTRY[(api, mt)]``.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar, Union, get_args, get_origin

import attrs
from attrs import frozen

from .. import jsonwire
from ..errors import ProtocolError

T = TypeVar("T")
M = TypeVar("M", bound="Message")

_REGISTRY: dict[tuple[str | None, str], type[Message]] = {}


def wire(name: str, **kwargs: Any) -> Any:
    """An attrs field whose JSON member is called ``name``."""
    return attrs.field(metadata={"wire": name}, **kwargs)


def lenient_one(**kwargs: Any) -> Any:
    """A field holding one object that some peers wrap in a one-element array.

    The Devices documentation shows ``"device":[{...}]`` in one example and an object
    everywhere else; accept both, send an object.
    """
    return attrs.field(metadata={"lenient_one": True}, **kwargs)


def rest(**kwargs: Any) -> Any:
    """A ``dict`` field collecting every member the class does not name, sent back as is.

    For records provd reads, changes and writes back whole (PbxAdminApi ``devices``:
    ``UpdateObject`` replaces the whole list, so members a newer PBX adds must survive a
    read-modify-write). ``mt``, ``api`` and ``src`` are never collected.
    """
    return attrs.field(metadata={"rest": True}, factory=dict, **kwargs)


@frozen(kw_only=True)
class Message:
    """Base of every AppWebsocket message: carries the optional ``src`` echo tag."""

    MT: ClassVar[str] = ""
    API: ClassVar[str | None] = None

    src: str | None = None

    def reply(self, cls: type[M], **fields: Any) -> M:
        """Build the response ``cls`` to this request, echoing ``src`` (spec section 2)."""
        return cls(src=self.src, **fields)


@frozen(kw_only=True)
class UnknownMessage(Message):
    """A message whose ``(api, mt)`` provd does not know; kept whole so it can be logged."""

    mt: str
    api: str | None = None
    body: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class _FieldSpec:
    name: str
    wire: str
    kind: Any
    required: bool
    lenient_one: bool
    rest: bool = False


_SPECS: dict[type, tuple[_FieldSpec, ...]] = {}


def _spec(cls: type) -> tuple[_FieldSpec, ...]:
    spec = _SPECS.get(cls)
    if spec is None:
        hints = typing.get_type_hints(cls)
        spec = tuple(
            _FieldSpec(
                name=f.name,
                wire=f.metadata.get("wire", f.name),
                kind=hints[f.name],
                required=f.default is attrs.NOTHING,
                lenient_one=bool(f.metadata.get("lenient_one")),
                rest=bool(f.metadata.get("rest")),
            )
            for f in attrs.fields(cls)
            if f.name != "src"
        )
        _SPECS[cls] = spec
    return spec


def record(cls: type[T]) -> type[T]:
    """Make ``cls`` a frozen, keyword-only value class usable as a nested message part."""
    return frozen(kw_only=True)(cls)


def message(mt: str, *, api: str | None = None) -> Callable[[type[M]], type[M]]:
    """Register a message class for ``mt`` (inside ``api``, if the message carries one)."""

    def register(cls: type[M]) -> type[M]:
        cls = frozen(kw_only=True)(cls)
        cls.MT = mt
        cls.API = api
        key = (api, mt)
        if key in _REGISTRY:
            raise RuntimeError(f"message {key} registered twice")
        _REGISTRY[key] = cls
        return cls

    return register


def registered() -> dict[tuple[str | None, str], type[Message]]:
    """All registered message classes by ``(api, mt)`` (a copy)."""
    return dict(_REGISTRY)


# --- decoding ---------------------------------------------------------------------------


def _optional_inner(kind: Any) -> Any | None:
    """For ``X | None`` return X, else None."""
    origin = get_origin(kind)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(kind) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return None


def _check(value: Any, kind: Any, where: str) -> Any:
    if kind is Any:
        return value
    if kind is str:
        if isinstance(value, str):
            return value
        raise ProtocolError(f"{where}: expected a string")
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise ProtocolError(f"{where}: expected true or false")
    if kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ProtocolError(f"{where}: expected an integer")
    if kind is float:
        if jsonwire.is_finite_number(value):
            return value
        raise ProtocolError(f"{where}: expected a number")
    origin = get_origin(kind)
    if origin in (Union, types.UnionType):
        # ``int | str``: the first alternative that fits (peers differ, spec section 8.3).
        alternatives = [a for a in get_args(kind) if a is not type(None)]
        for alternative in alternatives:
            try:
                return _check(value, alternative, where)
            except ProtocolError:
                continue
        names = " or ".join(getattr(a, "__name__", str(a)) for a in alternatives)
        raise ProtocolError(f"{where}: expected {names}")
    if kind is dict or origin is dict:
        if isinstance(value, dict):
            return value
        raise ProtocolError(f"{where}: expected an object")
    if origin is tuple:
        if not isinstance(value, list):
            raise ProtocolError(f"{where}: expected an array")
        (item_kind, _ellipsis) = get_args(kind)
        return tuple(_check(v, item_kind, f"{where}[{i}]") for i, v in enumerate(value))
    if attrs.has(kind):
        if not isinstance(value, dict):
            raise ProtocolError(f"{where}: expected an object")
        return _build(kind, value, where)
    raise TypeError(f"unsupported field type {kind!r} at {where}")  # a bug in a message class


def _build(cls: type[T], obj: dict[str, Any], where: str) -> T:
    kwargs: dict[str, Any] = {}
    for f in _spec(cls):
        if f.rest:
            named = {g.wire for g in _spec(cls)} | {"mt", "api", "src"}
            kwargs[f.name] = {k: v for k, v in obj.items() if k not in named}
            continue
        value = obj.get(f.wire)
        here = f"{where}.{f.wire}"
        if value is None:
            if f.required:
                raise ProtocolError(f"{here}: missing")
            continue
        kind = _optional_inner(f.kind) or f.kind
        if f.lenient_one and isinstance(value, list):
            if len(value) != 1:
                raise ProtocolError(f"{here}: expected one object")
            value = value[0]
        kwargs[f.name] = _check(value, kind, here)
    if "src" in attrs.fields_dict(cls):
        src = obj.get("src")
        if src is not None:
            kwargs["src"] = _check(src, str, f"{where}.src")
    return cls(**kwargs)


class InvalidMessage(ProtocolError):
    """A known message with a missing or mistyped member.

    Carries what a receiver needs to answer instead of closing: the message type and the
    request's ``src`` (when that at least was a string).
    """

    def __init__(self, reason: str, *, mt: str, api: str | None, src: str | None) -> None:
        super().__init__(reason)
        self.mt = mt
        self.api = api
        self.src = src


def decode(obj: dict[str, Any]) -> Message:
    """Turn a decoded JSON object into its typed message.

    Returns:
        The registered message for ``(api, mt)``, or :class:`UnknownMessage`.

    Raises:
        ProtocolError: ``mt`` missing or not a string, ``api``/``src`` not strings.
        InvalidMessage: (a ProtocolError) a known message with missing or mistyped fields.
    """
    mt = obj.get("mt")
    if not isinstance(mt, str) or not mt:
        raise ProtocolError("message has no mt")
    api = obj.get("api")
    if api is not None and not isinstance(api, str):
        raise ProtocolError(f"{mt}: api is not a string")
    cls = _REGISTRY.get((api, mt))
    if cls is None and api is not None:
        # Base messages (AppInfo, KeepAlive, ...) may arrive tagged with any api.
        cls = _REGISTRY.get((None, mt))
    if cls is None:
        src = obj.get("src")
        if src is not None and not isinstance(src, str):
            raise ProtocolError(f"{mt}: src is not a string")
        return UnknownMessage(mt=mt, api=api, src=src, body=obj)
    try:
        return _build(cls, obj, mt)
    except ProtocolError as exc:
        src = obj.get("src")
        raise InvalidMessage(
            exc.reason, mt=mt, api=api, src=src if isinstance(src, str) else None
        ) from None


def decode_text(data: str | bytes) -> Message:
    """:func:`decode` a websocket text frame. Raises :class:`ProtocolError`."""
    return decode(jsonwire.loads_object(data))


# --- encoding ---------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    if attrs.has(type(value)):
        return _fields_to_json(value)
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def _fields_to_json(value: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in _spec(type(value)):
        v = getattr(value, f.name)
        if f.rest:
            continue
        if v is not None:
            out[f.wire] = _plain(v)
    for f in _spec(type(value)):
        if f.rest:
            for k, v in getattr(value, f.name).items():
                out.setdefault(k, v)
    return out


def encode(msg: Message) -> dict[str, Any]:
    """The JSON object for ``msg``: ``mt``, ``api`` (if any), fields, then ``src``."""
    if isinstance(msg, UnknownMessage):
        return dict(msg.body)
    out: dict[str, Any] = {"mt": msg.MT}
    if msg.API is not None:
        out["api"] = msg.API
    out.update(_fields_to_json(msg))
    if msg.src is not None:
        out["src"] = msg.src
    return out


def encode_text(msg: Message) -> str:
    """:func:`encode` to compact JSON text for a websocket text frame."""
    return jsonwire.dumps(encode(msg))

"""Hypothesis strategies derived from the message classes themselves."""

import types
import typing
from typing import Any, Union, get_args, get_origin

import attrs
from hypothesis import strategies as st

from provd.protocol.messages._codec import _optional_inner

json_scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)
json_objects = st.dictionaries(st.text(max_size=8), json_values, max_size=5)


def for_type(kind: Any) -> st.SearchStrategy:
    inner = _optional_inner(kind)
    if inner is not None:
        return st.none() | for_type(inner)
    if get_origin(kind) in (Union, types.UnionType):  # int | str | None
        return st.one_of([st.none() if a is type(None) else for_type(a) for a in get_args(kind)])
    if kind is str:
        return st.text(max_size=30)
    if kind is bool:
        return st.booleans()
    if kind is int:
        return st.integers(-(2**53), 2**53)
    if kind is dict or get_origin(kind) is dict:
        return json_objects
    if get_origin(kind) is tuple:
        return st.lists(for_type(get_args(kind)[0]), max_size=3).map(tuple)
    if attrs.has(kind):
        return for_class(kind)
    raise TypeError(kind)


def for_class(cls: type) -> st.SearchStrategy:
    hints = typing.get_type_hints(cls)
    fields = {f.name: for_type(hints[f.name]) for f in attrs.fields(cls)}
    for f in attrs.fields(cls):
        if f.metadata.get("rest"):  # members the class does not name: never a named one
            keys = st.text(max_size=6).map(lambda k: "x-" + k)
            fields[f.name] = st.dictionaries(keys, json_scalars, max_size=2)
    return st.builds(cls, **fields)


#: Any code point, lone surrogates included: JSON's ``\ud800`` escapes put them in strings.
any_char = st.characters() | st.characters(categories=["Cs"])
#: Text as a hostile peer may send it: empty, short, or far longer than any real field
#: (a seed or key of thousands of characters, multi-byte and surrogates included).
wire_text = st.one_of(
    st.text(max_size=40),
    st.text(any_char, max_size=40),
    st.text(any_char, min_size=100, max_size=800),
    st.integers(0, 5000).map(lambda n: "s" * n),
    st.integers(0, 1000).map(lambda n: "ä" * n),
)
#: Hex (and not quite hex) ciphertexts, short and long.
hex_text = st.one_of(
    st.binary(max_size=64).map(bytes.hex),
    st.binary(min_size=1000, max_size=2100).map(bytes.hex),
    wire_text,
)
#: JSON objects whose strings may be long or hold lone surrogates.
wire_objects = st.dictionaries(
    wire_text, st.none() | st.booleans() | st.integers() | wire_text | json_objects, max_size=5
)

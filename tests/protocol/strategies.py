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
    return st.builds(cls, **fields)

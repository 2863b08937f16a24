"""Where a value has no JSON form: :func:`unstorable`, and :func:`finite`.

A state is stored as JSON. pydantic writes most Python values so (a
``datetime`` as text, a ``set`` or a ``tuple`` as a list); what it cannot
— an object of a class it does not know, bytes that are not UTF-8 text, a
list that holds itself — fails its dump with an error that names a type
but not where it was, and NaN and the infinities it keeps as floats, which
no JSON reader takes (the UI, A2A clients, PostgreSQL's ``jsonb``). So
when a dump fails, or what a step changed holds such a float, the value
is walked to the first place at fault, for an error that says where
(``state.items[2].when``) and what was found there. Only then: a state
that dumps costs nothing here.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from pydantic import BaseModel
from pydantic_core import to_jsonable_python

__all__ = ["Fault", "finite", "unstorable"]

_TEXT_KEYS = (str, int, float, bool, type(None))


def _strict_json() -> Callable[[Any], object]:
    """Writes JSON, refusing NaN and the infinities (ValueError): one C
    encoder for every check, as :func:`agent_node.store.patches.dumps`
    makes its own (``JSONEncoder.encode`` makes one per call)."""
    encoder = json.JSONEncoder(allow_nan=False, check_circular=False)
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # an interpreter without the C accelerator
        return encoder.encode
    chunks = make(
        None, encoder.default, json.encoder.encode_basestring, None, ":", ",", False, False, False
    )
    return lambda data: chunks(data, 0)


_strict = _strict_json()


@dataclasses.dataclass(frozen=True, slots=True)
class Fault:
    """What has no JSON form, and where: ``path`` names it from the root
    (``state.items[2].when``), ``found`` says what was there."""

    path: str
    found: str
    #: What to store instead.
    hint: str

    def __str__(self) -> str:
        return f"{self.path} holds {self.found}; {self.hint}"


def finite(data: Any) -> bool:
    """Whether JSON data (a pydantic dump) holds no NaN or infinity."""
    try:
        _strict(data)
    except ValueError:
        return False
    return True


def unstorable(value: object, path: str) -> Fault | None:
    """The first place in ``value`` (named ``path``) that has no JSON form,
    depth first; None when there is none."""
    return _walk(value, path, frozenset())


def _walk(value: object, path: str, holders: frozenset[int]) -> Fault | None:
    if isinstance(value, float):
        return None if math.isfinite(value) else _not_finite(value, path)
    if isinstance(value, str | int | bool | None):
        return None
    if isinstance(value, bytes | bytearray):
        return _bytes(bytes(value), path)
    children = _children(value, path)
    if children is None:
        return _leaf(value, path)
    if id(value) in holders:
        return Fault(path, "a value that holds it (a cycle)", "store a copy, or an id of it")
    inner = holders | {id(value)}
    for child_path, child in children:
        fault = _walk(child, child_path, inner)
        if fault is not None:
            return fault
    return None


def _children(value: object, path: str) -> Iterator[tuple[str, object]] | None:
    """The values ``value`` holds, each with its path; None for a leaf."""
    if isinstance(value, BaseModel):
        fields = {**value.__dict__, **(value.__pydantic_extra__ or {})}
        return ((f"{path}.{name}", item) for name, item in fields.items())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return ((f"{path}.{f.name}", getattr(value, f.name)) for f in dataclasses.fields(value))
    if isinstance(value, Mapping):
        return _entries(value, path)
    if isinstance(value, list | tuple):
        return ((f"{path}[{i}]", item) for i, item in enumerate(value))
    if isinstance(value, set | frozenset):  # written as a list, in no order
        return ((f"{path}[…]", item) for item in value)
    return None


def _entries(mapping: Mapping[Any, Any], path: str) -> Iterator[tuple[str, object]]:
    for key, item in mapping.items():
        if isinstance(key, str):
            yield f"{path}[{json.dumps(key, ensure_ascii=False)}]", item
        elif isinstance(key, _TEXT_KEYS) or _leaf({key: None}, path) is None:
            yield f"{path}[{key!r}]", item
        else:  # a key JSON has no text for: the mapping is at fault
            yield path, _BadKey(key)


class _BadKey:
    """A mapping's key that pydantic cannot write as text (a leaf of the walk)."""

    __slots__ = ("key",)

    def __init__(self, key: object) -> None:
        self.key = key


def _leaf(value: object, path: str) -> Fault | None:
    if isinstance(value, _BadKey):
        name = _type_name(value.key)
        return Fault(path, f"a key of type {name}", "give a mapping str keys")
    try:
        to_jsonable_python(value)
    except (ValueError, TypeError):
        hint = (
            "store str, int, float, bool, None, lists and dicts of them, pydantic models,"
            " or what pydantic writes as text (datetime, UUID, Decimal, enums)"
        )
        return Fault(path, f"a value of type {_type_name(value)}", hint)
    return None


def _bytes(value: bytes, path: str) -> Fault | None:
    try:
        value.decode()
    except UnicodeDecodeError:
        hint = "store them as base64 text (base64.b64encode(data).decode())"
        return Fault(path, "bytes that are not UTF-8 text", hint)
    return None


def _not_finite(value: float, path: str) -> Fault:
    return Fault(path, f"float {value!r}", "JSON has no NaN or infinity: store None, or a string")


def _type_name(value: object) -> str:
    kind = type(value)
    module = kind.__module__
    return kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"

"""Whether a state model reads back from its JSON as it was: :func:`json_exact`.

A step's state is stored as JSON; a resumed execution validates that JSON
into the state model. The runner hands the next node the state it holds
in memory instead, for speed — the same thing only when nothing a step can
write changes in a JSON round trip. In a field typed ``Any`` (or
``dict[str, Any]``) a ``datetime`` becomes a string, a ``set`` or a
``tuple`` a list, an int key a string key; a union such as ``datetime |
str`` reads the string back as ``str``; an instance of a subclass of a
nested model loses its extra fields. There the runner validates the stored
JSON for the next node (a walk found steps seeing ``datetime`` live and
``str`` after a resume).

The answer is a conservative reading of the annotations: a model is exact
when every field is, recursively, a JSON scalar, a type pydantic reads back
from its JSON form (dates and times, ``UUID``, ``Decimal``, enums,
literals), a builtin container of exact ones, ``X | None`` of an exact
``X``, a union of JSON scalars, or a nested model that is exact itself and
has no subclass (when first asked: the answer is kept per model); a model
with validators, serializers or extra fields allowed is not. Anything else
counts as inexact: it costs one validation a step, never a wrong state.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import functools
import types
import typing
import uuid
from typing import Any

from pydantic import BaseModel

__all__ = ["json_exact"]

_SCALARS: frozenset[object] = frozenset({str, int, float, bool, type(None)})
#: Types pydantic validates back from the JSON it dumps them as.
_READ_BACK: frozenset[object] = frozenset(
    {
        datetime.datetime,
        datetime.date,
        datetime.time,
        datetime.timedelta,
        uuid.UUID,
        decimal.Decimal,
    }
)
_CONTAINERS: frozenset[object] = frozenset({list, set, frozenset, tuple, dict})
_UNIONS: frozenset[object] = frozenset({typing.Union, types.UnionType})


@functools.cache
def json_exact(model: type[BaseModel]) -> bool:
    """Whether every state of ``model`` equals the validation of its JSON dump."""
    return _model_exact(model, frozenset())


def _model_exact(model: type[BaseModel], seen: frozenset[type[BaseModel]]) -> bool:
    if model in seen:  # a recursive model: its other fields decide
        return True
    decorators = model.__pydantic_decorators__
    if any(getattr(decorators, f.name) for f in dataclasses.fields(decorators)):
        return False
    if model.model_config.get("extra") == "allow":
        return False
    inner = seen | {model}
    return all(_exact(field.annotation, inner) for field in model.model_fields.values())


def _exact(annotation: Any, seen: frozenset[type[BaseModel]]) -> bool:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _exact(args[0], seen)
    if origin is typing.Literal:
        return all(type(arg) in _SCALARS for arg in args)
    if origin in _UNIONS:
        members = [a for a in args if a is not type(None)]
        if all(m in _SCALARS for m in members):
            return True
        return len(members) == 1 and _exact(members[0], seen)
    if origin in _CONTAINERS:  # a bare ``list`` or ``dict`` holds anything
        return bool(args) and all(_exact(arg, seen) for arg in args if arg is not Ellipsis)
    if annotation in _SCALARS or annotation in _READ_BACK:
        return True
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return True
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return not annotation.__subclasses__() and _model_exact(annotation, seen)
    return False

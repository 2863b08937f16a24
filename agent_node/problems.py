"""pydantic's validation errors as users read them: each error as its field
path (``skills[0].id``, as written in the file) and what is wrong, without
the URL pydantic gives each error or the input it echoes; a misspelt field
is an "unknown field", with the close match among the fields allowed there.

Every message that tells a user of a ``ValidationError`` (configuration
files, workflow files, a state or an input that does not fit, a signal's
payload) says it through :func:`describe_validation` or :func:`problems`.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import ValidationError
    from pydantic_core import ErrorDetails

__all__ = ["MAX_PROBLEMS", "Problem", "describe_validation", "field_path", "problems"]

#: Problems of one ``ValidationError`` said in one line at most (the rest are counted).
MAX_PROBLEMS = 10

_SEQUENCES = (list, tuple, set, frozenset, Sequence)
_MAPPINGS = (dict, Mapping)


@dataclass(frozen=True, slots=True)
class Problem:
    """One of pydantic's errors for a user: ``loc`` as pydantic gives it,
    ``field`` written as in the file (``skills[0].id``; empty: the whole
    value), and what is wrong."""

    loc: tuple[int | str, ...]
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


def problems(exc: ValidationError, model: type[Any] | None = None) -> list[Problem]:
    """Each error of ``exc`` without pydantic's URL and echoed input. A
    misspelt field is an "unknown field", with the close match among what
    ``model`` (the validated class) allows there, or among the required
    fields the same value lacks."""
    errors = exc.errors(include_url=False)
    return [_problem(error, errors, model) for error in errors]


def describe_validation(exc: ValidationError, model: type[Any] | None = None) -> str:
    """``exc`` in one line: ``field: message; ...`` (:data:`MAX_PROBLEMS` at most)."""
    found = problems(exc, model)
    shown = "; ".join(str(problem) for problem in found[:MAX_PROBLEMS])
    more = len(found) - MAX_PROBLEMS
    return f"{shown}; and {more} more" if more > 0 else shown


def field_path(loc: Sequence[int | str]) -> str:
    """``("cases", 0, "when")`` as ``cases[0].when``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text


def _problem(error: ErrorDetails, errors: list[ErrorDetails], model: type[Any] | None) -> Problem:
    loc = tuple(error["loc"])
    ctx = error.get("ctx") or {}
    if error["type"] == "extra_forbidden" and loc:
        message = _unknown_field(loc, errors, model)
    elif error["type"] in ("value_error", "assertion_error") and "error" in ctx:
        message = str(ctx["error"])  # without pydantic's "Value error, " before it
    else:
        message = error["msg"]
    return Problem(loc, field_path(loc), message)


def _unknown_field(
    loc: tuple[int | str, ...], errors: list[ErrorDetails], model: type[Any] | None
) -> str:
    name, parent = str(loc[-1]), loc[:-1]
    allowed = set(_fields_at(model, parent)) if model is not None else set()
    allowed.update(
        str(other["loc"][-1])
        for other in errors
        if other["type"] == "missing" and other["loc"] and tuple(other["loc"][:-1]) == parent
    )
    close = difflib.get_close_matches(name, sorted(allowed), n=1)
    return f"unknown field {name!r}" + (f" (did you mean {close[0]!r}?)" if close else "")


def _fields_at(model: type[Any], path: tuple[int | str, ...]) -> list[str]:
    """The fields allowed at ``path`` inside ``model``, found by following
    its annotations (every model a union there may hold)."""
    kinds: list[Any] = [model]
    for part in path:
        kinds = [inner for kind in kinds for inner in _inside(kind, part)]
    return [name for kind in kinds for name in _field_names(kind)]


def _inside(kind: Any, part: int | str) -> list[Any]:
    found = []
    for member in _members(kind):
        origin, args = typing.get_origin(member), typing.get_args(member)
        fields = _fields(member)
        if fields is not None and part == member.__name__:
            found.append(member)  # pydantic names a union's member in the path
        elif fields is not None and isinstance(part, str):
            found += [
                info.annotation for name, info in fields.items() if part in (name, info.alias)
            ]
        elif origin in _SEQUENCES and isinstance(part, int) and args:
            found.append(args[0])
        elif origin in _MAPPINGS and len(args) == 2:
            found.append(args[1])
    return found


def _members(kind: Any) -> list[Any]:
    """``kind`` without ``Annotated``, a union as its members."""
    origin = typing.get_origin(kind)
    if origin is typing.Annotated:
        return _members(typing.get_args(kind)[0])
    if origin is typing.Union or origin is types.UnionType:
        return [member for arg in typing.get_args(kind) for member in _members(arg)]
    return [kind]


def _fields(kind: Any) -> dict[str, Any] | None:
    """A pydantic model's fields, or None for any other type."""
    fields = getattr(kind, "model_fields", None) if isinstance(kind, type) else None
    return fields if isinstance(fields, dict) else None


def _field_names(kind: Any) -> list[str]:
    return [
        info.alias if isinstance(info.alias, str) else name
        for member in _members(kind)
        for name, info in (_fields(member) or {}).items()
    ]

"""The ids a request names: no NUL character, at most :data:`MAX_ID_CHARS`
characters, on every binding and store.

A task id, a ``contextId``, a push config's id reach the store as text, and
PostgreSQL's text cannot hold U+0000: a ``GetTask`` of such an id was an
internal error there (asyncpg's traceback in the log) and "not found" on
SQLite, a send naming such a ``contextId`` a task on SQLite and an internal
error on PostgreSQL. A long ``contextId`` is a key of an index, whose rows
PostgreSQL bounds (~2.7 kB): one of 900,000 characters was an internal
error too, and a 900 kB task id came back whole in the not-found message.
No id this node makes comes near either, so a request naming one is the
caller's mistake: InvalidParams (-32602; HTTP 400, gRPC ``INVALID_ARGUMENT``)
naming the field, before the handler runs.

The ids are every ``id``, ``…_id`` and ``…_ids`` field of the request and
of the objects it holds (its message, its push config); a message's parts
and metadata may hold NUL (they are stored as JSON, where it is ``\\u0000``).
"""

from __future__ import annotations

from functools import cache
from types import UnionType
from typing import Union, get_args, get_origin

from pydantic import BaseModel

from agent_node.a2a.protocol.errors import InvalidParams
from agent_node.a2a.protocol.models import proto_json_name

__all__ = ["MAX_ID_CHARS", "check_ids"]

#: The longest id a request may name: 512 characters, at most 2 kB of UTF-8
#: (a UUID is 36; an index row of PostgreSQL holds ~2.7 kB).
MAX_ID_CHARS = 512
NUL = "\x00"
_ID_ENDS = ("_id", "_ids")


def check_ids(request: BaseModel) -> None:
    """Raise InvalidParams when an id of ``request`` holds a NUL character
    or is longer than :data:`MAX_ID_CHARS`."""
    found = _bad_id(request)
    if found is not None:
        where, text = found
        problem = (
            f"an id is at most {MAX_ID_CHARS} characters, not {len(text)}"
            if len(text) > MAX_ID_CHARS
            else "an id cannot hold a NUL character (U+0000)"
        )
        raise InvalidParams(f"{where}: {problem}")


def _bad_id(model: BaseModel) -> tuple[str, str] | None:
    """Where the first id at fault is in ``model`` (``message.contextId``), and it."""
    ids, inner = _fields(type(model))
    for name in ids:
        value = getattr(model, name)
        for text in value if isinstance(value, list) else (value,):
            if isinstance(text, str) and (len(text) > MAX_ID_CHARS or NUL in text):
                return proto_json_name(name), text
    for name in inner:
        held = getattr(model, name)
        if held is not None and (found := _bad_id(held)) is not None:
            return f"{proto_json_name(name)}.{found[0]}", found[1]
    return None


@cache
def _fields(model: type[BaseModel]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The fields of ``model`` that are ids, and those that hold an object
    (a list of objects is left: none of a request's holds an id)."""
    ids = tuple(name for name in model.model_fields if name == "id" or name.endswith(_ID_ENDS))
    inner = tuple(name for name, field in model.model_fields.items() if _holds(field.annotation))
    return ids, inner


def _holds(annotation: object) -> bool:
    """Whether a field of type ``annotation`` holds an object (``X | None`` too)."""
    kinds = get_args(annotation) if get_origin(annotation) in (UnionType, Union) else (annotation,)
    return any(isinstance(kind, type) and issubclass(kind, BaseModel) for kind in kinds)

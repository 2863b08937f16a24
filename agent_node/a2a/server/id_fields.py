"""The ids a request names hold no NUL character, on every binding and store.

A task id, a ``contextId``, a push config's id reach the store as text, and
PostgreSQL's text cannot hold U+0000: a ``GetTask`` of such an id was an
internal error there (asyncpg's traceback in the log) and "not found" on
SQLite, a send naming such a ``contextId`` a task on SQLite and an internal
error on PostgreSQL. No id this node makes holds one, so a request naming
one is the caller's mistake: InvalidParams (-32602; HTTP 400, gRPC
``INVALID_ARGUMENT``) naming the field, before the handler runs.

The ids are every ``id``, ``…_id`` and ``…_ids`` field of the request and
of the objects it holds (its message, its push config); a message's parts
and metadata may hold NUL (they are stored as JSON, where it is ``\\u0000``).
"""

from __future__ import annotations

from pydantic import BaseModel

from agent_node.a2a.protocol.errors import InvalidParams
from agent_node.a2a.protocol.models import proto_json_name

__all__ = ["check_ids"]

NUL = "\x00"


def check_ids(request: BaseModel) -> None:
    """Raise InvalidParams when an id of ``request`` holds a NUL character."""
    where = _nul_id(request)
    if where is not None:
        raise InvalidParams(f"{where}: an id cannot hold a NUL character (U+0000)")


def _nul_id(model: BaseModel, prefix: str = "") -> str | None:
    """Where the first id holding NUL is in ``model`` (``message.contextId``), or None."""
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            found = _nul_id(value, f"{prefix}{proto_json_name(name)}.")
            if found is not None:
                return found
        elif _is_id(name) and _holds_nul(value):
            return prefix + proto_json_name(name)
    return None


def _is_id(name: str) -> bool:
    return name == "id" or name.endswith(("_id", "_ids"))


def _holds_nul(value: object) -> bool:
    if isinstance(value, str):
        return NUL in value
    return isinstance(value, list) and any(isinstance(v, str) and NUL in v for v in value)

"""A model node's structured answers: the schema it is sent, and how an answer is read.

``schema`` is a JSON Schema object (or the ``key: type`` shorthand of state
schemas), or ``"package.module:Model"`` naming a pydantic model (imported
on first use). It goes to the model as an OpenAI-style ``json_schema``
response format; an answer is parsed (a fenced ```json block is unwrapped)
and validated, and what is wrong with it is said in a few lines the model
can act on (the node's one repair sends them back).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from agent_node.errors import NodeFailed

__all__ = ["Invalid", "imported_model", "parsed", "response_format", "schema_model"]

_FENCED = re.compile(r"\A\s*```[A-Za-z0-9_-]*\s*\n(?P<body>.*?)\n?```\s*\Z", re.DOTALL)


class Invalid(Exception):
    """An answer that does not parse or validate (the message says why)."""


def parsed(shape: type[BaseModel], text: str) -> Any:
    fenced = _FENCED.match(text)
    body = fenced.group("body") if fenced else text
    try:
        return shape.model_validate_json(body).model_dump(mode="json")
    except ValidationError as exc:
        problems = [
            f"- {'.'.join(map(str, error['loc'])) or '(the answer)'}: {error['msg']}"
            for error in exc.errors(include_url=False)[:10]
        ]
        raise Invalid("\n".join(problems)) from None


def schema_model(schema: Mapping[str, Any], node_id: str) -> type[BaseModel]:
    from agent_node.workflow.schema import SchemaError, model_from_json_schema

    try:
        return model_from_json_schema(schema, name=f"{node_id or 'Model'}Answer")
    except SchemaError as exc:
        raise ValueError(f"schema: {exc}".replace("state_schema", "schema")) from None


def imported_model(ref: str, node_id: str) -> type[BaseModel]:
    from agent_node.errors import ConfigError
    from agent_node.workflow.refs import import_object

    try:
        target = import_object(ref)
    except ConfigError as exc:
        raise NodeFailed(f"model node {node_id!r}: schema {ref!r}: {exc}") from None
    if not (isinstance(target, type) and issubclass(target, BaseModel)):
        raise NodeFailed(f"model node {node_id!r}: schema {ref!r} is not a pydantic model")
    return target


def response_format(
    node_id: str, written: Mapping[str, Any] | str | None, shape: type[BaseModel] | None
) -> dict[str, Any] | None:
    """The response format for a node's ``schema`` as ``written`` and the
    model it became (None: the node asks for text)."""
    if shape is None:
        return None
    if isinstance(written, Mapping) and _is_full_schema(written):
        schema = dict(written)  # as the author wrote it
    else:
        schema = shape.model_json_schema()
    name = re.sub(r"[^A-Za-z0-9_-]", "_", node_id or "answer")[:64] or "answer"
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema}}


def _is_full_schema(schema: Mapping[str, Any]) -> bool:
    return "type" in schema or "properties" in schema

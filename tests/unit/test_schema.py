"""JSON Schema → pydantic model for YAML state schemas."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from agent_node.workflow.schema import SchemaError, model_from_json_schema

FULL: dict[str, Any] = {
    "type": "object",
    "properties": {
        "query": {"type": "string", "description": "what was asked", "minLength": 1},
        "count": {"type": "integer", "default": 3},
        "score": {"type": "number"},
        "done": {"type": "boolean"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "mode": {"enum": ["fast", "slow"]},
        "user": {
            "type": "object",
            "properties": {"name": {"type": "string"}},
            "required": ["name"],
        },
        "meta": {"type": "object"},
        "note": {"type": ["string", "null"]},
        "either": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
        "nothing": {"type": "null"},
    },
    "required": ["query"],
}


def errors_of(model: type[BaseModel], **values: Any) -> list[tuple[Any, ...]]:
    with pytest.raises(ValidationError) as caught:
        model(**values)
    return [error["loc"] for error in caught.value.errors()]


def test_full_schema_validates_real_values() -> None:
    model = model_from_json_schema(FULL)
    state = model(
        query="why",
        score=1,
        tags=["a"],
        mode="fast",
        user={"name": "Ann"},
        meta={"any": [1]},
        either="x",
    )
    assert state.model_dump() == {
        "query": "why",
        "count": 3,
        "score": 1.0,
        "done": None,
        "tags": ["a"],
        "mode": "fast",
        "user": {"name": "Ann"},
        "meta": {"any": [1]},
        "note": None,
        "either": "x",
        "nothing": None,
    }
    assert model.__name__ == "State"
    assert model.model_fields["query"].description == "what was asked"


@pytest.mark.parametrize(
    ("values", "loc"),
    [
        ({}, ("query",)),
        ({"query": ""}, ("query",)),
        ({"query": "q", "unknown": 1}, ("unknown",)),
        ({"query": "q", "mode": "medium"}, ("mode",)),
        ({"query": "q", "user": {"name": "a", "extra": 1}}, ("user", "extra")),
        ({"query": "q", "user": {}}, ("user", "name")),
        ({"query": "q", "tags": [1]}, ("tags", 0)),
        ({"query": "q", "count": "many"}, ("count",)),
    ],
)
def test_full_schema_rejects_bad_values(values: dict[str, Any], loc: tuple[Any, ...]) -> None:
    assert loc in errors_of(model_from_json_schema(FULL), **values)


def test_shorthand_maps_keys_to_types() -> None:
    model = model_from_json_schema(
        {"query": "string", "count": "integer", "tags": {"type": "array", "items": "string"}},
        name="Triage",
    )
    assert model.__name__ == "Triage"
    assert model().model_dump() == {"query": None, "count": None, "tags": None}
    assert model(query="q", count=2, tags=["x"]).model_dump()["tags"] == ["x"]
    assert ("other",) in errors_of(model, other=1)


def test_defaults_are_not_shared_between_states() -> None:
    model = model_from_json_schema({"items": {"type": "array", "default": []}})
    first, second = model(), model()
    first.items.append(1)  # type: ignore[attr-defined]
    assert second.items == []  # type: ignore[attr-defined]


def test_json_schema_of_the_model_is_available() -> None:
    schema = model_from_json_schema(FULL).model_json_schema()
    assert schema["required"] == ["query"]
    assert schema["additionalProperties"] is False


@pytest.mark.parametrize(
    ("schema", "fragment"),
    [
        ([1], "must be a mapping"),
        ({"type": "array"}, "must have type 'object'"),
        ({"a": "strng"}, "state_schema.a: unknown type 'strng'"),
        ({"a": 5}, "must be a type name or a schema"),
        ({"a": {"$ref": "#/defs/x"}}, "'$ref' is not supported"),
        ({"a": {"enum": []}}, "enum must be a non-empty list"),
        ({"a": {"enum": [{"x": 1}]}}, "enum values must be"),
        ({"a": {"anyOf": "string"}}, "anyOf/oneOf must be a non-empty list"),
        ({"a b": "string"}, "'a b' is not usable as a state key"),
        ({"_a": "string"}, "'_a' is reserved"),
        ({"json": "string"}, "'json' is reserved"),
        ({"type": "object", "properties": {}, "required": ["x"]}, "names 'x'"),
        ({"type": "object", "properties": []}, "properties must be a mapping"),
        ({"u": {"type": "object", "properties": {"v": "nope"}}}, "state_schema.u.v"),
    ],
)
def test_refuses_schemas_it_cannot_use(schema: Any, fragment: str) -> None:
    with pytest.raises(SchemaError) as caught:
        model_from_json_schema(schema)
    assert fragment in str(caught.value)

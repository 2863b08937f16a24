"""JSON Schema → pydantic model, for the ``state_schema`` of YAML workflows.

Two spellings are accepted. The full one is a JSON Schema object::

    {type: object, properties: {query: {type: string}}, required: [query]}

The shorthand maps each key to a type name or a property schema::

    {query: string, count: integer, tags: {type: array, items: string}}

Supported: ``string``, ``integer``, ``number``, ``boolean``, ``null``,
``array`` (``items``), ``object`` (``properties`` → nested model, else
``dict[str, Any]``), ``enum``, ``anyOf``/``oneOf``, a list of types
(``[string, "null"]``), ``default``, ``description`` and the simple bounds
(``minimum``, ``maxLength``, ``pattern``, ...). A property that is not
required and has no default defaults to ``None``. Every generated model
forbids unknown keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal, Union, cast

from pydantic import BaseModel, ConfigDict, Field, create_model
from pydantic.errors import PydanticUserError

__all__ = ["SchemaError", "model_from_json_schema"]

_SCALARS: dict[str, Any] = {
    "string": str,
    "integer": int,
    "number": float,
    "boolean": bool,
    "null": type(None),
}
_TYPE_NAMES = (*_SCALARS, "array", "object")
_BOUNDS = {
    "minimum": "ge",
    "maximum": "le",
    "exclusiveMinimum": "gt",
    "exclusiveMaximum": "lt",
    "minLength": "min_length",
    "maxLength": "max_length",
    "minItems": "min_length",
    "maxItems": "max_length",
    "pattern": "pattern",
}
_UNSUPPORTED = ("$ref", "allOf", "not", "if", "patternProperties")
_CONFIG = ConfigDict(extra="forbid", protected_namespaces=())


class SchemaError(ValueError):
    """A state schema this module cannot turn into a model."""


def model_from_json_schema(schema: Mapping[str, Any], name: str = "State") -> type[BaseModel]:
    """A pydantic model for ``schema`` (full JSON Schema or the key → type shorthand)."""
    if not isinstance(schema, Mapping):
        raise SchemaError(f"a state schema must be a mapping, not {type(schema).__name__}")
    if "type" in schema or "properties" in schema:
        if schema.get("type", "object") != "object":
            raise SchemaError(f"a state schema must have type 'object', not {schema['type']!r}")
        return _object_model(schema, name, "state_schema")
    return _object_model({"properties": schema}, name, "state_schema")


def _object_model(schema: Mapping[str, Any], name: str, path: str) -> type[BaseModel]:
    properties = schema.get("properties", {})
    required = schema.get("required", [])
    if not isinstance(properties, Mapping):
        raise SchemaError(f"{path}.properties must be a mapping")
    if not isinstance(required, list) or not all(isinstance(key, str) for key in required):
        raise SchemaError(f"{path}.required must be a list of property names")
    missing = [key for key in required if key not in properties]
    if missing:
        raise SchemaError(f"{path}.required names {missing[0]!r}, which is not a property")
    fields: dict[str, Any] = {
        key: _field(prop, f"{name}_{key}", f"{path}.{key}", required=key in required)
        for key, prop in properties.items()
        if _check_key(key, path)
    }
    try:
        model: type[BaseModel] = create_model(name, __config__=_CONFIG, **fields)
    except (PydanticUserError, TypeError, ValueError) as exc:
        raise SchemaError(f"{path}: {exc}") from None
    return model


def _check_key(key: object, path: str) -> bool:
    if not isinstance(key, str) or not key.isidentifier():
        raise SchemaError(f"{path}: {key!r} is not usable as a state key (use a Python name)")
    if key.startswith("_") or hasattr(BaseModel, key):
        raise SchemaError(f"{path}: {key!r} is reserved and cannot be a state key")
    return True


def _field(prop: object, name: str, path: str, *, required: bool) -> tuple[Any, Any]:
    annotation = _annotation(prop, name, path)
    info = prop if isinstance(prop, Mapping) else {}
    description = info.get("description")
    if "default" in info:
        return annotation, Field(default=info["default"], description=description)
    if required:
        return annotation, Field(description=description)
    return _optional(annotation), Field(default=None, description=description)


def _annotation(prop: object, name: str, path: str) -> Any:
    """The Python type for one property schema (or a bare type name)."""
    if isinstance(prop, str):
        prop = {"type": prop}
    if not isinstance(prop, Mapping):
        raise SchemaError(f"{path} must be a type name or a schema, not {type(prop).__name__}")
    for word in _UNSUPPORTED:
        if word in prop:
            raise SchemaError(f"{path}: {word!r} is not supported in state schemas")
    if "enum" in prop:
        annotation = _enum(prop["enum"], path)
    elif "anyOf" in prop or "oneOf" in prop:
        options = prop.get("anyOf", prop.get("oneOf"))
        if not isinstance(options, list) or not options:
            raise SchemaError(f"{path}: anyOf/oneOf must be a non-empty list of schemas")
        annotation = _union([_annotation(option, name, path) for option in options])
    elif isinstance(prop.get("type"), list):
        kinds = [_typed({**prop, "type": kind}, name, path) for kind in prop["type"]]
        annotation = _union(kinds)
    else:
        annotation = _typed(prop, name, path)
    bounds = {_BOUNDS[word]: prop[word] for word in _BOUNDS if word in prop}
    return Annotated[annotation, Field(**bounds)] if bounds else annotation


def _typed(prop: Mapping[str, Any], name: str, path: str) -> Any:
    kind = prop.get("type")
    if kind is None:
        return Any
    if kind in _SCALARS:
        return _SCALARS[kind]
    if kind == "array":
        items = prop.get("items")
        return list[Any] if items is None else list[_annotation(items, name, f"{path}[]")]  # type: ignore[misc]
    if kind == "object":
        if "properties" not in prop:
            return dict[str, Any]
        return _object_model(prop, name, path)
    raise SchemaError(f"{path}: unknown type {kind!r} (known: {', '.join(_TYPE_NAMES)})")


def _enum(values: object, path: str) -> Any:
    if not isinstance(values, list) or not values:
        raise SchemaError(f"{path}: enum must be a non-empty list")
    if not all(value is None or isinstance(value, str | int | float | bool) for value in values):
        raise SchemaError(f"{path}: enum values must be strings, numbers, booleans or null")
    return cast(Any, Literal)[tuple(values)]


def _union(options: list[Any]) -> Any:
    return options[0] if len(options) == 1 else cast(Any, Union)[tuple(options)]


def _optional(annotation: Any) -> Any:
    return cast(Any, Union)[annotation, None]

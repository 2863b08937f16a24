"""The A2A 1.0 protobuf messages, from our own descriptor, in a pool of their own.

The classes are built from :data:`.descriptor.SERIALIZED` in a private
``DescriptorPool``, not protobuf's default one: a2a-sdk registers the same
``lf.a2a.v1`` names there, and a process holding both (a program using the
SDK's client next to a node) would fail on the duplicate symbols.

Conversions go through the JSON the HTTP bindings speak (ProtoJSON,
camelCase), so one model and one handler serve every binding:
:func:`to_params` (request message → the operation's 1.0 params) and
:func:`from_json` (a result's ``to_json()`` → the reply message).
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Any

from google.protobuf import (
    descriptor_pool,
    empty_pb2,
    json_format,
    message_factory,
    struct_pb2,
    timestamp_pb2,
)
from google.protobuf.message import Message

from agent_node.a2a.protocol.grpc.descriptor import SERIALIZED

__all__ = ["PACKAGE", "POOL", "SERVICE", "from_json", "message_class", "to_params"]

PACKAGE = "lf.a2a.v1"
#: The service's full name, as gRPC method paths spell it.
SERVICE = f"{PACKAGE}.A2AService"

POOL = descriptor_pool.DescriptorPool()
for _dependency in (empty_pb2, struct_pb2, timestamp_pb2):
    POOL.AddSerializedFile(_dependency.DESCRIPTOR.serialized_pb)
POOL.AddSerializedFile(SERIALIZED)

_CLASSES: dict[str, type[Message]] = {}


def message_class(name: str) -> type[Message]:
    """The class of message ``name`` (``Task``; ``google.protobuf.Empty`` in full)."""
    full = name if "." in name else f"{PACKAGE}.{name}"
    cls = _CLASSES.get(full)
    if cls is None:
        cls = _CLASSES[full] = message_factory.GetMessageClass(POOL.FindMessageTypeByName(full))
    return cls


def to_params(message: Message) -> dict[str, Any]:
    """``message`` as the JSON object the HTTP bindings would have received.

    Written field by field (:func:`_dump`) as ``json_format.MessageToDict``
    writes it, which re-examines every descriptor each time; fields of the
    kinds the plan does not write (floats, maps of messages, well-known
    types other than Struct, Value and Timestamp) are left to MessageToDict."""
    try:
        return _dump(message)
    except _Unusual:
        params: dict[str, Any] = json_format.MessageToDict(
            message, preserving_proto_field_name=False, descriptor_pool=POOL
        )
        return params


class _Unusual(Exception):
    """A field :func:`_dump` leaves to MessageToDict."""


_INT64 = frozenset({3, 4, 6, 16, 18})  # TYPE_INT64, UINT64, FIXED64, SFIXED64, SINT64
_FLOATS = frozenset({1, 2})  # TYPE_DOUBLE, TYPE_FLOAT
_JSON_VALUES = frozenset(f"google.protobuf.{n}" for n in ("Struct", "Value", "ListValue"))


def _dump(message: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field, value in message.ListFields():
        out[field.json_name] = _dump_field(field, value)
    return out


def _dump_field(field: Any, value: Any) -> Any:
    kind = field.message_type
    if kind is not None and kind.GetOptions().map_entry:
        value_field = kind.fields_by_name["value"]
        return {str(k): _dump_single(value_field, v) for k, v in value.items()}
    if field.is_repeated:
        return [_dump_single(field, element) for element in value]
    return _dump_single(field, value)


def _dump_single(field: Any, value: Any) -> Any:
    kind = field.message_type
    if kind is not None:
        name = kind.full_name
        if name in _JSON_VALUES:
            return json_format.MessageToDict(value, descriptor_pool=POOL)
        if name == "google.protobuf.Timestamp":
            return value.ToJsonString()
        if name.startswith("google.protobuf."):
            raise _Unusual(name)
        return _dump(value)
    if field.enum_type is not None:
        number = field.enum_type.values_by_number.get(value)
        return number.name if number is not None else value
    if field.type == field.TYPE_BYTES:
        return base64.b64encode(value).decode("ascii")
    if field.type in _INT64:
        return str(value)
    if field.type in _FLOATS:
        raise _Unusual(field.full_name)
    return value


def from_json(name: str, value: dict[str, Any]) -> Message:
    """The message ``name`` holding ``value`` (a 1.0 JSON object); fields the
    message does not have are dropped (a newer model's, never a required one).

    Filled field by field from a plan per message type (:func:`_fill`):
    ``json_format.ParseDict`` re-examines every field's descriptor each time
    and took a quarter of a gRPC SendMessage's CPU. What the plan does not
    expect (a shape our models never produce) is left to ParseDict."""
    message = message_class(name)()
    try:
        _fill(message, value)
    except (KeyError, TypeError, ValueError, AttributeError, binascii.Error):
        message = message_class(name)()
        json_format.ParseDict(value, message, ignore_unknown_fields=True, descriptor_pool=POOL)
    return message


_SCALAR, _BYTES, _ENUM, _MESSAGE, _MAP, _WELL_KNOWN, _STRUCT, _TIMESTAMP, _VALUE = range(9)
#: Messages ParseDict fills better than a plan (JSON values, timestamps, …).
_WELL_KNOWN_TYPES = frozenset(
    f"google.protobuf.{name}" for name in ("Struct", "Value", "ListValue", "Timestamp", "Empty")
)
_Plan = dict[str, tuple[str, int, bool, Any]]
_PLANS: dict[str, _Plan] = {}


def _plan(descriptor: Any) -> _Plan:
    """JSON key → (field name, kind, repeated, enum type or map value field)."""
    plan = _PLANS.get(descriptor.full_name)
    if plan is not None:
        return plan
    plan = {}
    for field in descriptor.fields:
        extra: Any = None
        repeated = bool(field.is_repeated)  # protobuf 7 has no field.label
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            kind, extra = _MAP, field.message_type.fields_by_name["value"]
        elif field.message_type is not None:
            kind = {
                "google.protobuf.Struct": _STRUCT,
                "google.protobuf.Timestamp": _TIMESTAMP,
                "google.protobuf.Value": _VALUE,
            }.get(field.message_type.full_name, _MESSAGE)
            if kind == _MESSAGE and field.message_type.full_name in _WELL_KNOWN_TYPES:
                kind = _WELL_KNOWN
        elif field.enum_type is not None:
            kind, extra = _ENUM, field.enum_type
        elif field.type == field.TYPE_BYTES:
            kind = _BYTES
        elif field.type in (field.TYPE_INT64, field.TYPE_UINT64, field.TYPE_DOUBLE):
            kind = _WELL_KNOWN  # ProtoJSON spells these as strings: ParseDict knows how
        else:
            kind = _SCALAR
        plan[field.json_name] = plan[field.name] = (field.name, kind, repeated, extra)
    _PLANS[descriptor.full_name] = plan
    return plan


def _fill(message: Any, value: dict[str, Any]) -> None:
    plan = _plan(message.DESCRIPTOR)
    for key, item in value.items():
        entry = plan.get(key)
        if entry is None or (item is None and entry[1] != _VALUE):
            continue  # unknown fields dropped; null is the default (a Value's own null aside)
        name, kind, repeated, extra = entry
        if kind == _SCALAR:
            if repeated:
                getattr(message, name).extend(item)
            else:
                setattr(message, name, item)
        elif kind == _MESSAGE:
            if repeated:
                container = getattr(message, name)
                for element in item:
                    _fill(container.add(), element)
            else:
                child = getattr(message, name)
                child.SetInParent()
                _fill(child, item)
        elif kind in _SINGLE and not repeated:
            _SINGLE[kind](message, name, item, extra)
        elif kind == _MAP and extra.message_type is None:
            getattr(message, name).update(item)
        elif kind == _MAP:
            entries = getattr(message, name)
            for map_key, element in item.items():
                _fill(entries[map_key], element)
        else:
            json_format.ParseDict({key: item}, message, descriptor_pool=POOL)


def _fill_struct(message: Any, name: str, item: Any, _extra: Any) -> None:
    child = getattr(message, name)
    child.SetInParent()
    child.update(item)


def _fill_timestamp(message: Any, name: str, item: Any, _extra: Any) -> None:
    """RFC 3339 as our models write it (microseconds at most) through the C
    parser of ``datetime``; anything else through protobuf's own (strptime:
    a tenth of the reply's conversion)."""
    timestamp = getattr(message, name)
    try:
        if len(item) > 27 or not item.endswith("Z"):
            raise ValueError(item)
        moment = datetime.fromisoformat(item)
    except (ValueError, TypeError):
        timestamp.FromJsonString(item)
        return
    delta = moment - _EPOCH
    timestamp.seconds = delta.days * 86400 + delta.seconds
    timestamp.nanos = delta.microseconds * 1000


def _fill_enum(message: Any, name: str, item: Any, enum: Any) -> None:
    setattr(message, name, enum.values_by_name[item].number)


def _fill_bytes(message: Any, name: str, item: Any, _extra: Any) -> None:
    setattr(message, name, base64.b64decode(item, validate=True))


def _fill_value_field(message: Any, name: str, item: Any, _extra: Any) -> None:
    _fill_value(getattr(message, name), item)


def _fill_value(message: Any, item: Any) -> None:
    """A ``google.protobuf.Value`` holding the JSON value ``item``."""
    if isinstance(item, dict):
        message.struct_value.SetInParent()
        message.struct_value.update(item)
    elif isinstance(item, list):
        message.list_value.SetInParent()
        message.list_value.extend(item)
    elif isinstance(item, str):
        message.string_value = item
    elif isinstance(item, bool):
        message.bool_value = item
    elif isinstance(item, (int, float)):
        message.number_value = item
    elif item is None:
        message.null_value = 0
    else:
        raise TypeError(f"not a JSON value: {type(item).__name__}")


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

#: How a field of each kind that is not repeated is filled.
_SINGLE = {
    _STRUCT: _fill_struct,
    _VALUE: _fill_value_field,
    _TIMESTAMP: _fill_timestamp,
    _ENUM: _fill_enum,
    _BYTES: _fill_bytes,
}

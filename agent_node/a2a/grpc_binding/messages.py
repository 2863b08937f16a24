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

from agent_node.a2a.grpc_binding.descriptor import SERIALIZED

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
    """``message`` as the JSON object the HTTP bindings would have received."""
    params: dict[str, Any] = json_format.MessageToDict(
        message, preserving_proto_field_name=False, descriptor_pool=POOL
    )
    return params


def from_json(name: str, value: dict[str, Any]) -> Message:
    """The message ``name`` holding ``value`` (a 1.0 JSON object); fields the
    message does not have are dropped (a newer model's, never a required one)."""
    return json_format.ParseDict(
        value, message_class(name)(), ignore_unknown_fields=True, descriptor_pool=POOL
    )

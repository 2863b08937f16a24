"""protocols/a2a-1.0/a2a.proto is the specification's contract, and what the node loads.

Our .proto is written by us; these tests hold it to the specification's
``a2a.proto`` as a2a-sdk 1.x ships it compiled (messages, fields, numbers,
types, labels, oneofs, enums, the service's methods), and hold the compiled
copy the node loads (agent_node/a2a/protocol/grpc/descriptor.py) to the .proto.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("google.protobuf")

from google.protobuf import descriptor_pb2, json_format

from agent_node.a2a.protocol.grpc import compile as proto_compile
from agent_node.a2a.protocol.grpc.descriptor import SERIALIZED
from agent_node.a2a.protocol.grpc.messages import (
    POOL,
    SERVICE,
    _fill,
    from_json,
    message_class,
    to_params,
)

HOW_TO_FIX = "run `python -m agent_node.a2a.protocol.grpc.compile` and commit descriptor.py"


def contract(file: descriptor_pb2.FileDescriptorProto) -> dict[str, Any]:
    """What a client and a server must agree on, of a compiled .proto."""
    shape: dict[str, Any] = {"package": file.package}

    def message(prefix: str, msg: descriptor_pb2.DescriptorProto) -> None:
        name = f"{prefix}.{msg.name}"
        shape[name] = {
            field.name: (
                field.number,
                field.type,
                field.label,
                field.type_name,
                msg.oneof_decl[field.oneof_index].name if field.HasField("oneof_index") else None,
                field.proto3_optional,
                field.json_name,
            )
            for field in msg.field
        }
        for nested in msg.nested_type:  # map entries
            message(name, nested)

    for msg in file.message_type:
        message(file.package, msg)
    for enum in file.enum_type:
        shape[f"{file.package}.{enum.name}"] = {v.name: v.number for v in enum.value}
    for service in file.service:
        shape[f"{file.package}.{service.name}"] = {
            m.name: (m.input_type, m.output_type, m.client_streaming, m.server_streaming)
            for m in service.method
        }
    return shape


def ours() -> descriptor_pb2.FileDescriptorProto:
    return descriptor_pb2.FileDescriptorProto.FromString(SERIALIZED)


def test_our_proto_is_the_specification_s_contract() -> None:
    sdk = pytest.importorskip("a2a.types.a2a_pb2", reason="a2a-sdk 1.x (the test extra)")
    spec = descriptor_pb2.FileDescriptorProto()
    sdk.DESCRIPTOR.CopyToProto(spec)
    expected, actual = contract(spec), contract(ours())
    assert sorted(actual) == sorted(expected), "messages, enums or services differ"
    drifted = sorted(name for name in expected if actual[name] != expected[name])
    assert not drifted, {name: (actual[name], expected[name]) for name in drifted}


def test_the_node_loads_what_the_proto_says() -> None:
    pytest.importorskip("grpc_tools", reason="grpcio-tools (the test extra) compiles the .proto")
    assert proto_compile.compiled() == SERIALIZED, HOW_TO_FIX
    assert proto_compile.DESCRIPTOR.read_text() == proto_compile.render(SERIALIZED), HOW_TO_FIX


def test_the_service_has_every_operation_of_the_table() -> None:
    from agent_node.a2a.server.operations import OPERATIONS

    methods = POOL.FindServiceByName(SERVICE).methods
    assert {m.name for m in methods} == set(OPERATIONS)
    streaming = {m.name for m in methods if m.server_streaming}
    assert streaming == {name for name, op in OPERATIONS.items() if op.stream}


def test_a_drifted_proto_is_caught(tmp_path: Any) -> None:
    pytest.importorskip("grpc_tools", reason="grpcio-tools (the test extra) compiles the .proto")
    text = proto_compile.PROTO.read_text()
    drifted = tmp_path / "a2a.proto"
    drifted.write_text(text.replace("string context_id = 2;", "string context_id = 9;", 1))
    assert proto_compile.compiled(drifted) != SERIALIZED
    changed = descriptor_pb2.FileDescriptorProto.FromString(proto_compile.compiled(drifted))
    assert contract(changed) != contract(ours())


FIXTURES = Path(__file__).parents[2] / "protocols" / "fixtures" / "1.0"
#: The 1.0 fixtures' results and params, by the message each is.
FIXTURE_MESSAGES = {
    "agent_card": "AgentCard",
    "send_message": "SendMessageResponse",
    "get_task": "Task",
    "cancel_task": "Task",
    "list_tasks": "ListTasksResponse",
    "create_task_push_notification_config": "TaskPushNotificationConfig",
    "get_task_push_notification_config": "TaskPushNotificationConfig",
    "list_task_push_notification_configs": "ListTaskPushNotificationConfigsResponse",
}


def fixture_objects() -> list[tuple[str, str, dict[str, Any]]]:
    """(fixture, message, JSON object) for every 1.0 fixture that is a message."""
    found = []
    for name, message in FIXTURE_MESSAGES.items():
        for suffix in ("response", ""):
            path = FIXTURES / (f"{name}.{suffix}.json" if suffix else f"{name}.json")
            if path.exists():
                document = json.loads(path.read_text())
                found.append((path.name, message, document.get("result", document)))
    for event in json.loads((FIXTURES / "send_streaming_message.events.json").read_text()):
        found.append(("send_streaming_message.events.json", "StreamResponse", event["result"]))
    for path in sorted(FIXTURES.glob("*.request.json")):
        method = json.loads(path.read_text())
        request = {"SendStreamingMessage": "SendMessageRequest"}.get(method["method"])
        found.append((path.name, request or f"{method['method']}Request", method["params"]))
    return found


@pytest.mark.parametrize(
    ("fixture", "message", "value"),
    fixture_objects(),
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_from_json_fills_what_parse_dict_fills(
    fixture: str, message: str, value: dict[str, Any]
) -> None:
    names = POOL.FindFileByName("a2a.proto").message_types_by_name
    message = message if message in names else "TaskPushNotificationConfig"  # Create's params
    expected = json_format.ParseDict(
        value, message_class(message)(), ignore_unknown_fields=True, descriptor_pool=POOL
    )
    filled = message_class(message)()
    _fill(filled, value)  # the plan, not its ParseDict fallback
    assert filled == expected
    assert from_json(message, value) == expected
    assert filled.SerializeToString(deterministic=True) == expected.SerializeToString(
        deterministic=True
    )
    assert to_params(filled) == to_params(expected)
    assert to_params(filled) == json_format.MessageToDict(filled, descriptor_pool=POOL)


def test_from_json_leaves_unusual_spellings_to_parse_dict() -> None:
    odd = {"id": "t", "status": {"state": 3}, "artifacts": [{"parts": [{"raw": "-_8="}]}]}
    task = from_json("Task", odd)
    assert task.status.state == 3 and task.artifacts[0].parts[0].raw == b"\xfb\xff"
    task.status.state = 99  # a state this proto does not know: its number
    assert to_params(task) == json_format.MessageToDict(task, descriptor_pool=POOL)
    assert from_json("Task", {"id": "t", "unknown": 1, "contextId": None}).id == "t"


def test_json_values_and_timestamps_are_filled_as_parse_dict_fills_them() -> None:
    value = {
        "id": "t",
        "metadata": {"a": [1, {"b": None, "c": [True, 2.5]}], "d": "x", "e": {}},
        "status": {"state": "TASK_STATE_WORKING", "timestamp": "2026-01-01T00:00:00.5Z"},
        "history": [
            {
                "messageId": "m",
                "role": "ROLE_USER",
                "parts": [{"data": d} for d in ([1, "x"], {"k": None}, "s", 2, 0.5, False, None)],
            }
        ],
    }
    filled = message_class("Task")()
    _fill(filled, value)
    assert filled == json_format.ParseDict(value, message_class("Task")(), descriptor_pool=POOL)
    assert to_params(filled) == json_format.MessageToDict(filled, descriptor_pool=POOL)

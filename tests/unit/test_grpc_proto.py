"""protocols/a2a-1.0/a2a.proto is the specification's contract, and what the node loads.

Our .proto is written by us; these tests hold it to the specification's
``a2a.proto`` as a2a-sdk 1.x ships it compiled (messages, fields, numbers,
types, labels, oneofs, enums, the service's methods), and hold the compiled
copy the node loads (agent_node/a2a/grpc_binding/descriptor.py) to the .proto.
"""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("google.protobuf")

from google.protobuf import descriptor_pb2

from agent_node.a2a.grpc_binding import compile as proto_compile
from agent_node.a2a.grpc_binding.descriptor import SERIALIZED
from agent_node.a2a.grpc_binding.messages import POOL, SERVICE

HOW_TO_FIX = "run `python -m agent_node.a2a.grpc_binding.compile` and commit descriptor.py"


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
    from agent_node.a2a.operations import OPERATIONS

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

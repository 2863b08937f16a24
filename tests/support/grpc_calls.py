"""Calling a node's gRPC binding from tests: requests and replies as the JSON
the HTTP bindings speak, statuses read the way the official clients read them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import json_format
from google.rpc import error_details_pb2, status_pb2

from agent_node.a2a.protocol.grpc.messages import (
    POOL,
    SERVICE,
    from_json,
    message_class,
    to_params,
)


@dataclass(frozen=True)
class Refusal:
    """A call's error status: its code, message and ErrorInfo (from the
    ``grpc-status-details-bin`` trailer, which must agree with the status)."""

    code: grpc.StatusCode
    message: str
    reason: str | None
    domain: str | None
    metadata: dict[str, str]


def refusal(error: grpc.aio.AioRpcError) -> Refusal:
    details = dict(error.trailing_metadata() or ()).get("grpc-status-details-bin")
    if details is None:
        return Refusal(error.code(), error.details() or "", None, None, {})
    status = status_pb2.Status.FromString(details)
    assert status.code == error.code().value[0], (status.code, error.code())
    assert status.message == error.details()
    [detail] = status.details
    info = error_details_pb2.ErrorInfo()
    assert detail.Unpack(info)
    return Refusal(error.code(), status.message, info.reason, info.domain, dict(info.metadata))


def _method(name: str) -> tuple[Any, Any, bool]:
    method = POOL.FindServiceByName(SERVICE).methods_by_name[name]
    request = message_class(method.input_type.full_name)
    reply = message_class(method.output_type.full_name)
    return request, reply, method.server_streaming


class Caller:
    """Calls the A2AService over ``channel``; params and replies are JSON objects."""

    def __init__(self, channel: grpc.aio.Channel, metadata: tuple[tuple[str, str], ...] = ()):
        self.channel = channel
        self.metadata = (("a2a-version", "1.0"), *metadata)

    async def call(
        self, name: str, params: dict[str, Any], metadata: tuple[tuple[str, str], ...] = ()
    ) -> dict[str, Any]:
        request, reply, streaming = _method(name)
        assert not streaming, name
        stub = self.channel.unary_unary(
            f"/{SERVICE}/{name}",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=reply.FromString,
        )
        message = json_format.ParseDict(params, request(), descriptor_pool=POOL)
        answer = await stub(message, metadata=(*self.metadata, *metadata), timeout=30)
        return to_params(answer)

    async def stream(
        self, name: str, params: dict[str, Any], metadata: tuple[tuple[str, str], ...] = ()
    ) -> list[dict[str, Any]]:
        request, reply, streaming = _method(name)
        assert streaming, name
        stub = self.channel.unary_stream(
            f"/{SERVICE}/{name}",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=reply.FromString,
        )
        message = json_format.ParseDict(params, request(), descriptor_pool=POOL)
        call = stub(message, metadata=(*self.metadata, *metadata), timeout=30)
        return [to_params(event) async for event in call]


def raw_request(name: str, params: dict[str, Any]) -> bytes:
    """The serialized request message of ``name`` holding ``params``."""
    request, _, _ = _method(name)
    return bytes(from_json(request.DESCRIPTOR.full_name, params).SerializeToString())


def mtls_channel(target: str, certs: Path, name: str | None) -> grpc.aio.Channel:
    """A channel to ``target`` trusting ``certs/ca.pem``, presenting ``name``'s
    certificate (as ``agent-node certs issue`` wrote it), or none for None."""
    key = (certs / f"{name}-key.pem").read_bytes() if name else None
    chain = (certs / f"{name}.pem").read_bytes() if name else None
    credentials = grpc.ssl_channel_credentials((certs / "ca.pem").read_bytes(), key, chain)
    return grpc.aio.secure_channel(target, credentials)

"""The ``A2AService`` servicer: every gRPC method through the one operations table.

A call goes the way an HTTP binding's request goes (:mod:`..operations`):

1. Who calls: the identity of the client certificate's URI SAN
   (:func:`~agent_node.security.tls.identity_of`), else of the credentials
   in its metadata (``authorization: Bearer …``, the API key's header;
   ``auth:``); a call that must name someone and does not is
   ``UNAUTHENTICATED``. The node's :class:`~agent_node.a2a.server.app.Guard`
   counts it among the caller's requests in flight, across every binding:
   one more than ``limits.max_concurrent_per_caller`` is ``RESOURCE_EXHAUSTED``;
   a streaming call, or a blocking SendMessage, among its open streams
   (``limits.max_streams_per_caller``: :mod:`~agent_node.a2a.server.in_flight`).
2. ``a2a-version`` metadata, by major.minor: absent, empty or 1.0 (the
   binding is A2A 1.0's), else VersionNotSupported.
3. The capability gate, then the request message as ProtoJSON
   (``MessageToDict``, camelCase) validated by the operation's 1.0 model
   within the limits, then the handler; ``idempotency-key``,
   ``a2a-extensions`` and ``traceparent`` metadata are read as the HTTP
   headers are.
4. The result's ``to_json()`` parsed into the reply message; the streaming
   methods (SendStreamingMessage, SubscribeToTask) answer a
   ``StreamResponse`` per event.

Errors are gRPC statuses: the error table's status (``grpc_status``) and the
error's message, with a ``google.rpc.Status`` in the ``grpc-status-details-bin``
trailer holding the same code and message and a ``google.rpc.ErrorInfo``
(reason, domain, metadata) — what the official clients read to raise the
matching A2A error (§10.6). A request message that is not the method's
protobuf is ParseError's status.

The methods are :class:`~.http2.Method` s of bytes in, bytes out: the
transport (:mod:`.http2`) knows nothing of A2A.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from functools import cache, lru_cache
from typing import TYPE_CHECKING, Any

from google.protobuf import any_pb2
from google.protobuf.message import DecodeError, Message
from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped]

from agent_node.a2a.protocol.card_models import AgentCapabilities
from agent_node.a2a.protocol.errors import (
    A2AError,
    InvalidParams,
    ParseError,
    VersionNotSupported,
)
from agent_node.a2a.protocol.grpc.messages import POOL, SERVICE, from_json, message_class, to_params
from agent_node.a2a.protocol.models import WireModel
from agent_node.a2a.server.failed import failed
from agent_node.a2a.server.grpc.calls import Call, Method
from agent_node.a2a.server.grpc.status import Code, RpcError
from agent_node.a2a.server.handler import CallContext, TaskHandler
from agent_node.a2a.server.in_flight import follows_its_task
from agent_node.a2a.server.limits import DEFAULT_LIMITS, Limits
from agent_node.a2a.server.operations import (
    OPERATIONS,
    context_of,
    handler_call,
    served_version,
    validate,
)
from agent_node.scope import CALLER
from agent_node.security.tls import identity_of

if TYPE_CHECKING:
    from agent_node.a2a.server.app import Guard
    from agent_node.a2a.server.in_flight import Ticket

__all__ = ["A2AService", "rpc_error"]

log = logging.getLogger(__name__)


class A2AService:
    """The servicer of ``lf.a2a.v1.A2AService`` for ``handler``; ``secure``:
    calls must come with a client certificate naming an identity."""

    def __init__(
        self,
        handler: TaskHandler,
        *,
        capabilities: AgentCapabilities | dict[str, Any],
        limits: Limits = DEFAULT_LIMITS,
        guard: Guard | None = None,
        secure: bool = False,
        identity_from_cn: bool = False,
    ) -> None:
        from agent_node.a2a.server.app import Guard

        self.handler = handler
        self.capabilities = AgentCapabilities.model_validate(capabilities)
        self.limits = limits
        self.guard = guard if guard is not None else Guard(require_identity=secure)
        self.secure = secure
        self.identity_from_cn = identity_from_cn

    def methods(self) -> dict[str, Method]:
        """Every method of the service, by its path (``/lf.a2a.v1.A2AService/Name``)."""
        methods: dict[str, Method] = {}
        for method in POOL.FindServiceByName(SERVICE).methods:
            path = f"/{SERVICE}/{method.name}"
            if method.server_streaming:
                methods[path] = Method(True, self._streaming(method.name))
            else:
                methods[path] = Method(
                    False, self._unary(method.name, method.output_type.full_name)
                )
        return methods

    def _unary(self, name: str, reply: str) -> Any:
        async def call(call: Call, request: bytes) -> bytes:
            ticket = await self._admit(name, call)
            try:
                model, ctx = self._prepare(name, request, call, ticket.caller)
                if follows_its_task(False, model):  # a blocking send: before its task is made
                    self.guard.in_flight.to_stream(ticket)
                result = await handler_call(self.handler, name)(model, ctx)
                return _reply(name, reply, result).SerializeToString()
            except Exception as exc:  # answered as a status
                raise rpc_error(_error_of(name, exc)) from None
            finally:
                self.guard.leave(ticket)

        return call

    def _streaming(self, name: str) -> Any:
        event_class = message_class("StreamResponse").DESCRIPTOR.full_name

        async def stream(call: Call, request: bytes) -> AsyncIterator[bytes]:
            ticket = await self._admit(name, call)
            events: Any = None
            try:
                model, ctx = self._prepare(name, request, call, ticket.caller)
                self.guard.in_flight.to_stream(ticket)  # before the handler makes a task
                events = await handler_call(self.handler, name)(model, ctx)
                async for event in events:
                    yield from_json(event_class, event.to_json()).SerializeToString()
            except Exception as exc:  # answered as a status
                raise rpc_error(_error_of(name, exc)) from None
            finally:
                try:
                    if events is not None and hasattr(events, "aclose"):
                        await events.aclose()
                finally:
                    self.guard.leave(ticket)

        return stream

    async def _admit(self, name: str, call: Call) -> Ticket:
        """The caller's identity, counted in flight; else RpcError."""
        caller = None
        if call.certificate is not None:
            caller = _identity(call.certificate, self.identity_from_cn)
        scope = {
            "path": f"/{SERVICE}/{name}",
            "method": "gRPC",
            "client": call.client,
            CALLER: caller,
        }
        if caller is None:  # credentials in metadata (auth:), as HTTP headers are
            refused = await self.guard.authenticate(scope, call.metadata.get)
            if refused is not None:
                raise rpc_error(refused)
        if (refused := self.guard.refuse(scope)) is not None:
            raise rpc_error(refused)
        return self.guard.enter(scope)

    def _prepare(
        self, name: str, request: bytes, call: Call, caller: str | None
    ) -> tuple[WireModel, CallContext]:
        header = call.metadata.get
        asked = header("a2a-version")
        if asked and asked.strip() and served_version(asked) != "1.0":
            raise VersionNotSupported(
                f"A2A-Version {asked[:20]!r}: this binding serves 1.0",
                metadata={"supported": "1.0"},
            )
        operation = OPERATIONS[name]
        if operation.gate is not None and (refused := operation.gate(self.capabilities, "1.0")):
            raise refused
        try:
            message = _request_class(name).FromString(request)
        except DecodeError as exc:
            raise ParseError(f"the request is not a {name} request message: {exc}") from None
        try:
            params = to_params(message)
        except ValueError:  # a Value's NaN or Infinity: no JSON holds it
            raise InvalidParams(
                "a number that is NaN or infinite (JSON, and so A2A, has none)"
            ) from None
        model = validate(operation, params, self.limits)
        return model, context_of(header, caller, "1.0", self.limits)


@cache
def _request_class(name: str) -> Any:
    method = POOL.FindServiceByName(SERVICE).methods_by_name[name]
    return message_class(method.input_type.full_name)


def _reply(name: str, reply: str, result: Any) -> Message:
    if reply == "google.protobuf.Empty":
        return message_class(reply)()
    if not isinstance(result, WireModel):
        raise TypeError(f"{name} handler returned {type(result).__name__}")
    return from_json(reply, result.to_json())


def _error_of(name: str, exc: Exception) -> A2AError:
    return failed(exc, log, f"A2A gRPC {name}")


def rpc_error(exc: A2AError) -> RpcError:
    """``exc`` as the status that ends the call: the error table's code, and
    a ``google.rpc.Status`` with the same code, message and an ErrorInfo."""
    row = exc.error.row
    code = Code[row.grpc_status]
    info = error_details_pb2.ErrorInfo(reason=row.reason, domain=row.domain)
    for key, value in exc.metadata.items():
        info.metadata[key] = str(value)
    detail = any_pb2.Any()
    detail.Pack(info)
    status = status_pb2.Status(code=int(code), message=exc.message, details=[detail])
    return RpcError(code, exc.message, status.SerializeToString())


@lru_cache(maxsize=256)
def _identity(der: bytes, from_cn: bool) -> str | None:
    """The identity a certificate names (a connection's calls share it)."""
    return identity_of(der, from_cn=from_cn)

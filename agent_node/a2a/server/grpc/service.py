"""The ``A2AService`` servicer: every gRPC method through the one operations table.

A call goes the way an HTTP binding's request goes (:mod:`..operations`):

1. Who calls: the identity of the client certificate's URI SAN
   (:func:`~agent_node.security.tls.identity_of`), else of the credentials
   in its metadata (``authorization: Bearer …``, the API key's header;
   ``auth:``); a call that must name someone and does not is
   ``UNAUTHENTICATED``. The node's :class:`~agent_node.a2a.server.app.Guard`
   counts it among the caller's requests in flight, across every binding:
   one more than ``limits.max_concurrent_per_caller`` is ``RESOURCE_EXHAUSTED``.
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
matching A2A error (§10.6).
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncIterator, Callable
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped]

from agent_node.a2a.protocol.card_models import AgentCapabilities
from agent_node.a2a.protocol.errors import A2AError, InternalError, VersionNotSupported
from agent_node.a2a.protocol.grpc.messages import POOL, SERVICE, from_json, message_class, to_params
from agent_node.a2a.protocol.models import WireModel
from agent_node.a2a.server.handler import CallContext, TaskHandler
from agent_node.a2a.server.limits import DEFAULT_LIMITS, Limits
from agent_node.a2a.server.operations import (
    OPERATIONS,
    context_of,
    handler_call,
    served_version,
    validate,
)
from agent_node.errors import StoreError
from agent_node.security.tls import identity_of
from agent_node.transport import CALLER

if TYPE_CHECKING:
    from agent_node.a2a.server.app import Guard

__all__ = ["STATUS_DETAILS", "A2AService", "status_of"]

log = logging.getLogger(__name__)

#: The trailer holding the serialized ``google.rpc.Status``.
STATUS_DETAILS = "grpc-status-details-bin"

Context = grpc.aio.ServicerContext[Any, Any]


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

    def rpc_handler(self) -> grpc.GenericRpcHandler:
        """The handler to add to a ``grpc.aio`` server: every method of the service."""
        methods: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
        for method in POOL.FindServiceByName(SERVICE).methods:
            request = message_class(method.input_type.full_name)
            reply = method.output_type.full_name
            if method.server_streaming:
                methods[method.name] = grpc.unary_stream_rpc_method_handler(
                    self._streaming(method.name),
                    request_deserializer=request.FromString,
                    response_serializer=_serialize,
                )
            else:
                methods[method.name] = grpc.unary_unary_rpc_method_handler(
                    self._unary(method.name, reply),
                    request_deserializer=request.FromString,
                    response_serializer=_serialize,
                )
        return grpc.method_handlers_generic_handler(SERVICE, methods)

    def _unary(self, name: str, reply: str) -> Callable[[Message, Context], Any]:
        async def call(request: Message, context: Context) -> Message:
            caller = await self._admit(name, context)
            try:
                try:
                    model, ctx = self._prepare(name, request, context, caller)
                    result = await handler_call(self.handler, name)(model, ctx)
                    return _reply(name, reply, result)
                except Exception as exc:  # answered as a status below
                    error = _error_of(name, exc)
                await _abort(context, error)
                raise AssertionError("unreachable: abort raises")
            finally:
                self.guard.leave(caller)

        return call

    def _streaming(self, name: str) -> Callable[[Message, Context], AsyncIterator[Message]]:
        event_class = message_class("StreamResponse")

        async def stream(request: Message, context: Context) -> AsyncIterator[Message]:
            caller = await self._admit(name, context)
            events: Any = None
            error: A2AError | None = None
            try:
                try:
                    model, ctx = self._prepare(name, request, context, caller)
                    events = await handler_call(self.handler, name)(model, ctx)
                    async for event in events:
                        yield from_json(event_class.DESCRIPTOR.full_name, event.to_json())
                except Exception as exc:  # answered as a status below
                    error = _error_of(name, exc)
                finally:
                    if events is not None and hasattr(events, "aclose"):
                        await events.aclose()
                if error is not None:
                    await _abort(context, error)
            finally:
                self.guard.leave(caller)

        return stream

    async def _admit(self, name: str, context: Context) -> str | None:
        """The caller's identity, counted in flight; else the call is aborted."""
        caller = self._caller(context)
        scope = {
            "path": f"/{SERVICE}/{name}",
            "method": "gRPC",
            "client": _address(context.peer()),
            CALLER: caller,
        }
        if caller is None:  # credentials in metadata (auth:), as HTTP headers are
            metadata = {key: value for key, value in context.invocation_metadata() or ()}

            def header(key: str) -> str | None:
                value = metadata.get(key)
                return value if isinstance(value, str) else None

            if (refused := await self.guard.authenticate(scope, header)) is not None:
                await _abort(context, refused)
        if (refused := self.guard.refuse(scope)) is not None:
            await _abort(context, refused)
        return self.guard.enter(scope)

    def _caller(self, context: Context) -> str | None:
        pems = list(context.auth_context().get("x509_pem_cert") or ())
        if not pems:
            return None
        return _identity(bytes(pems[0]), self.identity_from_cn)

    def _prepare(
        self, name: str, request: Message, context: Context, caller: str | None
    ) -> tuple[WireModel, CallContext]:
        metadata = {key: value for key, value in context.invocation_metadata() or ()}

        def header(key: str) -> str | None:
            value = metadata.get(key)
            return value if isinstance(value, str) else None

        asked = header("a2a-version")
        if asked and asked.strip() and served_version(asked) != "1.0":
            raise VersionNotSupported(
                f"A2A-Version {asked[:20]!r}: this binding serves 1.0",
                metadata={"supported": "1.0"},
            )
        operation = OPERATIONS[name]
        if operation.gate is not None and (refused := operation.gate(self.capabilities, "1.0")):
            raise refused
        model = validate(operation, to_params(request), self.limits)
        return model, context_of(header, caller, "1.0", self.limits)


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


def _reply(name: str, reply: str, result: Any) -> Message:
    if reply == "google.protobuf.Empty":
        return message_class(reply)()
    if not isinstance(result, WireModel):
        raise TypeError(f"{name} handler returned {type(result).__name__}")
    return from_json(reply, result.to_json())


def _error_of(name: str, exc: Exception) -> A2AError:
    if isinstance(exc, A2AError):
        return exc
    if isinstance(exc, StoreError):  # says what failed: no traceback needed
        log.error("A2A gRPC %s failed: %s", name, exc)
        return InternalError.of(exc)
    log.error("A2A gRPC %s failed", name, exc_info=exc)
    return InternalError("internal error")


def status_of(exc: A2AError) -> tuple[grpc.StatusCode, status_pb2.Status]:
    """The gRPC status code of ``exc`` and the ``google.rpc.Status`` sent with it."""
    row = exc.error.row
    code: grpc.StatusCode = grpc.StatusCode[row.grpc_status]
    info = error_details_pb2.ErrorInfo(reason=row.reason, domain=row.domain)
    for key, value in exc.metadata.items():
        info.metadata[key] = str(value)
    detail = any_pb2.Any()
    detail.Pack(info)
    status = status_pb2.Status(code=code.value[0], message=exc.message, details=[detail])
    return code, status


async def _abort(context: Context, exc: A2AError) -> None:
    code, status = status_of(exc)
    await context.abort(
        code, status.message, trailing_metadata=((STATUS_DETAILS, status.SerializeToString()),)
    )


@lru_cache(maxsize=256)
def _identity(pem: bytes, from_cn: bool) -> str | None:
    """The identity a PEM certificate names (a connection's calls share it)."""
    try:
        der = ssl.PEM_cert_to_DER_cert(pem.decode("ascii"))
    except (ValueError, UnicodeDecodeError):
        return None
    return identity_of(der, from_cn=from_cn)


def _address(peer: str | None) -> tuple[str, int] | None:
    """``ipv4:127.0.0.1:5000`` (gRPC's peer string) as (host, port)."""
    if not peer or ":" not in peer:
        return None
    host, _, port = peer.partition(":")[2].rpartition(":")
    return (host.strip("[]"), int(port)) if port.isdigit() else None

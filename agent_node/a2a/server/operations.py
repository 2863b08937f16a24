"""The A2A operations, once for every binding: what each takes, which handler
method serves it, and what is refused before the handler is called.

A binding (:mod:`.jsonrpc`, :mod:`.rest`) turns its request into an
operation's name and 1.0 params; :func:`validate` makes the request model
(-32602 with the field when it does not validate); the operation's
``gate`` answers, from the Agent Card's capabilities, what this agent does
not offer; :func:`call_context` reads who calls from the HTTP request. The
handler (:class:`~agent_node.a2a.server.handler.TaskHandler`) never sees a binding.

``A2A-Version`` (header, else ``?A2A-Version=``) is matched by major.minor
(:func:`served_version`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response

from agent_node.a2a.protocol.card_models import AgentCapabilities
from agent_node.a2a.protocol.errors import (
    A2AError,
    ExtendedAgentCardNotConfigured,
    InvalidParams,
    PushNotificationNotSupported,
    UnsupportedOperation,
)
from agent_node.a2a.protocol.models import (
    CancelTaskRequest,
    DeleteTaskPushNotificationConfigRequest,
    GetExtendedAgentCardRequest,
    GetTaskPushNotificationConfigRequest,
    GetTaskRequest,
    ListTaskPushNotificationConfigsRequest,
    ListTasksRequest,
    SendMessageRequest,
    SubscribeToTaskRequest,
    TaskPushNotificationConfig,
    WireModel,
)
from agent_node.a2a.server.handler import CallContext
from agent_node.a2a.server.id_fields import check_ids
from agent_node.a2a.server.limits import Limits, check_message
from agent_node.scope import caller_of

__all__ = [
    "OPERATIONS",
    "Endpoint",
    "Operation",
    "Version",
    "call_context",
    "context_of",
    "describe",
    "requested_version",
    "served_version",
    "validate",
]

Version = Literal["1.0", "0.3"]
#: What an HTTP binding is: a Starlette endpoint.
Endpoint = Callable[[Request], Awaitable[Response]]

#: The caller's dialect matters to one gate only: the extended card's.
Gate = Callable[[AgentCapabilities, Version], A2AError | None]


@dataclass(frozen=True)
class Operation:
    """One A2A operation, as every binding serves it."""

    #: The 1.0 params model.
    request: type[WireModel]
    #: The :class:`TaskHandler` coroutine that serves it.
    call: str
    #: The error the transport answers with instead of calling the handler, if any.
    gate: Gate | None = None
    #: Limits beyond the model's own validation.
    check: Callable[[Any, Limits], None] | None = None
    #: The handler returns events, answered as Server-Sent Events (:mod:`.sse`).
    stream: bool = False
    #: What a handler without ``call`` answers (the gate let the call pass).
    missing: Callable[[str], A2AError] = lambda name: UnsupportedOperation(
        f"{name} is not implemented by this node"
    )


def handler_call(handler: Any, name: str) -> Callable[[Any, Any], Any]:
    """The handler's coroutine for operation ``name``; raises the operation's
    :attr:`Operation.missing` error when the handler has none."""
    operation = OPERATIONS[name]
    call = getattr(handler, operation.call, None)
    if call is None:
        raise operation.missing(name)
    return call  # type: ignore[no-any-return]


def _streaming(caps: AgentCapabilities, version: Version) -> A2AError | None:
    if not caps.streaming:
        return UnsupportedOperation("streaming is not supported by this agent")
    return None


def _push(caps: AgentCapabilities, version: Version) -> A2AError | None:
    if not caps.push_notifications:
        return PushNotificationNotSupported()
    return None


def _extended_card(caps: AgentCapabilities, version: Version) -> A2AError | None:
    """Whether this node serves an extended card (the card declares
    ``capabilities.extendedAgentCard``: :mod:`.extended_card` answers). A2A
    1.0 (§3.3.4) answers a card that does not declare one with
    UnsupportedOperation; 0.3's ``agent/getAuthenticatedExtendedCard`` knew
    only -32007 (AuthenticatedExtendedCardNotConfigured), which its clients
    expect."""
    if caps.extended_agent_card:
        return None
    if version == "1.0":
        return UnsupportedOperation("this agent declares no extended agent card")
    return ExtendedAgentCardNotConfigured()


OPERATIONS: dict[str, Operation] = {
    "SendMessage": Operation(SendMessageRequest, "send_message", check=check_message),
    "GetTask": Operation(GetTaskRequest, "get_task"),
    "ListTasks": Operation(ListTasksRequest, "list_tasks"),
    "CancelTask": Operation(CancelTaskRequest, "cancel_task"),
    "SendStreamingMessage": Operation(
        SendMessageRequest, "send_streaming_message", _streaming, check_message, stream=True
    ),
    "SubscribeToTask": Operation(
        SubscribeToTaskRequest, "subscribe_to_task", _streaming, stream=True
    ),
    "CreateTaskPushNotificationConfig": Operation(
        TaskPushNotificationConfig, "create_task_push_notification_config", _push
    ),
    "GetTaskPushNotificationConfig": Operation(
        GetTaskPushNotificationConfigRequest, "get_task_push_notification_config", _push
    ),
    "ListTaskPushNotificationConfigs": Operation(
        ListTaskPushNotificationConfigsRequest, "list_task_push_notification_configs", _push
    ),
    "DeleteTaskPushNotificationConfig": Operation(
        DeleteTaskPushNotificationConfigRequest, "delete_task_push_notification_config", _push
    ),
    "GetExtendedAgentCard": Operation(
        GetExtendedAgentCardRequest,
        "get_extended_agent_card",
        _extended_card,
        # declared, yet nothing serves it: what §3.3.4 names for that
        missing=lambda name: ExtendedAgentCardNotConfigured(),
    ),
}


def requested_version(request: Request) -> Version | None:
    """The version the caller asks for; None when it is not served here."""
    value = request.headers.get("a2a-version") or request.query_params.get("A2A-Version") or ""
    return served_version(value)


def served_version(value: str) -> Version | None:
    """The version ``value`` (an ``A2A-Version``) names, by major.minor: the
    patch number MUST be ignored (§3.6), so ``1.0.1`` is 1.0 and ``0.3.0``
    0.3; absent or empty is 0.3. None for a version not served here."""
    major, _, rest = value.strip().partition(".")
    minor, _, patch = rest.partition(".")
    if not major and not rest:
        return "0.3"
    if not (_number(major) and _number(minor)) or (patch and not _number(patch)):
        return None
    version = f"{int(major)}.{int(minor)}"
    return version if version in ("1.0", "0.3") else None  # type: ignore[return-value]


def _number(text: str) -> bool:
    # isascii: str.isdigit() holds for '²', which int() refuses; a few digits
    # at most, as int() of thousands of them is refused too.
    return text.isascii() and text.isdigit() and len(text) <= 9


def validate(operation: Operation, params: dict[str, Any], limits: Limits) -> WireModel:
    """``params`` as the operation's 1.0 request model, within ``limits``,
    its ids free of NUL (:mod:`.id_fields`): else -32602."""
    try:
        model = operation.request.model_validate(params)
    except ValidationError as exc:
        raise InvalidParams(describe(exc)) from None
    check_ids(model)
    if operation.check is not None:
        operation.check(model, limits)
    return model


def describe(exc: ValidationError) -> str:
    """The first problem, naming its field; never the offending value."""
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    first = errors[0]
    where = ".".join(str(part) for part in first["loc"]) or "params"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {first['msg']}{more}"


def call_context(request: Request, version: Version, limits: Limits) -> CallContext:
    """Who calls and how, from the request's headers (every HTTP binding's)."""
    return context_of(request.headers.get, caller_of(request.scope), version, limits)


def context_of(
    header: Callable[[str], str | None], caller: str | None, version: Version, limits: Limits
) -> CallContext:
    """Who calls and how: ``caller`` (from the client certificate, mutual TLS)
    and the service parameters ``header`` gives by lowercase name (HTTP
    headers, gRPC metadata)."""
    key = header("idempotency-key") or None
    if key is not None and len(key) > limits.max_idempotency_key:
        raise InvalidParams(f"Idempotency-Key longer than {limits.max_idempotency_key} characters")
    extensions = header("a2a-extensions") or ""
    return CallContext(
        caller=caller,
        idempotency_key=key,
        version=version,
        traceparent=header("traceparent"),
        extensions=tuple(uri.strip() for uri in extensions.split(",") if uri.strip()),
    )

"""The JSON-RPC 2.0 binding of A2A: the Starlette endpoint for ``POST /a2a``.

A request passes these checks in order; the first that fails answers with
its JSON-RPC error (HTTP 200, except 413 for a body too large) and the
handler is not called:

1. ``Content-Type`` is ``application/json`` (parameters allowed), checked
   before the body is read: else -32005 ContentTypeNotSupported.
2. (:mod:`.bodies`) The body fits :attr:`Limits.max_body_bytes`: ``Content-Length`` first, then
   counted while it streams, so a false or missing length cannot bypass it.
3. The body is UTF-8 JSON without ``NaN``, infinities or unpaired surrogates: -32700.
4. Nesting is at most :attr:`Limits.max_depth`: -32600.
5. The envelope is a single JSON-RPC 2.0 request with an ``id`` (A2A uses no
   notifications, and batches are refused): -32600.
6. ``A2A-Version`` (header, else ``?A2A-Version=``) is ``1.0``, or ``0.3``
   when absent or empty, by major.minor (``1.0.1`` is 1.0): else -32009.
7. The method is known: -32601. Each 1.0 name is accepted under either
   version; a 0.3 caller may also use the 0.3 names, whose params are
   converted by :mod:`agent_node.a2a.compat`.
8. Methods the agent's capabilities rule out are answered here (-32003,
   -32004, -32007).
9. The params validate against the 1.0 request model and the part limits: -32602.

Choice: a request's shapes follow its method name. A 0.3 name gets 0.3
params, results and errors (``CallContext.version == "0.3"``); a 1.0 name
gets 1.0 ones even without the ``A2A-Version`` header, because ``ListTasks``
has no 0.3 shape and a client that writes 1.0 names reads 1.0 results.
Errors found before the method is known follow the header.

An :class:`~agent_node.a2a.errors.A2AError` raised by the handler is passed
on; any other exception is logged and answered with a bare -32603.
A streaming method's events are sent as Server-Sent Events (:mod:`.sse`);
an error raised before its first event is answered as above, except to a
0.3 streaming method (``message/stream``, ``tasks/resubscribe``) once it is
known: 0.3 clients read only an event stream there, so the error is its one
event.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ValidationError
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from agent_node.a2a import compat, sse
from agent_node.a2a.bodies import BodyTooLarge, read_json
from agent_node.a2a.card_models import AgentCapabilities
from agent_node.a2a.errors import (
    A2AError,
    ExtendedAgentCardNotConfigured,
    InternalError,
    InvalidParams,
    InvalidRequest,
    MethodNotFound,
    PushNotificationNotSupported,
    UnsupportedOperation,
    VersionNotSupported,
    to_jsonrpc_error,
)
from agent_node.a2a.handler import CallContext, TaskHandler
from agent_node.a2a.limits import DEFAULT_LIMITS, Limits, check_message
from agent_node.a2a.models import (
    CancelTaskRequest,
    DeleteTaskPushNotificationConfigRequest,
    GetExtendedAgentCardRequest,
    GetTaskPushNotificationConfigRequest,
    GetTaskRequest,
    ListTaskPushNotificationConfigsRequest,
    ListTasksRequest,
    SendMessageRequest,
    StreamResponse,
    SubscribeToTaskRequest,
    TaskPushNotificationConfig,
    WireModel,
)
from agent_node.errors import StoreError
from agent_node.transport import caller_of

__all__ = ["DEFAULT_LIMITS", "Limits", "jsonrpc_endpoint", "refusal"]

log = logging.getLogger(__name__)

Version = Literal["1.0", "0.3"]
Endpoint = Callable[[Request], Awaitable[Response]]


# Routes: one row per 1.0 method


#: The caller's dialect matters to one gate only: the extended card's.
Gate = Callable[[AgentCapabilities, Version], A2AError | None]


@dataclass(frozen=True)
class _Route:
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


def _streaming(caps: AgentCapabilities, version: Version) -> A2AError | None:
    if not caps.streaming:
        return UnsupportedOperation("streaming is not supported by this agent")
    return None


def _push(caps: AgentCapabilities, version: Version) -> A2AError | None:
    if not caps.push_notifications:
        return PushNotificationNotSupported()
    return None


def _extended_card(caps: AgentCapabilities, version: Version) -> A2AError:
    """This node serves no extended card. A2A 1.0 (§3.3.4) answers a card that
    does not declare ``capabilities.extendedAgentCard`` with
    UnsupportedOperation, and one that declares it with -32007; A2A 0.3's
    ``agent/getAuthenticatedExtendedCard`` knew only -32007
    (AuthenticatedExtendedCardNotConfigured), which its clients expect."""
    if version == "1.0" and not caps.extended_agent_card:
        return UnsupportedOperation("this agent declares no extended agent card")
    return ExtendedAgentCardNotConfigured()


_ROUTES: dict[str, _Route] = {
    "SendMessage": _Route(SendMessageRequest, "send_message", check=check_message),
    "GetTask": _Route(GetTaskRequest, "get_task"),
    "ListTasks": _Route(ListTasksRequest, "list_tasks"),
    "CancelTask": _Route(CancelTaskRequest, "cancel_task"),
    "SendStreamingMessage": _Route(
        SendMessageRequest, "send_streaming_message", _streaming, check_message, stream=True
    ),
    "SubscribeToTask": _Route(SubscribeToTaskRequest, "subscribe_to_task", _streaming, stream=True),
    "CreateTaskPushNotificationConfig": _Route(
        TaskPushNotificationConfig, "create_task_push_notification_config", _push
    ),
    "GetTaskPushNotificationConfig": _Route(
        GetTaskPushNotificationConfigRequest, "get_task_push_notification_config", _push
    ),
    "ListTaskPushNotificationConfigs": _Route(
        ListTaskPushNotificationConfigsRequest, "list_task_push_notification_configs", _push
    ),
    "DeleteTaskPushNotificationConfig": _Route(
        DeleteTaskPushNotificationConfigRequest, "delete_task_push_notification_config", _push
    ),
    "GetExtendedAgentCard": _Route(
        GetExtendedAgentCardRequest, "get_extended_agent_card", _extended_card
    ),
}


# The endpoint


def jsonrpc_endpoint(
    handler: TaskHandler,
    *,
    capabilities: AgentCapabilities | dict[str, Any],
    limits: Limits = DEFAULT_LIMITS,
) -> Endpoint:
    """The Starlette endpoint serving A2A JSON-RPC (1.0 and 0.3) for ``handler``.

    ``capabilities`` is the Agent Card's (model or JSON): it decides which
    optional methods are refused here without calling the handler.
    """
    caps = AgentCapabilities.model_validate(capabilities)

    async def endpoint(request: Request) -> Response:
        requested = _requested_version(request)
        version: Version = requested or "1.0"
        rpc_id: Any = None
        streamed: str | None = None  # a 0.3 streaming method, whose errors are events
        try:
            payload = await read_json(request, limits)
            rpc_id = _request_id(payload)
            method, params = _envelope(payload)
            if requested is None:
                raise VersionNotSupported(metadata={"supported": "1.0, 0.3"})
            name, version, params = _resolve(method, params, requested)
            route = _ROUTES[name]
            streamed = name if route.stream and version == "0.3" else None
            if route.gate is not None and (refusal := route.gate(caps, version)) is not None:
                raise refusal
            model = _validate(route, params, limits)
            ctx = _call_context(request, version, limits)
            call = getattr(handler, route.call, None)
            if call is None:
                raise UnsupportedOperation(f"{name} is not implemented by this node")
            result = await call(model, ctx)
            if route.stream:
                return sse.event_stream(rpc_id, name, version, result)
            return _result_response(rpc_id, _render(name, version, result))
        except A2AError as exc:
            return _error_response(rpc_id, exc, version, streamed)
        except ClientDisconnect:  # a caller that died or gave up: nobody to answer
            log.debug("A2A JSON-RPC caller went away before its request arrived")
            return Response(status_code=400)
        except StoreError as exc:  # says what failed: no traceback needed
            log.error("A2A JSON-RPC request failed (id %r): %s", rpc_id, exc)
            return _error_response(rpc_id, InternalError.of(exc), version, streamed)
        except Exception:
            log.exception("A2A JSON-RPC request failed (id %r)", rpc_id)
            return _error_response(rpc_id, InternalError("internal error"), version, streamed)

    return endpoint


def _requested_version(request: Request) -> Version | None:
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
    if not (major.isdigit() and minor.isdigit()) or (patch and not patch.isdigit()):
        return None
    version = f"{int(major)}.{int(minor)}"
    return version if version in ("1.0", "0.3") else None  # type: ignore[return-value]


def _valid_id(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return value is None or isinstance(value, str | int | float)


def _request_id(payload: Any) -> Any:
    """The id to answer with: the request's, or null when it has none that is valid."""
    if isinstance(payload, dict) and _valid_id(payload.get("id")):
        return payload.get("id")
    return None


def _envelope(payload: Any) -> tuple[str, dict[str, Any]]:
    """The method and params of a JSON-RPC 2.0 request."""
    if isinstance(payload, list):
        raise InvalidRequest("batch requests are not supported")
    if not isinstance(payload, dict):
        raise InvalidRequest("request must be a JSON object")
    if payload.get("jsonrpc") != "2.0":
        raise InvalidRequest('"jsonrpc" must be "2.0"')
    if "id" not in payload:
        raise InvalidRequest('"id" is required (notifications are not supported)')
    if not _valid_id(payload["id"]):
        raise InvalidRequest('"id" must be a string, a number or null')
    method = payload.get("method")
    if not isinstance(method, str):
        raise InvalidRequest('"method" must be a string')
    params = payload.get("params", {})
    if not isinstance(params, dict):
        raise InvalidRequest('"params" must be an object')
    return method, params


# Dispatch


def _resolve(
    method: str, params: dict[str, Any], requested: Version
) -> tuple[str, Version, dict[str, Any]]:
    """The 1.0 method, the caller's dialect and the 1.0 params of a request."""
    if method in _ROUTES:
        return method, "1.0", params
    if requested == "0.3" and method in compat.METHODS_FROM_V03:
        try:
            name, converted = compat.request_params_from_v03(method, params)
        except KeyError as exc:
            raise InvalidParams(f"{exc.args[0]}: field required") from None
        except (TypeError, AttributeError, ValueError):
            raise InvalidParams(f"params do not match {method}") from None
        return name, "0.3", converted
    raise MethodNotFound(f"method not found: {method[:100]!r}")


def _validate(route: _Route, params: dict[str, Any], limits: Limits) -> WireModel:
    try:
        model = route.request.model_validate(params)
    except ValidationError as exc:
        raise InvalidParams(_describe(exc)) from None
    if route.check is not None:
        route.check(model, limits)
    return model


def _describe(exc: ValidationError) -> str:
    """The first problem, naming its field; never the offending value."""
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    first = errors[0]
    where = ".".join(str(part) for part in first["loc"]) or "params"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {first['msg']}{more}"


def _call_context(request: Request, version: Version, limits: Limits) -> CallContext:
    key = request.headers.get("idempotency-key") or None
    if key is not None and len(key) > limits.max_idempotency_key:
        raise InvalidParams(f"Idempotency-Key longer than {limits.max_idempotency_key} characters")
    extensions = request.headers.get("a2a-extensions", "")
    return CallContext(
        caller=caller_of(request.scope),  # from the client certificate (mutual TLS)
        idempotency_key=key,
        version=version,
        traceparent=request.headers.get("traceparent"),
        extensions=tuple(uri.strip() for uri in extensions.split(",") if uri.strip()),
    )


def _render(name: str, version: Version, result: Any) -> Any:
    if not isinstance(result, WireModel):
        raise TypeError(f"{name} handler returned {type(result).__name__}, not a wire model")
    document = result.to_json()
    return compat.result_to_v03(name, document) if version == "0.3" else document


# Responses


async def _raising(exc: A2AError) -> AsyncIterator[StreamResponse]:
    raise exc
    yield  # an async generator that fails at its first event


def _result_response(rpc_id: Any, result: Any) -> Response:
    body = {"jsonrpc": "2.0", "id": rpc_id, "result": result}
    content = json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return Response(content.encode("utf-8"), media_type="application/json")


def refusal(exc: A2AError, request: Request, headers: dict[str, str] | None = None) -> Response:
    """A JSON-RPC error for a request refused before its body is read (so
    its ``id`` is null), with the error's HTTP status (401, 429, ...)."""
    version = _requested_version(request) or "1.0"
    body = {"jsonrpc": "2.0", "id": None, "error": to_jsonrpc_error(exc, version)}
    content = json.dumps(body, ensure_ascii=True, separators=(",", ":"))
    return Response(
        content, exc.error.row.http_status, headers=headers, media_type="application/json"
    )


def _error_response(
    rpc_id: Any, exc: A2AError, version: Version, streamed: str | None = None
) -> Response:
    if streamed is not None:
        # 0.3 clients of a streaming method read only an event stream (a2a-sdk
        # 0.3 and @a2a-js/sdk 0.3 refuse any other media type), as 0.3 servers
        # send errors: one event with the JSON-RPC error, then the end.
        return sse.event_stream(rpc_id, streamed, version, _raising(exc))
    body = {"jsonrpc": "2.0", "id": rpc_id, "error": to_jsonrpc_error(exc, version)}
    # ASCII escapes: an error must be sendable whatever text its message holds.
    content = json.dumps(body, ensure_ascii=True, separators=(",", ":"))
    status = 413 if isinstance(exc, BodyTooLarge) else 200
    return Response(content, status_code=status, media_type="application/json")

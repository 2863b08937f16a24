"""The JSON-RPC 2.0 binding of A2A: the Starlette endpoint for ``POST /a2a``.

A request passes these checks in order; the first that fails answers with
its JSON-RPC error (HTTP 200, except 413 for a body too large and 415 for
an encoded one) and the handler is not called:

1. ``Content-Type`` is ``application/json`` (parameters allowed), checked
   before the body is read: else -32005 ContentTypeNotSupported; a
   ``Content-Encoding`` (gzip, …) is -32005 too, with HTTP 415.
2. (:mod:`.bodies`) The body fits :attr:`Limits.max_body_bytes`: ``Content-Length`` first, then
   counted while it streams, so a false or missing length cannot bypass it.
3. The body is UTF-8 JSON without ``NaN``, infinities or unpaired surrogates: -32700.
4. Nesting is at most :attr:`Limits.max_depth`: -32600.
5. The envelope is a single JSON-RPC 2.0 request with an ``id`` (A2A uses no
   notifications, and batches are refused), naming no key twice: -32600.
6. ``A2A-Version`` (header, else ``?A2A-Version=``) is ``1.0``, or ``0.3``
   when absent or empty, by major.minor (``1.0.1`` is 1.0): else -32009.
7. The method is known: -32601. Each 1.0 name is accepted under either
   version; a 0.3 caller may also use the 0.3 names, whose params are
   converted by :mod:`agent_node.a2a.protocol.compat_methods`.
8. (:mod:`.operations`) Methods the agent's capabilities rule out are
   answered here (-32003, -32004, -32007).
9. The params validate against the 1.0 request model and the part limits: -32602.

Choice: a request's shapes follow its method name. A 0.3 name gets 0.3
params, results and errors (``CallContext.version == "0.3"``); a 1.0 name
gets 1.0 ones even without the ``A2A-Version`` header, because ``ListTasks``
has no 0.3 shape and a client that writes 1.0 names reads 1.0 results.
Errors found before the method is known follow the header.

An :class:`~agent_node.a2a.protocol.errors.A2AError` raised by the handler is passed
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
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from agent_node.a2a.protocol import compat_methods
from agent_node.a2a.protocol.card_models import AgentCapabilities
from agent_node.a2a.protocol.errors import (
    A2AError,
    InvalidParams,
    InvalidRequest,
    MethodNotFound,
    VersionNotSupported,
    to_jsonrpc_error,
)
from agent_node.a2a.protocol.models import (
    StreamResponse,
    WireModel,
)
from agent_node.a2a.server import sse
from agent_node.a2a.server.bodies import read_json, refused_with
from agent_node.a2a.server.failed import failed
from agent_node.a2a.server.handler import TaskHandler
from agent_node.a2a.server.in_flight import follows_its_task, open_stream
from agent_node.a2a.server.limits import DEFAULT_LIMITS, Limits
from agent_node.a2a.server.operations import (
    OPERATIONS,
    Endpoint,
    Version,
    call_context,
    handler_call,
    requested_version,
    validate,
)
from agent_node.scope import OPERATION

__all__ = ["DEFAULT_LIMITS", "Limits", "jsonrpc_endpoint", "refusal"]

log = logging.getLogger(__name__)


# Routes: one row per 1.0 method


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
        requested = requested_version(request)
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
            operation = OPERATIONS[name]
            request.scope[OPERATION] = name  # for the request's span
            streamed = name if operation.stream and version == "0.3" else None
            gate = operation.gate
            if gate is not None and (refused := gate(caps, version)) is not None:
                raise refused
            model = validate(operation, params, limits)
            ctx = call_context(request, version, limits)
            if follows_its_task(operation.stream, model):
                open_stream(request.scope)  # before the handler makes a task
            result = await handler_call(handler, name)(model, ctx)
            if operation.stream:
                return sse.event_stream(rpc_id, name, version, result)
            return _result_response(rpc_id, _render(name, version, result))
        except A2AError as exc:
            return _error_response(rpc_id, exc, version, streamed)
        except ClientDisconnect:  # a caller that died or gave up: nobody to answer
            log.debug("A2A JSON-RPC caller went away before its request arrived")
            return Response(status_code=400)
        except Exception as exc:
            told = failed(exc, log, f"A2A JSON-RPC request (id {rpc_id!r})")
            return _error_response(rpc_id, told, version, streamed)

    return endpoint


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
    if method in OPERATIONS:
        return method, "1.0", params
    if requested == "0.3" and method in compat_methods.METHODS_FROM_V03:
        try:
            name, converted = compat_methods.request_params_from_v03(method, params)
        except KeyError as exc:
            raise InvalidParams(f"{exc.args[0]}: field required") from None
        except (TypeError, AttributeError, ValueError):
            raise InvalidParams(f"params do not match {method}") from None
        return name, "0.3", converted
    raise MethodNotFound(f"method not found: {method[:100]!r}")


def _render(name: str, version: Version, result: Any) -> Any:
    if not isinstance(result, WireModel):
        raise TypeError(f"{name} handler returned {type(result).__name__}, not a wire model")
    document = result.to_json()
    return compat_methods.result_to_v03(name, document) if version == "0.3" else document


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
    version = requested_version(request) or "1.0"
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
    status, headers = refused_with(exc) or (200, None)
    return Response(content, status_code=status, headers=headers, media_type="application/json")

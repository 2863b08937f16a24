"""The HTTP+JSON binding of A2A (§11): the same operations as JSON-RPC, as resources.

Served under the JSON-RPC endpoint's path (``/a2a``), so the card names one
URL for both bindings, as the official SDKs do::

    POST   /a2a/message:send                              SendMessage
    POST   /a2a/message:stream                            SendStreamingMessage (SSE)
    GET    /a2a/tasks                                     ListTasks (query parameters)
    GET    /a2a/tasks/{id}                                GetTask (?historyLength=)
    POST   /a2a/tasks/{id}:cancel                         CancelTask
    GET    /a2a/tasks/{id}:subscribe   (or POST)          SubscribeToTask (SSE)
    POST   /a2a/tasks/{id}/pushNotificationConfigs        CreateTaskPushNotificationConfig
    GET    /a2a/tasks/{id}/pushNotificationConfigs        ListTaskPushNotificationConfigs
    GET    /a2a/tasks/{id}/pushNotificationConfigs/{cid}  GetTaskPushNotificationConfig
    DELETE /a2a/tasks/{id}/pushNotificationConfigs/{cid}  DeleteTaskPushNotificationConfig
    GET    /a2a/extendedAgentCard                         GetExtendedAgentCard

Each path may be preceded by one ``{tenant}`` segment (``/a2a/acme/tasks``);
this node declares no tenants, so it is passed on and otherwise ignored.

A request becomes the operation's name and its 1.0 params — the JSON body
(``application/json`` or ``application/a2a+json``) with the path's ids over
it, or the query parameters (camelCase, as in the JSON) — and then goes the
way a JSON-RPC request goes (:mod:`.operations`): the capability gate,
validation, the same handler. Results are the 1.0 JSON objects
(``application/a2a+json`` or ``application/json``, as the client prefers:
:mod:`.media`), a deleted push config ``{}``; streams are
Server-Sent Events of bare ``StreamResponse`` objects (:mod:`.sse`).

Errors are AIP-193 objects with the error table's HTTP status and gRPC
status name, and a ``google.rpc.ErrorInfo`` (§11.6)::

    {"error": {"code": 404, "status": "NOT_FOUND", "message": "…",
               "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                            "reason": "TASK_NOT_FOUND", "domain": "a2a-protocol.org"}]}}

Versions: the paths are A2A 1.0's (0.3 had others), so a request without
``A2A-Version`` is served as 1.0; one naming a version other than 1.0 (by
major.minor) is VersionNotSupported.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from agent_node.a2a.protocol.card_models import AgentCapabilities
from agent_node.a2a.protocol.error_table import ERROR_INFO_TYPE
from agent_node.a2a.protocol.errors import (
    A2AError,
    InvalidParams,
    InvalidRequest,
    MethodNotFound,
    Unavailable,
    VersionNotSupported,
)
from agent_node.a2a.protocol.models import WireModel
from agent_node.a2a.server import sse
from agent_node.a2a.server.bodies import read_json, refused_with
from agent_node.a2a.server.card import PROTOCOL_PATH
from agent_node.a2a.server.failed import failed
from agent_node.a2a.server.handler import TaskHandler
from agent_node.a2a.server.in_flight import follows_its_task, open_stream
from agent_node.a2a.server.limits import DEFAULT_LIMITS, Limits
from agent_node.a2a.server.media import A2A_JSON, JSON, answer_media_type
from agent_node.a2a.server.operations import (
    OPERATIONS,
    Endpoint,
    call_context,
    handler_call,
    served_version,
    validate,
)
from agent_node.scope import OPERATION, request_line

__all__ = ["REST_PREFIX", "error_response", "rest_endpoint"]

log = logging.getLogger(__name__)

#: Where the binding's paths start.
REST_PREFIX = PROTOCOL_PATH + "/"
#: What results are sent as (§11.1, A2A 1.0.1); requests may use either.
_BODY_TYPES = (A2A_JSON, JSON)
#: The first segments of the paths (anything else before them is a tenant).
_ROOTS = frozenset({"message:send", "message:stream", "tasks", "extendedAgentCard"})


def _integer(name: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise InvalidParams(f"{name}: must be an integer, not {text[:40]!r}") from None


def _boolean(name: str, text: str) -> bool:
    if text.lower() in ("true", "1"):
        return True
    if text.lower() in ("false", "0"):
        return False
    raise InvalidParams(f"{name}: must be true or false, not {text[:40]!r}")


def _text(name: str, text: str) -> str:
    return text


#: The query parameters each operation takes, and how each is read.
_QUERIES: dict[str, dict[str, Callable[[str, str], Any]]] = {
    "ListTasks": {
        "contextId": _text,
        "status": _text,
        "pageSize": _integer,
        "pageToken": _text,
        "historyLength": _integer,
        "statusTimestampAfter": _text,
        "includeArtifacts": _boolean,
    },
    "GetTask": {"historyLength": _integer},
    "ListTaskPushNotificationConfigs": {"pageSize": _integer, "pageToken": _text},
}


class _NotAllowed(MethodNotFound):
    """The path is one of ours, the HTTP method is not: 405."""

    def __init__(self, method: str, allowed: tuple[str, ...]) -> None:
        super().__init__(f"{method} is not allowed here; use {' or '.join(allowed)}")
        self.allowed = allowed


def rest_endpoint(
    handler: TaskHandler,
    *,
    capabilities: AgentCapabilities | dict[str, Any],
    limits: Limits = DEFAULT_LIMITS,
) -> Endpoint:
    """The endpoint serving the paths under :data:`REST_PREFIX` for ``handler``
    (all but those the app routes elsewhere, e.g. the push receiver's);
    ``capabilities`` (the card's) decide which operations are refused here."""
    caps = AgentCapabilities.model_validate(capabilities)

    async def endpoint(request: Request) -> Response:
        media = answer_media_type(request.headers)
        try:
            _check_version(request)
            name, ids = _route(request.method, request.url.path)
            operation = OPERATIONS[name]
            request.scope[OPERATION] = name  # for the request's span
            if operation.gate is not None and (refused := operation.gate(caps, "1.0")):
                raise refused
            params = await _params(request, name, ids, limits)
            model = validate(operation, params, limits)
            ctx = call_context(request, "1.0", limits)
            if follows_its_task(operation.stream, model):
                open_stream(request.scope)  # before the handler makes a task
            result = await handler_call(handler, name)(model, ctx)
            if operation.stream:
                return sse.bare_event_stream(name, result, _error_body)
            if not isinstance(result, WireModel):
                raise TypeError(f"{name} handler returned {type(result).__name__}")
            return _json(200, result.to_json(), media)
        except A2AError as exc:
            return error_response(exc, media)
        except ClientDisconnect:  # nobody is left to answer
            log.debug("A2A REST caller went away before its request arrived")
            return Response(status_code=400)
        except Exception as exc:
            what = f"A2A REST {request_line(request.scope)}"
            return error_response(failed(exc, log, what), media)

    return endpoint


def _check_version(request: Request) -> None:
    asked = request.headers.get("a2a-version") or request.query_params.get("A2A-Version")
    if asked and asked.strip() and served_version(asked) != "1.0":
        raise VersionNotSupported(
            f"A2A-Version {asked[:20]!r}: this binding serves 1.0",
            metadata={"supported": "1.0"},
        )


def _route(method: str, path: str) -> tuple[str, dict[str, str]]:
    """The operation a request names, and the ids its path holds."""
    segments = path.removeprefix(REST_PREFIX).split("/")
    ids: dict[str, str] = {}
    if len(segments) > 1 and segments[0] not in _ROOTS:
        ids["tenant"] = segments.pop(0)
    head, rest = segments[0], segments[1:]
    if head == "message:send" and not rest:
        return _only(method, "POST", "SendMessage"), ids
    if head == "message:stream" and not rest:
        return _only(method, "POST", "SendStreamingMessage"), ids
    if head == "extendedAgentCard" and not rest:
        return _only(method, "GET", "GetExtendedAgentCard"), ids
    if head == "tasks" and not rest:
        return _only(method, "GET", "ListTasks"), ids
    if head == "tasks" and rest and rest[0]:
        return _task_route(method, rest, ids)
    raise MethodNotFound(f"no A2A operation at {path[:200]!r}")


def _task_route(method: str, rest: list[str], ids: dict[str, str]) -> tuple[str, dict[str, str]]:
    task, configs = rest[0], rest[1:]
    if not configs:
        name, _, verb = task.rpartition(":")
        if verb == "cancel" and name:
            return _only(method, "POST", "CancelTask"), {**ids, "id": name}
        if verb == "subscribe" and name:
            if method not in ("GET", "POST"):
                raise _NotAllowed(method, ("GET", "POST"))
            return "SubscribeToTask", {**ids, "id": name}
        return _only(method, "GET", "GetTask"), {**ids, "id": task}
    if configs[0] != "pushNotificationConfigs" or len(configs) > 2:
        raise MethodNotFound(f"no A2A operation at tasks/{'/'.join(rest)[:200]!r}")
    ids = {**ids, "taskId": task}
    if len(configs) == 1:
        if method == "POST":
            return "CreateTaskPushNotificationConfig", ids
        return _only(method, "GET", "ListTaskPushNotificationConfigs"), ids
    ids["id"] = configs[1]
    if method == "DELETE":
        return "DeleteTaskPushNotificationConfig", ids
    return _only(method, "GET", "GetTaskPushNotificationConfig"), ids


def _only(method: str, allowed: str, name: str) -> str:
    if method != allowed:
        raise _NotAllowed(method, (allowed,))
    return name


async def _params(
    request: Request, name: str, ids: dict[str, str], limits: Limits
) -> dict[str, Any]:
    """The operation's 1.0 params: the body or the query, with the path's ids over them."""
    params: dict[str, Any] = {}
    if request.method == "POST" and (name.startswith("Send") or _has_body(request)):
        body = await read_json(request, limits, _BODY_TYPES)
        if not isinstance(body, dict):
            raise InvalidRequest("the request body must be a JSON object")
        params = body
    for key, read in _QUERIES.get(name, {}).items():
        values = request.query_params.getlist(key)
        if values:
            params[key] = read(key, values[-1])
    return {**params, **ids}


def _has_body(request: Request) -> bool:
    length = request.headers.get("content-length")
    if length is not None:
        return length.strip() not in ("", "0")
    return "transfer-encoding" in request.headers


def _error_body(exc: A2AError) -> dict[str, Any]:
    row = exc.error.row
    info: dict[str, Any] = {"@type": ERROR_INFO_TYPE, "reason": row.reason, "domain": row.domain}
    if exc.metadata:
        info["metadata"] = {key: str(value) for key, value in exc.metadata.items()}
    status = _status(exc)
    return {
        "error": {
            "code": status,
            "status": row.grpc_status,
            "message": exc.message,
            "details": [info],
        }
    }


def _status(exc: A2AError) -> int:
    if (refused := refused_with(exc)) is not None:
        return refused[0]
    if isinstance(exc, _NotAllowed):
        return 405
    return exc.error.row.http_status


def error_response(exc: A2AError, media: str = JSON) -> Response:
    """The binding's answer to ``exc`` (see the module doc), as ``media``
    (:func:`~agent_node.a2a.server.media.answer_media_type`)."""
    headers = {"Allow": ", ".join(exc.allowed)} if isinstance(exc, _NotAllowed) else None
    if isinstance(exc, Unavailable):
        headers = {"Retry-After": "1"}
    if (refused := refused_with(exc)) is not None and refused[1]:
        headers = refused[1]
    response = _json(_status(exc), _error_body(exc), media, ascii_only=True)
    if headers:
        response.headers.update(headers)
    return response


def _json(status: int, body: Any, media: str, *, ascii_only: bool = False) -> Response:
    content = json.dumps(body, ensure_ascii=ascii_only, allow_nan=False, separators=(",", ":"))
    return Response(content.encode("utf-8"), status, {"Vary": "Accept"}, media_type=media)

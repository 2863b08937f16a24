"""The operator API: a node's executions over HTTP, for operators only.

::

    GET  /ops/executions[?status=S&limit=N&offset=K]   newest first
    GET  /ops/executions/{id}                          record + timeline
    GET  /ops/executions/{id}/events                   the event log
    POST /ops/executions/{id}/signal   {"event": E, "data": …}
    POST /ops/executions/{id}/cancel   {"reason": …}

Only identities in ``policy.operators`` may call it (a node without TLS has
no identities, and lets anyone on its loopback address in); anyone else
gets HTTP 403, logged. Errors are JSON ``{"error": {code, status,
message}}``: 400 for bad input, 404 for an unknown execution, 409 for a
signal no wait is waiting for.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, get_args

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from agent_node.errors import UnknownExecution, UsageError
from agent_node.results import build_timeline, to_event
from agent_node.runtime import Runtime
from agent_node.security.authz import Policy
from agent_node.store import ExecutionRecord, ExecutionStatus
from agent_node.transport import caller_of

__all__ = ["OPS_PATH", "ops_routes"]

log = logging.getLogger(__name__)

OPS_PATH = "/ops"
MAX_PAGE = 500
MAX_BODY = 256 * 1024
_STATUSES = frozenset(get_args(ExecutionStatus))

Handler = Callable[[Request], Awaitable[Response]]


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


_REASONS = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 409: "CONFLICT"}


def ops_routes(runtime: Runtime, policy: Policy) -> list[Route]:
    """The operator API's routes, serving ``runtime``'s store, behind ``policy``."""

    def guarded(handler: Callable[[Request, Runtime], Awaitable[Any]]) -> Handler:
        async def endpoint(request: Request) -> Response:
            caller = caller_of(request.scope)
            try:
                if not policy.is_operator(caller):
                    log.warning("denied: %s may not use the operator API", caller or "anonymous")
                    raise _Refused(403, f"{caller or 'an anonymous caller'} is not an operator")
                return JSONResponse(await handler(request, runtime))
            except _Refused as exc:
                error = {"code": exc.status, "status": _REASONS[exc.status], "message": exc.message}
                return JSONResponse({"error": error}, exc.status)

        return endpoint

    base = OPS_PATH + "/executions"
    return [
        Route(base, guarded(_list), methods=["GET"]),
        Route(base + "/{id}", guarded(_show), methods=["GET"]),
        Route(base + "/{id}/events", guarded(_events), methods=["GET"]),
        Route(base + "/{id}/signal", guarded(_signal), methods=["POST"]),
        Route(base + "/{id}/cancel", guarded(_cancel), methods=["POST"]),
    ]


async def _list(request: Request, runtime: Runtime) -> Any:
    query = request.query_params
    status = query.get("status")
    if status is not None and status not in _STATUSES:
        raise _Refused(400, f"status must be one of {', '.join(sorted(_STATUSES))}")
    limit = _integer(query.get("limit", "50"), "limit", 1, MAX_PAGE)
    offset = _integer(query.get("offset", "0"), "offset", 0, 10**9)
    records = await runtime.store.list_executions(
        status=[status] if status else None, limit=limit, offset=offset
    )
    return {"executions": [_summary(r) for r in records]}


async def _show(request: Request, runtime: Runtime) -> Any:
    record = await _record(request, runtime)
    events = [to_event(e) for e in await runtime.store.events(record.id)]
    timeline = [
        {
            "node": run.node,
            "visit": run.visit,
            "attempt": run.attempt,
            "status": run.status,
            "started_at": run.started_at,
            "duration": run.duration,
            "detail": run.detail,
        }
        for run in build_timeline(events)
    ]
    return {**_summary(record), "state": json.loads(record.state), "timeline": timeline}


async def _events(request: Request, runtime: Runtime) -> Any:
    record = await _record(request, runtime)
    return {"events": [to_event(e).as_json() for e in await runtime.store.events(record.id)]}


async def _signal(request: Request, runtime: Runtime) -> Any:
    record = await _record(request, runtime)
    body = await _body(request)
    event = body.get("event")
    if not isinstance(event, str) or not event:
        raise _Refused(400, '"event" must be a non-empty string')
    try:
        await runtime.engine.control.signal(record.id, event, body.get("data"))
    except UsageError as exc:  # InvalidSignal among them
        raise _Refused(409, str(exc)) from None
    runtime.engine.drive(record.id)
    return {"id": record.id, "signaled": event}


async def _cancel(request: Request, runtime: Runtime) -> Any:
    record = await _record(request, runtime)
    body = await _body(request)
    reason = body.get("reason", "canceled by an operator")
    if not isinstance(reason, str):
        raise _Refused(400, '"reason" must be a string')
    canceled = await runtime.engine.control.cancel(record.id, reason[:500])
    return {"id": record.id, "canceled": canceled}


async def _record(request: Request, runtime: Runtime) -> ExecutionRecord:
    execution_id = request.path_params["id"]
    try:
        record = await runtime.store.get(execution_id)
    except UnknownExecution:
        record = None
    if record is None:
        raise _Refused(404, f"no execution {execution_id!r}")
    return record


async def _body(request: Request) -> dict[str, Any]:
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY:
            raise _Refused(400, f"body larger than {MAX_BODY} bytes")
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise _Refused(400, "body is not JSON") from None
    if not isinstance(body, dict):
        raise _Refused(400, "body must be a JSON object")
    return body


def _integer(text: str, name: str, low: int, high: int) -> int:
    if not text.isdigit() or not low <= int(text) <= high:
        raise _Refused(400, f"{name} must be an integer from {low} to {high}")
    return int(text)


def _summary(record: ExecutionRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "workflow": record.workflow_id,
        "version": record.workflow_version,
        "status": record.status,
        "caller": record.caller,
        "context_id": record.context_id,
        "error": record.error,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
    }

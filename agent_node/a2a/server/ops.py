"""The operator API: a node's executions over HTTP, for operators only.

::

    GET  /ops/node[?counts=all]                   who this node is, its load
    GET  /ops/executions[?status=S&workflow=W&skill=K&caller=C&context=X
                        &since=T&until=T&q=ID&limit=N&cursor=C&count=1]
                                                  newest first, paged
    GET  /ops/executions/{id}                     record, timeline, graph,
                                                  state changes, errors,
                                                  usage, delegations
    GET  /ops/executions/{id}/events              the event log
    GET  /ops/executions/{id}/live                SSE: the text it writes
    POST /ops/executions/{id}/signal   {"event": E, "data": …}
    POST /ops/executions/{id}/cancel   {"reason": …}
    POST /ops/executions/{id}/retry    a new execution with the same input
    GET  /ops/inbox[?limit=N&cursor=C]            what waits on a person
    GET  /ops/stream                              SSE: executions that change

Each part lives in a module of its own: :mod:`.ops_query` (the list),
:mod:`.ops_views` (one execution), :mod:`.ops_inbox`, :mod:`.ops_node`,
:mod:`.ops_stream`, :mod:`.ops_actions`; :mod:`.ops_edge` reads requests.

Only identities in ``policy.operators`` may call it (a node without TLS has
no identities, and lets anyone on its loopback address in); anyone else
gets HTTP 403, logged. Errors are JSON ``{"error": {code, status,
message}}``: 400 for bad input, 404 for an unknown execution or a path
the API lacks, 409 for an
action the execution's state does not allow (a signal no wait is waiting
for, a retry of one that did not fail). An execution's id is one path
segment, percent-encoded: it may hold ``/`` (``%2F``), read from the raw
path.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote, unquote

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from agent_node.results import to_event
from agent_node.runtime import Runtime
from agent_node.scope import caller_of, request_line
from agent_node.security.authz import Policy
from agent_node.store.outage import is_outage

from . import ops_actions
from .failed import log_outage
from .in_flight import TooManyStreams, open_stream
from .ops_edge import Refused, record_of
from .ops_inbox import inbox
from .ops_node import NodeAbout, node_view
from .ops_query import list_executions
from .ops_stream import changes_stream, live_stream
from .ops_views import execution_view

__all__ = ["OPS_PATH", "NodeAbout", "ops_routes"]

log = logging.getLogger(__name__)

OPS_PATH = "/ops"

Handler = Callable[[Request], Awaitable[Response]]
#: A handler's answer: JSON data, or a response of its own (a stream).
Answer = Callable[[Request], Awaitable[Any]]


def ops_routes(runtime: Runtime, policy: Policy, about: NodeAbout | None = None) -> list[Route]:
    """The operator API's routes, serving ``runtime``'s store, behind ``policy``;
    ``about``: what ``/ops/node`` says of the node (its name, URL, card, skills)."""

    def guarded(handler: Answer) -> Handler:
        return _guarded(policy, handler)

    async def node(request: Request) -> Any:
        counts = request.query_params.get("counts")
        if counts not in (None, "", "all"):
            raise Refused(400, "counts must be 'all' (or left out: the active ones only)")
        return await node_view(runtime, about, counts == "all")

    async def listed(request: Request) -> Any:
        skills = dict(about.skills) if about and about.skills else None
        return await list_executions(runtime, request.query_params, skills)

    async def show(request: Request) -> Any:
        skills = about.skills if about else None
        return await execution_view(runtime, await record_of(request, runtime), skills)

    async def events(request: Request) -> Any:
        record = await record_of(request, runtime)
        return {"events": [to_event(e).as_json() for e in await runtime.store.events(record.id)]}

    serving = about.serving if about else _always

    async def live(request: Request) -> Any:
        record = await record_of(request, runtime)
        _open_stream(request)
        return live_stream(runtime, record, serving)

    async def parked(request: Request) -> Any:
        return await inbox(runtime, request.query_params)

    async def stream(request: Request) -> Any:
        _open_stream(request)
        return changes_stream(runtime, serving)

    def act(action: Callable[[Request, Runtime], Awaitable[Any]]) -> Answer:
        async def acting(request: Request) -> Any:
            return await action(request, runtime)

        return acting

    one: dict[tuple[str, str], Answer] = {
        ("GET", ""): show,
        ("GET", "events"): events,
        ("GET", "live"): live,
        ("POST", "signal"): act(ops_actions.signal),
        ("POST", "cancel"): act(ops_actions.cancel),
        ("POST", "retry"): act(ops_actions.retry),
    }
    base = OPS_PATH + "/executions"
    return [
        Route(OPS_PATH + "/node", guarded(node), methods=["GET"]),
        Route(OPS_PATH + "/inbox", guarded(parked), methods=["GET"]),
        Route(OPS_PATH + "/stream", guarded(stream), methods=["GET"]),
        Route(base, guarded(listed), methods=["GET"]),
        Route(base + "/{rest:path}", guarded(_one_execution(base, one)), methods=["GET", "POST"]),
        Route(OPS_PATH + "/{rest:path}", guarded(_unknown), methods=_ALL),
    ]


_ALL = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]


def _one_execution(base: str, table: dict[tuple[str, str], Answer]) -> Answer:
    """What a path under ``base`` asks of one execution: its id and the
    action after it, each segment decoded on its own from the raw path (an
    id may hold ``/``, sent as ``%2F``: the decoded path cannot tell it
    from the next segment)."""
    prefix = base + "/"

    async def one(request: Request) -> Any:
        raw = request.scope.get("raw_path")
        where = raw.decode("utf-8", "replace") if raw else quote(request.scope["path"])
        parts = [unquote(p) for p in where.split("?", 1)[0].removeprefix(prefix).split("/")]
        if len(parts) > 2 or not parts[0]:
            raise Refused(404, f"no such operator API path: {request.url.path}")
        if "\x00" in parts[0]:  # no id holds one, and PostgreSQL cannot look one up
            raise Refused(404, f"no execution {parts[0]!r}")
        action = parts[1] if len(parts) == 2 else ""
        handler = table.get((request.method, action))
        if handler is None:
            known = any(a == action for _, a in table)
            if known:
                raise Refused(405, f"{request.method} is not allowed here")
            raise Refused(404, f"no such operator API path: {request.url.path}")
        request.scope["path_params"] = {"id": parts[0]}
        return await handler(request)

    return one


def _open_stream(request: Request) -> None:
    """Count ``request`` among its operator's event streams, not its requests
    in flight (:mod:`.in_flight`): a UI with many pages open must not lock
    its operator out of the API. At the cap: 429, without ``Retry-After``."""
    try:
        open_stream(request.scope)
    except TooManyStreams as exc:
        raise Refused(429, exc.message) from None


async def _unknown(request: Request) -> Any:
    raise Refused(404, f"no such operator API path: {request.url.path}")


def _always() -> bool:
    return True


def _failed(exc: Exception, what: str) -> Response:
    """A request this API failed: the store out of reach is a 503 worth
    asking again (one line logged, as the A2A bindings log it), anything
    else a 500 that says nothing of our internals (its traceback logged)."""
    if is_outage(exc):
        log_outage(log, what, exc)
        refused = Refused(503, "the node's store cannot be reached now; ask again in a moment")
        return JSONResponse(refused.body(), 503, {"Retry-After": "1"})
    log.error("%s failed", what, exc_info=exc)
    return JSONResponse(Refused(500, "internal error").body(), 500)


def _guarded(policy: Policy, handler: Answer) -> Handler:
    """``handler`` for operators only, its answer and failures as JSON."""

    async def endpoint(request: Request) -> Response:
        caller = caller_of(request.scope)
        try:
            if not policy.is_operator(caller):
                log.warning("denied: %s may not use the operator API", caller or "anonymous")
                raise Refused(403, f"{caller or 'an anonymous caller'} is not an operator")
            answer = await handler(request)
        except Refused as exc:
            return JSONResponse(exc.body(), exc.status)
        except ClientDisconnect:  # nobody to answer: the server logs it in one line
            raise
        except Exception as exc:  # answered in the API's shape, not as plain text
            return _failed(exc, request_line(request.scope))
        return answer if isinstance(answer, Response) else JSONResponse(answer)

    return endpoint

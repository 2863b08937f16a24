"""The UI server: the page, and the API the page calls (same origin only).

::

    GET  /                                  the page (static/index.html)
    GET  /static/app.css, /static/*.js      its style and its script's modules
    GET  /api/nodes                         each node: summary, card, health,
                                            or since when it is unreachable
    GET  /api/executions?node=&status=&…    executions across nodes, merged
                                            (the first page: how many, too)
    GET  /api/inbox                         what waits on a person, every node
    GET  /api/stream                        SSE: changes on every node
    GET  /api/nodes/{node}/executions/{id}            one execution (the id
                                                      percent-encoded, "/" too)
    GET  /api/nodes/{node}/executions/{id}/events     its event log
    GET  /api/nodes/{node}/executions/{id}/tree       its cross-agent tree
    GET  /api/nodes/{node}/executions/{id}/live       SSE: its text as written
    POST /api/nodes/{node}/executions/{id}/answer     {"text"}: A2A SendMessage
    POST /api/nodes/{node}/executions/{id}/signal     {"event", "data"}
    POST /api/nodes/{node}/executions/{id}/cancel     {"reason"}
    POST /api/nodes/{node}/executions/{id}/retry

Each call becomes a fixed call to one configured node (:mod:`.calls`) —
or, when that node is down, to a replica of its store, as far as it is
safe (a read always, a change only when it was certainly not sent); a
node's refusal comes back with its status and message, a node that is down
(and no replica answered for it) as 502. Errors are
``{"error": {"message": …}}``, a path it lacks too (404).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any
from urllib.parse import quote, unquote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from . import relay
from .calls import GLANCE, Calls, NodeDown, Reply, path
from .guard import Guard
from .listing import BadRequest, inboxes, list_executions
from .relay import Watch
from .stores import mark_sharing
from .targets import Target
from .tree import task_tree

__all__ = ["create_app"]

MAX_BODY = 64 * 1024
#: The page's files: its HTML, its style, and its script's modules.
_MODULES = ("app", "dom", "state", "actions", "drawings", "execution", "inbox")
_STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/static/app.css": ("app.css", "text/css; charset=utf-8"),
    **{f"/static/{m}.js": (f"{m}.js", "text/javascript; charset=utf-8") for m in _MODULES},
}


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def create_app(calls: Calls, token: str | None = None, *, watch: Watch | None = None) -> Guard:
    """The app behind its :class:`~.guard.Guard` (set the guard's ``port``
    once the socket is bound); ``token``: what every request must carry;
    ``watch``: how a node that hangs is found out (:class:`~.relay.Watch`)."""
    files = resources.files("agent_node.ui") / "static"
    pages = {route: (files / name).read_bytes() for route, (name, _) in _STATIC.items()}
    api = _Api(calls, watch or Watch())
    routes = [
        Route(r, _static(pages[r], media), methods=["GET", "HEAD"])
        for r, (_, media) in _STATIC.items()
    ]
    one: dict[tuple[str, str], Handler] = {
        ("GET", ""): api.show,
        ("GET", "events"): api.events,
        ("GET", "tree"): api.tree,
        ("GET", "live"): api.live,
        ("POST", "answer"): api.answer,
        **{("POST", n): api.action(n) for n in _ACTIONS},
    }
    routes += [
        Route("/api/nodes", _json(api.nodes), methods=["GET"]),
        Route("/api/executions", _json(api.executions), methods=["GET"]),
        Route("/api/inbox", _json(api.inbox), methods=["GET"]),
        Route("/api/stream", _json(api.stream), methods=["GET"]),
        Route(_ONE, _json(_one_execution(one)), methods=["GET", "POST"]),
    ]
    app = Starlette(routes=routes, exception_handlers={404: _missing, 405: _missing})
    return Guard(app, token)


_ONE = "/api/nodes/{node}/executions/{rest:path}"


def _one_execution(table: dict[tuple[str, str], Handler]) -> Handler:
    """What a path under ``/api/nodes/{node}/executions/`` asks: the id and
    the action after it, each segment decoded on its own from the raw path
    (an id may hold ``/``, sent as ``%2F``)."""

    async def one(request: Request) -> Any:
        raw = request.scope.get("raw_path")
        where = raw.decode("utf-8", "replace") if raw else quote(request.scope["path"])
        parts = [unquote(p) for p in where.split("?", 1)[0].split("/")]
        # "", "api", "nodes", node, "executions", id[, action]
        if len(parts) not in (6, 7) or not parts[5]:
            raise _Refused(404, f"nothing at {request.url.path}")
        action = parts[6] if len(parts) == 7 else ""
        handler = table.get((request.method, action))
        if handler is None:
            allowed = any(a == action for _, a in table)
            raise _Refused(
                405 if allowed else 404, f"nothing at {request.method} {request.url.path}"
            )
        request.scope["path_params"] = {"node": parts[3], "id": parts[5]}
        return await handler(request)

    return one


async def _missing(request: Request, exc: Exception) -> Response:
    status = getattr(exc, "status_code", 404)
    return _error(status, f"nothing at {request.method} {request.url.path}")


#: The operator API's actions the page may ask for, passed on as they are.
_ACTIONS = ("signal", "cancel", "retry")
Handler = Callable[[Request], Awaitable[Any]]


def _static(body: bytes, media: str) -> Callable[[Request], Awaitable[Response]]:
    async def serve(request: Request) -> Response:
        return Response(body, media_type=media, headers={"Cache-Control": "no-cache"})

    return serve


def _json(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """``handler``'s answer as a response: JSON, a node's reply passed on, or
    a response of its own (a stream); its refusals as JSON errors."""

    async def endpoint(request: Request) -> Response:
        try:
            answer = await handler(request)
        except _Refused as exc:
            return _error(exc.status, str(exc))
        except BadRequest as exc:
            return _error(400, str(exc))
        except NodeDown as exc:
            return _error(502, f"the node is down: {exc}")
        if isinstance(answer, Reply):
            return JSONResponse(answer.body, answer.status)
        return answer if isinstance(answer, Response) else JSONResponse(answer)

    return endpoint


class _Api:
    """The page's calls, each turned into fixed calls to the nodes."""

    def __init__(self, calls: Calls, watch: Watch) -> None:
        self.calls = calls
        self.targets = calls.network.targets
        self.watch = watch

    def target(self, request: Request) -> Target:
        key = request.path_params["node"]
        found = self.targets.get(key)
        if found is None:
            raise _Refused(404, f"no node {key!r} here")
        return found

    @staticmethod
    def execution(request: Request) -> str:
        execution_id = str(request.path_params["id"])
        if len(execution_id) > 200 or not execution_id.isprintable():
            raise _Refused(400, "an execution id is printable text of at most 200 characters")
        return execution_id

    def ops(self, request: Request, *more: str) -> str:
        return path("ops", "executions", self.execution(request), *more)

    async def nodes(self, request: Request) -> Any:
        shown = await asyncio.gather(*(_node(self.calls, t) for t in self.targets.values()))
        mark_sharing(self.calls.replicas, self.targets, shown)
        return {"nodes": shown}

    async def executions(self, request: Request) -> Any:
        chosen = _chosen(request, self.targets)
        return await list_executions(self.calls, chosen, request.query_params)

    async def inbox(self, request: Request) -> Any:
        return await inboxes(self.calls, _chosen(request, self.targets), request.query_params)

    async def stream(self, request: Request) -> Any:
        return relay.changes(self.calls, _chosen(request, self.targets), self.watch)

    async def show(self, request: Request) -> Any:
        return await self.calls.get(self.target(request), self.ops(request))

    async def events(self, request: Request) -> Any:
        return await self.calls.get(self.target(request), self.ops(request, "events"))

    async def tree(self, request: Request) -> Any:
        return await task_tree(self.calls, self.target(request), self.execution(request))

    async def live(self, request: Request) -> Any:
        return relay.live(self.calls, self.target(request), self.execution(request))

    async def answer(self, request: Request) -> Any:
        body = await _body(request)
        said = body.get("text")
        if not isinstance(said, str) or not said.strip():
            raise _Refused(400, '"text" must be the answer, a non-empty string')
        return await self.calls.send_message(self.target(request), self.execution(request), said)

    def action(self, name: str) -> Handler:
        async def act(request: Request) -> Any:
            where = self.ops(request, name)
            return await self.calls.post(self.target(request), where, await _body(request))

        return act


def _chosen(request: Request, targets: dict[str, Target]) -> list[Target]:
    """The nodes ``?node=`` names (repeated or comma-separated), else all."""
    named = [k for raw in request.query_params.getlist("node") for k in raw.split(",") if k]
    unknown = [k for k in named if k not in targets]
    if unknown:
        raise _Refused(400, f"no node {unknown[0]!r} here (nodes: {', '.join(targets)})")
    return [targets[k] for k in named] if named else list(targets.values())


async def _node(calls: Calls, target: Target) -> dict[str, Any]:
    """One node as the nodes view shows it: reachable or not (and since when
    not: ``since``, epoch seconds), its summary (``/ops/node``), its card's
    words and its health, and its ``identity``: the one configured for it,
    else the one its certificate named, now or when it last answered (left
    out where none is known: plain HTTP, or never reached)."""
    shown: dict[str, Any] = {"key": target.key, "url": target.url}
    identity = target.identity or calls.reach.identity(target.key)
    if identity is not None:
        shown["identity"] = identity
    try:
        summary, card, health = await asyncio.gather(
            calls.get(target, "/ops/node", timeout=GLANCE, fall_over=False),
            calls.card(target),
            calls.health(target),
        )
    except NodeDown as exc:
        outage = calls.reach.outage(target.key)
        since = outage.since if outage is not None else None
        return {**shown, "up": False, "error": str(exc), "since": since, "health": "down"}
    if summary.identity is not None:
        shown.setdefault("identity", summary.identity)
    error = None
    if not summary.ok:
        body = summary.body if isinstance(summary.body, dict) else {}
        error = (body.get("error") or {}).get("message") or f"HTTP {summary.status}"
    node = summary.body if summary.ok else None
    if card is None and isinstance(node, dict):
        card = node.get("card")
    return {**shown, "up": True, "error": error, "node": node, "card": card, "health": health}


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


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": {"message": message}}, status)

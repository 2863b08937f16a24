"""Serving :class:`~agent_node.telemetry.metrics.NodeMetrics`: the ``/metrics``
route (behind the operator policy), the ASGI wrapper counting every HTTP
request, and the optional plain port for scrapers without certificates.

The route label of a request is one of a fixed few (``a2a``, ``rest``,
``card``, ``ops``, ``push``, ``probe``, ``metrics``, ``other``): a path a
caller invents never becomes a label.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agent_node.telemetry.metrics import NodeMetrics

__all__ = ["METRICS_PATH", "counted", "metrics_route", "plain_metrics_app", "route_of"]

log = logging.getLogger(__name__)

METRICS_PATH = "/metrics"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_PREFIXES = (
    ("/a2a/push", "push"),
    ("/a2a/", "rest"),
    ("/.well-known/", "card"),
    ("/ops/", "ops"),
)


def route_of(path: str) -> str:
    if path == "/a2a":
        return "a2a"
    if path in ("/healthz", "/readyz"):
        return "probe"
    if path == METRICS_PATH:
        return "metrics"
    for prefix, route in _PREFIXES:
        if path.startswith(prefix):
            return "a2a" if route == "rest" and path == "/a2a/" else route
    return "other"


def metrics_route(metrics: NodeMetrics, allowed: Callable[[Request], bool]) -> Route:
    """``GET /metrics``, for callers ``allowed`` says may read it (operators)."""

    async def endpoint(request: Request) -> Response:
        if not allowed(request):
            body = {
                "error": {"code": 403, "status": "PERMISSION_DENIED", "message": "operators only"}
            }
            return JSONResponse(body, 403)
        return Response(await metrics.scrape(), media_type=CONTENT_TYPE)

    return Route(METRICS_PATH, endpoint, methods=["GET"])


def counted(app: ASGIApp, metrics: NodeMetrics) -> ASGIApp:
    """``app``, each HTTP request counted when its answer ends (or fails)."""

    async def wrapper(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        began = time.perf_counter()
        code = 500

        def sending(message: Message) -> Awaitable[None]:
            # A plain function handing back ``send``'s awaitable: no
            # coroutine of its own to make and step through (two a request).
            nonlocal code
            if message["type"] == "http.response.start":
                code = message["status"]
            return send(message)

        try:
            await app(scope, receive, sending)
        finally:
            route = route_of(scope["path"])
            metrics.request(scope["method"], route, code, time.perf_counter() - began)

    return wrapper


def plain_metrics_app(metrics: NodeMetrics) -> ASGIApp:
    """The app of the plain metrics port: ``GET /metrics`` and nothing else."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] != METRICS_PATH or scope["method"] not in ("GET", "HEAD"):
            await Response("not found", 404)(scope, receive, send)
            return
        await Response(await metrics.scrape(), media_type=CONTENT_TYPE)(scope, receive, send)

    return app


def bind_plain(host: str, port: int) -> socket.socket:
    """The plain metrics port's socket, bound now (a taken port fails the start)."""
    from agent_node.transport import listening_socket

    return listening_socket(host, port)


def plain_server(metrics: NodeMetrics) -> Any:
    """A uvicorn server of :func:`plain_metrics_app` that leaves signals to
    the node's own server (it is stopped with it)."""
    import contextlib

    import uvicorn

    class _Quiet(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    config = uvicorn.Config(
        plain_metrics_app(metrics), log_level="warning", log_config=None, lifespan="off"
    )
    return _Quiet(config)

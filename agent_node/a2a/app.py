"""The node's HTTP application (Starlette): the Agent Card and the A2A endpoint.

``/.well-known/agent-card.json`` is where A2A 0.3 and 1.0 clients look;
``/.well-known/agent.json`` is where older clients (0.2) look. Both serve
the same document, with ``ETag`` and ``Cache-Control``; a request whose
``If-None-Match`` matches gets ``304 Not Modified``.

A ``POST`` to the A2A endpoint goes straight to it, ahead of Starlette's
router and middleware (about a tenth of the CPU of a request that completes
at once); the endpoint answers every failure itself, so they had nothing to
add. Everything else (cards, 404, 405) goes through Starlette.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from agent_node.a2a.card import PROTOCOL_PATH, CardDocument

__all__ = ["CARD_PATHS", "Endpoint", "create_app"]

Endpoint = Callable[[Request], Awaitable[Response]]

CARD_PATHS = ("/.well-known/agent-card.json", "/.well-known/agent.json")


def create_app(card: CardDocument, a2a: Endpoint | None = None) -> ASGIApp:
    """The app: the card on both well-known paths, and ``a2a`` (the JSON-RPC
    endpoint) at :data:`~agent_node.a2a.card.PROTOCOL_PATH` when given."""

    async def serve_card(request: Request) -> Response:
        headers = {
            "ETag": card.etag,
            "Last-Modified": card.last_modified,
            "Cache-Control": card.cache_control,
        }
        if _matches(request.headers.get("if-none-match"), card.etag):
            return Response(status_code=304, headers=headers)
        return Response(card.body, media_type="application/json", headers=headers)

    routes = [Route(path, serve_card, methods=["GET", "HEAD"]) for path in CARD_PATHS]
    if a2a is not None:
        # Clients that join the card's URL with "/" (the TCK does) post to
        # /a2a/: answer there too, rather than redirecting a POST.
        routes.append(Route(PROTOCOL_PATH, a2a, methods=["POST"]))
        routes.append(Route(PROTOCOL_PATH + "/", a2a, methods=["POST"]))
    app = Starlette(routes=routes)
    return app if a2a is None else _Shortcut(app, a2a)


class _Shortcut:
    """``POST /a2a`` (and ``/a2a/``) to the endpoint directly; the rest to ``app``."""

    def __init__(self, app: ASGIApp, endpoint: Endpoint) -> None:
        self.app = app
        self.endpoint = endpoint
        self.paths = {PROTOCOL_PATH, PROTOCOL_PATH + "/"}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] in self.paths:
            response = await self.endpoint(Request(scope, receive))
            await response(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def _matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    candidates = {tag.strip().removeprefix("W/") for tag in header.split(",")}
    return "*" in candidates or etag in candidates

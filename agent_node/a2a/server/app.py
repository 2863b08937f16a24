"""The node's HTTP application (Starlette): the Agent Card, the A2A endpoint
and the operator API.

``/.well-known/agent-card.json`` is where A2A 0.3 and 1.0 clients look;
``/.well-known/agent.json`` is where older clients (0.2) look. Both serve
the same document, with ``ETag`` and ``Cache-Control``; a request whose
``If-None-Match`` matches gets ``304 Not Modified``. A signed card's key is
served as a JWK Set at ``/.well-known/jwks.json`` (its signature's ``jku``),
public when the card is.

A ``POST`` to the A2A endpoint goes straight to it, ahead of Starlette's
router and middleware (about a tenth of the CPU of a request that completes
at once); the endpoint answers every failure itself, so they had nothing to
add. Everything else (cards, the operator API, 404, 405) goes through Starlette.

The health probes (``/healthz``, ``/readyz``: :mod:`agent_node.telemetry.health`)
are answered first, without authentication. While the node is starting, any
other request gets ``503`` with ``Retry-After``, in its binding's shape
(JSON-RPC -32033 at the A2A endpoint, the REST error body on its paths).

Every other request first passes the :class:`Guard`, before its body is read:

* With mutual TLS, a request without a client certificate gets nothing but
  a refusal that says what is missing (the card too, unless ``card_public``):
  the A2A endpoint answers HTTP 401 with JSON-RPC -32030, anything else a
  401 JSON error, and the refusal is logged with the client's address. The
  TLS handshake asks for a certificate without requiring one, so that such a
  client (curl without ``--cert``) reads why instead of an empty reply; a
  certificate that does not chain to the trust bundle still fails the
  handshake.
* At most ``limits.max_concurrent_per_caller`` requests of one identity are
  in flight at once; one more gets HTTP 429 with JSON-RPC -32032 and
  ``Retry-After``. An event stream (the operator API's too), and a blocking
  SendMessage, leave that count for the caller's open streams, under
  ``limits.max_streams_per_caller``
  (:mod:`agent_node.a2a.server.in_flight`, which logs the refusals once a
  minute per caller). The card and its keys are never refused so.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from agent_node.a2a.protocol.errors import (
    A2AError,
    TooManyRequests,
    Unauthenticated,
    Unavailable,
)
from agent_node.a2a.server.card import JWKS_PATH, PROTOCOL_PATH, CardDocument
from agent_node.a2a.server.in_flight import IN_FLIGHT, InFlight, Ticket
from agent_node.a2a.server.jsonrpc import refusal
from agent_node.a2a.server.media import answer_media_type
from agent_node.a2a.server.operations import Endpoint
from agent_node.a2a.server.rest import REST_PREFIX, error_response
from agent_node.scope import CALLER, caller_of, request_line
from agent_node.security.authn import Authenticator, Refused
from agent_node.telemetry.health import PROBE_PATHS, Health

__all__ = ["CARD_PATHS", "Endpoint", "Guard", "create_app"]

log = logging.getLogger(__name__)

CARD_PATHS = ("/.well-known/agent-card.json", "/.well-known/agent.json")
_JWKS_HEADERS = {"Cache-Control": "public, max-age=300"}
NO_CERTIFICATE = (
    "a client certificate is required (mutual TLS): present one that chains to this node's"
    " trust bundle (curl --cert/--key; agent-node --cert-dir DIR --identity NAME, or tls:"
    " in its configuration)"
)
NO_CREDENTIALS = (
    "credentials are required: a client certificate (mutual TLS), or what the card's"
    " securitySchemes name (a bearer token, an API key)"
)
#: The ASGI scope key naming the scheme that named the caller (absent: mutual TLS).
SCHEME = "agent_node.scheme"


@dataclass
class Guard:
    """Checks made on every request before its body is read (see the module doc)."""

    #: Refuse requests without a client identity (all of them, but the card
    #: when ``card_public``).
    require_identity: bool = False
    card_public: bool = False
    #: Requests one identity may have in flight; 0: no cap.
    max_concurrent_per_caller: int = 0
    #: Event streams one identity may have open; 0: no cap.
    max_streams_per_caller: int = 0
    #: The schemes callers may use besides a client certificate (``auth:``).
    authn: Authenticator | None = None
    #: Paths whose endpoint judges each request itself, identity or not (the
    #: push receiver, when peers may push on their token alone).
    open_paths: frozenset[str] = frozenset()
    in_flight: InFlight = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.in_flight = InFlight(self.max_concurrent_per_caller, self.max_streams_per_caller)

    async def authenticate(
        self, scope: Scope, header: Callable[[str], str | None]
    ) -> A2AError | None:
        """Name the caller of a request that came without a client
        certificate by the credentials it carries (:mod:`agent_node.security.authn`):
        ``scope``'s caller is set; an error when they do not hold."""
        if self.authn is None or not self.authn.enabled or caller_of(scope) is not None:
            return None
        try:
            found = await self.authn.identify(header)
        except Refused as exc:
            client = scope.get("client")
            where = f"{client[0]}:{client[1]}" if client else "a client"
            log.warning("refused %s: %s (%s)", where, exc, request_line(scope))
            return Unauthenticated(str(exc))
        if found is not None:
            scope[CALLER], scope[SCHEME] = found
        return None

    def challenge(self) -> dict[str, str]:
        """The headers of a 401: ``WWW-Authenticate`` naming the schemes accepted."""
        value = self.authn.challenge() if self.authn is not None else None
        return {"WWW-Authenticate": value} if value else {}

    def refuse(self, scope: Scope) -> A2AError | None:
        caller = caller_of(scope)
        path = scope["path"]
        card = path in CARD_PATHS or path == JWKS_PATH
        public = (self.card_public and card) or path in self.open_paths
        if self.require_identity and caller is None and not public:
            client = scope.get("client")
            where = f"{client[0]}:{client[1]}" if client else "a client"
            schemes = self.authn is not None and self.authn.enabled
            missing = "credentials" if schemes else "client certificate"
            log.warning("refused %s: no %s (%s)", where, missing, request_line(scope))
            return Unauthenticated(NO_CREDENTIALS if schemes else NO_CERTIFICATE)
        # The card says how to call: a caller at its cap must still read it.
        return None if card else self.in_flight.full(caller)

    def enter(self, scope: Scope) -> Ticket:
        """Count the request of ``scope`` in flight until :meth:`leave`; its
        binding may move it to the streams (:func:`~.in_flight.open_stream`)."""
        ticket = self.in_flight.enter(caller_of(scope))
        scope[IN_FLIGHT] = ticket
        return ticket

    def leave(self, ticket: Ticket) -> None:
        self.in_flight.leave(ticket)


def create_app(
    card: CardDocument,
    a2a: Endpoint | None = None,
    *,
    rest: Endpoint | None = None,
    posts: Mapping[str, Endpoint] | None = None,
    routes: Sequence[BaseRoute] = (),
    guard: Guard | None = None,
    jwks: bytes | None = None,
    health: Health | None = None,
) -> ASGIApp:
    """The app: the card on both well-known paths, ``a2a`` (the JSON-RPC
    endpoint) at :data:`~agent_node.a2a.server.card.PROTOCOL_PATH` and ``rest`` (the
    HTTP+JSON binding) under it when given, other endpoints taking ``POST``
    at the paths ``posts`` names (the push receiver), and any other
    ``routes`` (the operator API), all behind ``guard``; ``jwks`` (a JWK
    Set, JSON) at :data:`~agent_node.a2a.server.card.JWKS_PATH` when given;
    ``health`` answers the probes."""

    async def serve_card(request: Request) -> Response:
        headers = {
            "ETag": card.etag,
            "Last-Modified": card.last_modified,
            "Cache-Control": card.cache_control,
        }
        if _matches(request.headers.get("if-none-match"), card.etag):
            return Response(status_code=304, headers=headers)
        return Response(card.body, media_type="application/json", headers=headers)

    table: list[BaseRoute] = [
        Route(path, serve_card, methods=["GET", "HEAD"]) for path in CARD_PATHS
    ]
    if jwks is not None:
        keys = jwks

        async def serve_jwks(request: Request) -> Response:
            return Response(keys, media_type="application/jwk-set+json", headers=_JWKS_HEADERS)

        table.append(Route(JWKS_PATH, serve_jwks, methods=["GET", "HEAD"]))
    direct: dict[str, Endpoint] = {}
    if a2a is not None:
        # Clients that join the card's URL with "/" (the TCK does) post to
        # /a2a/: answer there too, rather than redirecting a POST.
        direct[PROTOCOL_PATH] = direct[PROTOCOL_PATH + "/"] = a2a
    direct.update(posts or {})
    table.extend(Route(path, endpoint, methods=["POST"]) for path, endpoint in direct.items())
    table.extend(routes)
    # Paths under the binding's prefix that other routes take (the push receiver's).
    taken = {route.path for route in table if isinstance(route, Route)}
    front = _Front(Starlette(routes=table), direct, a2a, rest, guard or Guard(), taken)
    front.health = health
    return front


class _Front:
    """The guard, then ``POST`` to the endpoints of ``direct`` (JSON-RPC at
    ``/a2a`` and ``/a2a/``, the push receiver) and the HTTP+JSON binding's
    paths to its endpoint, directly; the rest to ``app``."""

    def __init__(
        self,
        app: ASGIApp,
        direct: dict[str, Endpoint],
        a2a: Endpoint | None,
        rest: Endpoint | None,
        guard: Guard,
        taken: set[str],
    ) -> None:
        self.app = app
        self.direct = direct
        self.a2a = a2a
        self.rest = rest
        self.guard = guard
        self.taken = taken
        self.health: Health | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        health = self.health
        if health is not None:
            if path in PROBE_PATHS and scope["method"] in ("GET", "HEAD"):
                await health(scope, receive, send)
                return
        endpoint = self.direct.get(path) if scope["method"] == "POST" else None
        to_a2a = endpoint is not None and endpoint is self.a2a
        to_rest = self.rest is not None and path.startswith(REST_PREFIX) and path not in self.taken
        if health is not None and health.phase == "starting":
            starting = Unavailable("the node is starting; ask again in a moment")
            await _refusal(starting, scope, to_a2a, to_rest)(scope, receive, send)
            return
        if to_rest:
            endpoint = self.rest
        refused = await self.guard.authenticate(scope, _header_of(scope))
        refused = refused or self.guard.refuse(scope)
        if refused is not None:
            response = _refusal(refused, scope, to_a2a, to_rest)
            if isinstance(refused, Unauthenticated):
                response.headers.update(self.guard.challenge())
            await response(scope, receive, send)
            return
        ticket = self.guard.enter(scope)
        try:
            if endpoint is not None:
                response = await endpoint(Request(scope, receive))
                await response(scope, receive, send)
            else:
                await self.app(scope, receive, send)
        finally:
            self.guard.leave(ticket)


def _refusal(error: A2AError, scope: Scope, to_a2a: bool, to_rest: bool) -> Response:
    headers = {"Retry-After": "1"} if isinstance(error, (TooManyRequests, Unavailable)) else {}
    if to_a2a:
        return refusal(error, Request(scope), headers)
    if to_rest:
        response = error_response(error, answer_media_type(Request(scope).headers))
        response.headers.update(headers)
        return response
    row = error.error.row
    body = {"error": {"code": row.http_status, "status": row.reason, "message": error.message}}
    return JSONResponse(body, row.http_status, headers=headers)


def _header_of(scope: Scope) -> Callable[[str], str | None]:
    """``header(name)`` of the request of ``scope`` (a lowercase name)."""

    def header(name: str) -> str | None:
        wanted = name.encode("latin-1")
        for key, value in scope.get("headers", ()):
            if key.lower() == wanted:
                return bytes(value).decode("latin-1")
        return None

    return header


def _matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    candidates = {tag.strip().removeprefix("W/") for tag in header.split(",")}
    return "*" in candidates or etag in candidates

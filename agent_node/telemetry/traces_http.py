"""Spans of HTTP requests: a SERVER span per request the node answers, a
CLIENT span per traced request its peer client sends.

* :func:`traced_app` wraps the node's ASGI app (and counts its requests'
  metrics when the node has them: one wrapper, not two). The span's parent
  is the request's ``traceparent``, whose sampled flag it follows (a root
  span without one: the sampler, ``OTEL_TRACES_SAMPLER``, decides those).
  It changes nothing the app sees: an execution records the caller's
  ``traceparent``, not this span, so its span never waits for a request
  span that a crash could lose before the batch exporter sent it. Its name
  is ``A2A <operation>`` — the operation the binding resolved
  (:data:`~agent_node.scope.OPERATION` in the scope), else the one a
  REST path names — or the HTTP method and a fixed route. Probes and
  ``/metrics`` get no span.
* :func:`instrument_client` adds httpx event hooks: a request carrying a
  ``traceparent`` (a delegation's sends, cancels and answers) gets a span,
  the child of that header's span; it ends when the answer's head arrives.
  Requests without one (card fetches, polls) get none, and a request that
  fails before an answer leaves no span (the delegation's own span, built
  from the log, still covers it).

Like the spans built from commits, a request span is built whole when the
request ends and bundled with them for the batch processor (:class:`RequestSpans`): the
SDK's live spans (a lock, a context, limits per span) would cost a request
more than the span's export does, and nothing here adds to a span while it
runs.

Nothing a peer sends decides more than a span's parent: names come from a
closed set, a bad ``traceparent`` is ignored. A method OpenTelemetry's HTTP
conventions do not know (RFC 9110's and PATCH are known:
:data:`~.http_methods.HTTP_METHODS`, the metrics' set) is ``_OTHER`` in
``http.request.method`` and ``HTTP`` in the span's name; the method sent is
in ``http.request.method_original``, cut at :data:`METHOD_KEPT` characters
(HTTP/2 takes any token as a method, kilobytes of it).
"""

from __future__ import annotations

import random
import re
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
from opentelemetry.context import Context
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, Decision, ParentBased, Sampler
from opentelemetry.trace import SpanKind
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agent_node.a2a.protocol.compat_methods import METHODS_FROM_V03
from agent_node.scope import OPERATION
from agent_node.telemetry import traces_wire as wire
from agent_node.telemetry.http_methods import HTTP_METHODS
from agent_node.telemetry.metrics_http import counted, route_of
from agent_node.telemetry.traces_ids import Origin, parse_traceparent

if TYPE_CHECKING:
    from agent_node.telemetry.metrics import NodeMetrics

__all__ = ["RequestSpans", "instrument_client", "roots_sampled", "span_name", "traced_app"]

#: Paths answered without a span (probes and scrapes: noise, and frequent).
UNTRACED = frozenset({"/healthz", "/readyz", "/metrics"})
#: The A2A 1.0 method names (0.3's are mapped onto them).
A2A_METHODS = frozenset(
    {
        *METHODS_FROM_V03.values(),
        "ListTasks",
    }
)
_JSONRPC = "/a2a"
_REST = "/a2a/"
_ROUTES = frozenset(
    {
        "/.well-known/agent-card.json",
        "/.well-known/agent.json",
        "/.well-known/jwks.json",
        "/a2a/push",
    }
)
#: How much of a JSON-RPC body a client span's name is looked for in.
PEEK = 4096
_METHOD = re.compile(rb'"method"\s*:\s*"([A-Za-z/]{1,64})"')
#: Characters of an unknown method ``http.request.method_original`` keeps.
METHOD_KEPT = 64


_ERROR = wire.status(2, None)
#: Sets of request span attributes kept written, at most.
_WRITTEN = 512
#: The longest method and path a server span's parts are kept for (the
#: cache holds at most :data:`_WRITTEN` of them: ~128 KiB).
_KEPT_KEY = 256
#: A request span's name and attributes (for a sampler), and its head and
#: tail written (:func:`.traces_wire.span` takes them).
_Parts = tuple[str, Mapping[str, Any], bytes, bytes]


def roots_sampled(sampler: Sampler) -> Sampler:
    """``sampler``, or :data:`_ROOTS_SAMPLED` when it samples every span
    without a parent (the default, ``parentbased_always_on``): then a
    request without a ``traceparent`` does not ask it."""
    description = sampler.get_description()
    if description in ("AlwaysOnSampler", _DEFAULT_DESCRIPTION):
        return _ROOTS_SAMPLED
    return sampler


_ROOTS_SAMPLED: Sampler = ALWAYS_ON
_DEFAULT: Sampler = ParentBased(ALWAYS_ON)  # as the SDK makes it without OTEL_TRACES_SAMPLER
_DEFAULT_DESCRIPTION = _DEFAULT.get_description()


@dataclass(frozen=True, slots=True)
class RequestSpans:
    """Builds request spans whole, at their end, and hands them on written:
    to ``send``, the bundle the spans built from commits go in (one item of
    the batch processor per bundle, not one per request; they share the
    node's resource and scope)."""

    #: Decides for spans without a parent (``OTEL_TRACES_SAMPLER``).
    sampler: Sampler
    #: Where a span goes, written (a ``ScopeSpans.spans`` field).
    send: Callable[[bytes], None]
    #: Each span name's and kind's fields, written once (names: a closed set).
    #: The kind by identity: an enum member's hash is a call of Python code.
    heads: dict[tuple[str, int], bytes] = field(default_factory=dict)
    #: Attributes written once per set of values (the same few most of the
    #: time: one endpoint, one method, one status); cleared when it fills.
    written: dict[tuple[Any, ...], bytes] = field(default_factory=dict)

    #: Each server span's name, attributes and written parts, by what
    #: decides them (method, path, operation, scheme, status); cleared when
    #: it fills (REST paths hold ids: they rarely repeat).
    servers: dict[tuple[Any, ...], _Parts] = field(default_factory=dict)

    def server(
        self,
        method: str,
        path: str,
        operation: str | None,
        scheme: str,
        code: int,
        parent: Origin | None,
        start_ns: int,
    ) -> None:
        """The SERVER span of a request answered with ``code`` (0: none)."""
        if len(path) + len(method) > _KEPT_KEY:  # a caller's invention: not kept
            made = self._server_parts(method, path, operation, scheme, code)
            self._write(made, SpanKind.SERVER, parent, start_ns)
            return
        key = (method, path, operation, scheme, code)
        parts = self.servers.get(key)
        if parts is None:
            if len(self.servers) >= _WRITTEN:
                self.servers.clear()
            parts = self.servers[key] = self._server_parts(method, path, operation, scheme, code)
        self._write(parts, SpanKind.SERVER, parent, start_ns)

    def _server_parts(
        self, method: str, path: str, operation: str | None, scheme: str, code: int
    ) -> _Parts:
        if operation is None:
            name, operation = span_name(method, path)
        else:
            name = f"A2A {operation}"
        attributes: dict[str, Any] = {
            **_method_attributes(method),
            "url.path": path[:512],
            "url.scheme": scheme,
        }
        if operation is not None:
            attributes["rpc.method"] = operation
        if code:
            attributes["http.response.status_code"] = code
        # 0: no answer began (the app raised)
        return self._parts(name, SpanKind.SERVER, attributes, code >= 500 or not code)

    def emit(
        self,
        name: str,
        kind: SpanKind,
        parent: Origin | None,
        start_ns: int,
        attributes: Mapping[str, Any],
        failed: bool,
    ) -> None:
        """A span of ``name`` and ``kind`` begun at ``start_ns``, ending now."""
        if parent is not None and not parent.sampled:
            return
        key = (*attributes.items(), failed)
        tail = self.written.get(key)
        if tail is None:
            if len(self.written) >= _WRITTEN:
                self.written.clear()
            tail = self.written[key] = _tail(attributes, failed)
        self._write((name, attributes, self._head(name, kind), tail), kind, parent, start_ns)

    def _parts(
        self, name: str, kind: SpanKind, attributes: Mapping[str, Any], failed: bool
    ) -> _Parts:
        return (name, attributes, self._head(name, kind), _tail(attributes, failed))

    def _head(self, name: str, kind: SpanKind) -> bytes:
        head = self.heads.get((name, id(kind)))
        if head is None:
            head = self.heads[(name, id(kind))] = wire.head(name, kind.value + 1)  # OTLP: from 1
        return head

    def _write(self, parts: _Parts, kind: SpanKind, parent: Origin | None, start_ns: int) -> None:
        if parent is not None:
            if not parent.sampled:
                return
            trace = parent.trace
        else:
            trace_id = random.getrandbits(128) or 1
            if self.sampler is not _ROOTS_SAMPLED:
                name, attributes = parts[0], parts[1]
                decision = self.sampler.should_sample(Context(), trace_id, name, kind, attributes)
                if decision.decision is not Decision.RECORD_AND_SAMPLE:
                    return
            trace = trace_id.to_bytes(16, "big")
        remote = parent.parent if parent is not None else None  # the caller's span
        self.send(
            wire.span(
                trace,
                random.getrandbits(64) or 1,
                remote or b"",
                remote is not None,
                parts[2],
                start_ns,
                max(start_ns, time.time_ns()),
                parts[3],
            )
        )


def _tail(attributes: Mapping[str, Any], failed: bool) -> bytes:
    """A request span's attributes, and its error status when it failed, written."""
    return wire.attributes(attributes) + (_ERROR if failed else b"")


def _jsonrpc_method(head: bytes) -> str | None:
    found = _METHOD.search(head)
    if found is None:
        return None
    name = found[1].decode()
    name = METHODS_FROM_V03.get(name, name)
    return name if name in A2A_METHODS else None


def _rest_operation(method: str, path: str) -> str | None:
    """The A2A operation a REST path names (its ids and tenant left out)."""
    tail = path.removeprefix(_REST).rstrip("/")
    for suffix, name in (
        ("message:send", "SendMessage"),
        ("message:stream", "SendStreamingMessage"),
        ("extendedAgentCard", "GetExtendedAgentCard"),
        (":cancel", "CancelTask"),
        (":subscribe", "SubscribeToTask"),
    ):
        if tail.endswith(suffix):
            return name
    _, configs, after = tail.partition("/pushNotificationConfigs")
    if configs:
        if method in ("POST", "DELETE"):
            return f"{'Create' if method == 'POST' else 'Delete'}TaskPushNotificationConfig"
        one = bool(after.strip("/"))
        return "GetTaskPushNotificationConfig" if one else "ListTaskPushNotificationConfigs"
    if tail == "tasks" or tail.endswith("/tasks"):
        return "ListTasks"
    return "GetTask" if "tasks/" in tail else None


def _method_attributes(method: str) -> dict[str, str]:
    """``http.request.method`` as OpenTelemetry's HTTP conventions have it: a
    known method, else ``_OTHER`` and the method sent (cut short) in
    ``http.request.method_original``."""
    if method in HTTP_METHODS:
        return {"http.request.method": method}
    sent = method if len(method) <= METHOD_KEPT else method[:METHOD_KEPT] + "…"
    return {"http.request.method": "_OTHER", "http.request.method_original": sent}


def span_name(method: str, path: str, head: bytes = b"") -> tuple[str, str | None]:
    """A request's span name, and the A2A operation when it is one: the
    JSON-RPC method in ``head`` (a body's first bytes), else the REST path's
    (a method the conventions do not know names none, and is ``HTTP``)."""
    known = method in HTTP_METHODS
    operation = _jsonrpc_method(head) if head and method == "POST" else None
    if operation is None and known and path.startswith(_REST) and path not in _ROUTES:
        operation = _rest_operation(method, path)
    if operation is not None:
        return f"A2A {operation}", operation
    shown = method if known else "HTTP"
    if path in _ROUTES or path == _JSONRPC:
        return f"{shown} {path}", None
    if path.startswith("/ops/"):
        return f"{shown} /ops", None
    return shown, None


def traced_app(app: ASGIApp, spans: RequestSpans, metrics: NodeMetrics | None = None) -> ASGIApp:
    """``app``, each HTTP request (but :data:`UNTRACED`) in a SERVER span;
    with ``metrics``, every request counted too, as
    :func:`~.metrics_http.counted` counts them."""
    plain = counted(app, metrics) if metrics is not None else app

    async def wrapper(scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path in UNTRACED:
            await plain(scope, receive, send)
            return
        began, clock = time.time_ns(), time.perf_counter()
        code = 0

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
            method = scope.get("method", "GET")
            if metrics is not None:
                took = time.perf_counter() - clock
                metrics.request(method, route_of(path), code or 500, took)
            parent = None
            for key, value in scope.get("headers", ()):
                if key == b"traceparent":
                    parent = parse_traceparent(value.decode("latin-1"))
                    break
            operation = scope.get(OPERATION)
            scheme = scope.get("scheme", "http")
            spans.server(method, path, operation, scheme, code, parent, began)

    return wrapper


def instrument_client(client: httpx.AsyncClient, spans: RequestSpans) -> None:
    """CLIENT spans for ``client``'s requests that carry a ``traceparent``."""
    started: weakref.WeakKeyDictionary[httpx.Request, tuple[int, Origin]]
    started = weakref.WeakKeyDictionary()

    async def on_request(request: httpx.Request) -> None:
        parent = parse_traceparent(request.headers.get("traceparent"))
        if parent is not None:
            started[request] = (time.time_ns(), parent)

    async def on_response(response: httpx.Response) -> None:
        request = response.request
        found = started.pop(request, None)
        if found is None:
            return
        url = request.url
        try:
            head = request.content[:PEEK]
        except httpx.RequestNotRead:  # a streamed body: named by its path
            head = b""
        name, operation = span_name(request.method, url.path, head)
        attributes: dict[str, Any] = {
            **_method_attributes(request.method),
            "url.full": f"{url.scheme}://{url.netloc.decode()}{url.path}",
            "server.address": url.host,
            "http.response.status_code": response.status_code,
        }
        if url.port is not None:
            attributes["server.port"] = url.port
        if operation is not None:
            attributes["rpc.method"] = operation
        began, parent = found
        failed = response.status_code >= 400
        spans.emit(name, SpanKind.CLIENT, parent, began, attributes, failed)

    hooks = client.event_hooks
    client.event_hooks = {
        "request": [*hooks.get("request", []), on_request],
        "response": [*hooks.get("response", []), on_response],
    }

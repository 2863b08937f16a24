"""``http``: send one HTTP request and put its answer into the state.

The node renders ``url``, ``headers``, ``query`` and ``body`` (templates),
sends the request and maps the answer: ``output`` gets the whole answer —
parsed JSON when its content type says JSON (``application/json``,
``…+json``), else its text, ``None`` when the body is empty; ``fields`` get
single values of a JSON answer by dotted path (``items.0.id``);
``status_output`` gets the status code. ``expect`` lists the statuses that
count as success (default: any 2xx).

Which failures are retried, and why:

* 5xx, 408, 425, a timeout or a network error: the attempt raises and
  the node's retry policy retries it (default: 3 attempts, 0.5 s then 1 s
  apart). These are what a later attempt can fix.
* 429, and a 503 with ``Retry-After``: the server asked us to come back
  later. The visit parks on a durable timer for as long as its
  ``Retry-After`` says (seconds or an HTTP date; a 429 without one: the
  policy's delay) without using an attempt, up to ``retry.rate_limited``
  times (:class:`~agent_node.errors.Throttled`, as the model node's rate
  limits; a kill -9 meanwhile loses nothing). A ``Retry-After`` longer
  than ``retry.max_delay`` (60 s by default; an hour at most) fails the
  execution at once, naming the wait: the node does not come back sooner
  than asked, nor wait longer than its author allowed.
* Any other status — 4xx above all: the execution fails at once, naming the
  status, the URL (without its query, which may hold secrets) and the start
  of the body. A client error says the request itself is wrong: sending it
  again changes nothing and may repeat an effect. To handle a status in the
  workflow instead, list it in ``expect`` and branch on ``status_output``.
* An answer larger than ``max_bytes`` (10 MiB by default: the body is read
  as a stream and dropped at the cap), JSON that does not parse, a path of
  ``fields`` the answer lacks, a value that does not fit the state, a URL or
  header that renders invalid: the execution fails at once too.

Redirects (301, 302, 303, 307, 308) are followed on the same host only —
the same host name and port, or http → https on the default ports — at most
:data:`MAX_REDIRECTS` times, by the Fetch standard's method rules (303, and
301 or 302 after a POST, become a body-less GET). A redirect to another host
fails the execution naming both hosts: the node's headers (credentials, the
idempotency key) must not reach a host the author did not name. A status
listed in ``expect`` is taken as the answer, never followed.

Every request carries ``Idempotency-Key: <execution>/<node>/<visit>``, the
same for every attempt of a visit, so a server that deduplicates on it (the
IETF idempotency-key draft, Stripe-style APIs) recognises a retry, or a
repeat after a crash, as the same request. A server that does not may see a
request twice; ``retry: 1`` stops the retries (not a repeat after a crash:
the engine runs a node's effect at least once). The execution's W3C
``traceparent``, when it has one, is carried as well.

``timeout`` (default 30 s) bounds the whole attempt: connecting, sending,
reading the body, and the redirects followed. Templates render into
strings: a JSON ``body`` mapping sends its string leaves as strings; for
numbers or whole objects from the state, give ``body`` as one string
(``'{"n": {{ state.n | tojson }}}'``) with a ``Content-Type:
application/json`` header (a string body is sent as ``text/plain`` unless
a ``Content-Type`` is given). ``url`` is sent as rendered: escape values put
into its path with ``urlencode``; ``query`` values are encoded by the node.

The node does not apply the SSRF guard of push notifications: the author
names the URL. Do not let a caller's input choose its host.

The network is behind :class:`HttpTransport`, which this node owns
(:mod:`.http_transport`) and :mod:`agent_node.integrations.http_client`
implements (httpx); the runtime wires it in, made when the first request is
sent, so this module never imports an HTTP client. The spec is
:mod:`.http_spec`, the request sent :mod:`.http_request`, the mapping of
the answer :mod:`.http_answer`; this module runs the exchange.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urljoin

from agent_node.engine.executor import Advance, NodeContext, Outcome
from agent_node.engine.runner import MAX_THROTTLE
from agent_node.errors import NodeFailed, NotEquipped, PermanentFailure, Throttled
from agent_node.nodes.base import Parkless
from agent_node.nodes.http_answer import answer_problem, answer_state
from agent_node.nodes.http_request import build_request, check_redirect, redirected
from agent_node.nodes.http_spec import DEFAULT_MAX_BYTES, HttpNode
from agent_node.nodes.http_transport import HttpRequest, HttpResponse, HttpTransport, bare_url
from agent_node.workflow.durations import parse_retry_after
from agent_node.workflow.retry import NO_RETRY

__all__ = [
    "DEFAULT_MAX_BYTES",
    "MAX_REDIRECTS",
    "HttpExecutor",
    "HttpNode",
    "HttpRequest",
    "HttpResponse",
    "HttpTransport",
    "bare_url",
]

#: How many same-host redirects one attempt follows.
MAX_REDIRECTS = 5
#: Statuses besides 5xx that a later attempt may fix.
_RETRYABLE = frozenset({408, 425, 429})
#: Statuses whose ``Retry-After`` says when to come back (429 parks without one too).
_THROTTLING = frozenset({429, 503})
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


class HttpExecutor(Parkless):
    """Runs http nodes through ``transport``, or one ``make_transport`` makes on
    first use (the runtime gives httpx's, so this layer never imports it)."""

    def __init__(
        self,
        transport: HttpTransport | None = None,
        *,
        make_transport: Callable[[], HttpTransport] | None = None,
    ) -> None:
        self.transport = transport
        self._make_transport = make_transport

    async def execute(self, ctx: NodeContext) -> Outcome:
        spec = _spec(ctx.spec)
        try:
            return await self._run(ctx, spec)
        except PermanentFailure as exc:  # the node fails for good, whatever its retries
            raise PermanentFailure(f"http node {spec.id!r}: {exc}") from None

    async def _run(self, ctx: NodeContext, spec: HttpNode) -> Outcome:
        request = build_request(ctx, spec)
        started = time.perf_counter()
        response, url = await self._exchange(spec, request)
        duration = time.perf_counter() - started
        if not spec.accepts(response.status):
            raise _refused(spec, response, answer_problem(request.method, url, response))
        if response.oversized:
            raise PermanentFailure(
                f"{request.method} {bare_url(url)}: the answer is larger than"
                f" max_bytes ({spec.max_bytes:,} bytes)"
            )
        record: dict[str, Any] = {
            "method": request.method,
            "url": bare_url(request.url),
            "status": response.status,
            "duration": round(duration, 6),
        }
        if url != request.url:
            record["redirected_to"] = bare_url(url)
        return Advance(next=spec.next, state=answer_state(ctx, spec, response), output=record)

    async def _exchange(self, spec: HttpNode, request: HttpRequest) -> tuple[HttpResponse, str]:
        """Send ``request``, following same-host redirects; the answer and its URL."""
        transport = self._transport()
        for _ in range(MAX_REDIRECTS + 1):
            response = await transport.send(request)
            location = response.headers.get("location")
            if response.status not in _REDIRECTS or not location or spec.accepts(response.status):
                return response, request.url
            target = urljoin(request.url, location)
            check_redirect(request.url, target)
            request = redirected(request, response.status, target)
        where = f"{request.method} {bare_url(request.url)}"
        raise PermanentFailure(f"{where}: more than {MAX_REDIRECTS} redirects")

    def _transport(self) -> HttpTransport:
        if self.transport is None:
            if self._make_transport is None:
                raise NotEquipped("this runtime has no HTTP transport to send requests with")
            self.transport = self._make_transport()
        return self.transport


def _refused(spec: HttpNode, response: HttpResponse, problem: str) -> NodeFailed:
    """What an answer that was not accepted fails the attempt with: parked
    (:class:`Throttled`), retried (:class:`NodeFailed`) or failed for good."""
    status = response.status
    wait = parse_retry_after(response.headers.get("retry-after"))
    if status in _THROTTLING and (wait is not None or status == 429):
        longest, which = (spec.retry or NO_RETRY).max_delay, "its retry.max_delay"
        if longest > MAX_THROTTLE:
            longest, which = MAX_THROTTLE, "the most any node waits"
        if wait is not None and wait > longest:
            return PermanentFailure(
                f"{problem}; it asks to come back in {wait:,.1f} s (Retry-After),"
                f" later than the node waits ({longest:g} s, {which})"
            )
        return Throttled(f"http node {spec.id!r}: {problem}", wait)
    if status >= 500 or status in _RETRYABLE:
        return NodeFailed(f"http node {spec.id!r}: {problem}")
    return PermanentFailure(problem)


def _spec(spec: object) -> HttpNode:
    if not isinstance(spec, HttpNode):
        raise NodeFailed(f"node {getattr(spec, 'id', '?')!r} is not an http node")
    return spec

"""``http``: send one HTTP request and put its answer into the state.

The node renders ``url``, ``headers``, ``query`` and ``body`` (templates),
sends the request and maps the answer: ``output`` gets the whole answer —
parsed JSON when its content type says JSON (``application/json``,
``…+json``), else its text, ``None`` when the body is empty; ``fields`` get
single values of a JSON answer by dotted path (``items.0.id``);
``status_output`` gets the status code. ``expect`` lists the statuses that
count as success (default: any 2xx).

Which failures are retried, and why:

* 5xx, 408, 425, 429, a timeout or a network error: the attempt raises and
  the node's retry policy retries it (default: 3 attempts, 0.5 s then 1 s
  apart). These are what a later attempt can fix. ``Retry-After`` is not
  read: the policy's backoff decides when.
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

The network is behind :class:`HttpTransport`, which this module owns and
:mod:`agent_node.integrations.http_client` implements (httpx); the runtime
wires it in, made when the first request is sent, so this module never
imports an HTTP client.
"""

from __future__ import annotations

import codecs
import json
import math
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from http import HTTPStatus
from typing import Any, Literal, Protocol
from urllib.parse import SplitResult, urlencode, urljoin, urlsplit, urlunsplit

from pydantic import BaseModel, Field, field_validator, model_validator

from agent_node.engine.executor import Advance, NodeContext, Outcome
from agent_node.errors import NodeFailed, PermanentFailure, StateValidationError
from agent_node.nodes.base import Parkless, coerce_state
from agent_node.tracing import child_traceparent
from agent_node.workflow.ir import NodeSpec, RetryPolicy, node_type

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

#: The default cap on the size of an answer's body (``max_bytes``).
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
#: How many same-host redirects one attempt follows.
MAX_REDIRECTS = 5
#: Statuses besides 5xx that a later attempt may fix.
_RETRYABLE = frozenset({408, 425, 429})
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
#: Headers the node sets itself, or that would break the framing of the request.
_RESERVED = frozenset({"idempotency-key", "host", "content-length", "transfer-encoding"})
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*\Z")
#: What a rendered header value may hold: printable ASCII and tabs.
_HEADER_VALUE = re.compile(r"[\t\x20-\x7e]*\Z")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_EXCERPT = 200

Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]


@node_type
class HttpNode(NodeSpec):
    """Sends one HTTP request; its answer goes into the state (see the module doc).

    ``url``, the values of ``headers`` and ``query``, and ``body`` (a string,
    or the string leaves of a JSON-shaped mapping or list, sent as JSON) are
    templates. Their fields are named ``url``, ``headers.<name>``,
    ``query.<name>``, ``body`` or ``body.<key>…`` (``body.items[0].name``;
    a key that is not a plain name: ``body["a.b"]``).
    """

    type: Literal["http"] = "http"
    method: Method = "GET"
    url: str = Field(min_length=1)
    headers: dict[str, str] = Field(default_factory=dict)
    query: dict[str, str] = Field(default_factory=dict)
    body: str | dict[str, Any] | list[Any] | None = None
    output: str | None = None
    fields: dict[str, str] = Field(default_factory=dict)
    status_output: str | None = None
    #: The statuses that count as success; ``None``: any 2xx.
    expect: list[int] | None = Field(default=None, min_length=1)
    max_bytes: int = Field(default=DEFAULT_MAX_BYTES, gt=0)
    #: A request that hangs must not hold its worker for ever.
    timeout: float | None = Field(default=30.0, gt=0)
    #: 5xx, 408, 429 and network errors are retried by default (see the module doc).
    retry: RetryPolicy | None = RetryPolicy(max_attempts=3, initial_delay=0.5)
    next: str | None = None

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("headers")
    @classmethod
    def _header_names(cls, headers: dict[str, str]) -> dict[str, str]:
        seen: set[str] = set()
        for name in headers:
            if not _TOKEN.match(name):
                raise ValueError(f"{name!r} is not a valid header name")
            if name.lower() in _RESERVED:
                raise ValueError(f"the node sets {name!r} itself; it cannot be given")
            if name.lower() in seen:
                raise ValueError(f"{name!r} is given twice (header names ignore case)")
            seen.add(name.lower())
        return headers

    @field_validator("expect")
    @classmethod
    def _statuses(cls, expect: list[int] | None) -> list[int] | None:
        for status in expect or []:
            if not 100 <= status <= 599:
                raise ValueError(f"{status} is not an HTTP status code")
        return expect

    @model_validator(mode="after")
    def _shapes(self) -> HttpNode:
        if self.body is not None and not isinstance(self.body, str):
            for path, leaf in _leaves("body", self.body):
                if not _json_leaf(leaf):
                    raise ValueError(f"{path}: a {type(leaf).__name__} is not JSON (quote it)")
        for key, path in self.fields.items():
            if not path or "" in path.split("."):
                raise ValueError(f"fields.{key}: {path!r} is not a dotted path (items.0.id)")
        return self

    def templates(self) -> list[tuple[str, str]]:
        found = [("url", self.url)]
        found += [(f"headers.{name}", value) for name, value in self.headers.items()]
        found += [(f"query.{name}", value) for name, value in self.query.items()]
        if isinstance(self.body, str):
            return [*found, ("body", self.body)]
        leaves = _leaves("body", self.body) if self.body is not None else iter(())
        return found + [(path, leaf) for path, leaf in leaves if isinstance(leaf, str)]

    def writes(self) -> list[tuple[str, str]]:
        written = [("output", self.output)] if self.output else []
        written += [("status_output", self.status_output)] if self.status_output else []
        return written + [(f"fields.{key}", key) for key in self.fields]

    def accepts(self, status: int) -> bool:
        """Whether ``status`` is a successful answer."""
        return status in self.expect if self.expect is not None else 200 <= status < 300


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One request, as :class:`HttpTransport` sends it."""

    method: str
    #: The full URL, query included.
    url: str
    headers: tuple[tuple[str, str], ...]
    content: bytes | None
    #: Seconds for each phase (connect, write, read); ``None``: no limit.
    timeout: float | None
    #: Read at most this many bytes of the answer's body.
    max_bytes: int


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """What came back. ``headers`` has lower-case names (repeated ones joined
    by ``", "``); ``oversized``: the body was longer than ``max_bytes``, and
    ``content`` holds only what was read before the cap."""

    status: int
    headers: Mapping[str, str]
    content: bytes
    oversized: bool = False


class HttpTransport(Protocol):
    """The network side of the http node (``agent_node.integrations.http_client``)."""

    async def send(self, request: HttpRequest) -> HttpResponse:
        """Send ``request`` and read its answer; never follow a redirect.
        Raise on a network error or a timeout (the node's retry policy
        retries it): :class:`~agent_node.errors.NodeFailed`, with the method
        and :func:`bare_url` in the message."""
        ...


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
        request = _request(ctx, spec)
        started = time.perf_counter()
        response, url = await self._exchange(spec, request)
        duration = time.perf_counter() - started
        if not spec.accepts(response.status):
            problem = _problem(request.method, url, response)
            if response.status >= 500 or response.status in _RETRYABLE:
                raise NodeFailed(f"http node {spec.id!r}: {problem}")
            raise PermanentFailure(problem)
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
        return Advance(next=spec.next, state=_state(ctx, spec, response), output=record)

    async def _exchange(self, spec: HttpNode, request: HttpRequest) -> tuple[HttpResponse, str]:
        """Send ``request``, following same-host redirects; the answer and its URL."""
        transport = self._transport()
        for _ in range(MAX_REDIRECTS + 1):
            response = await transport.send(request)
            location = response.headers.get("location")
            if response.status not in _REDIRECTS or not location or spec.accepts(response.status):
                return response, request.url
            target = urljoin(request.url, location)
            _check_redirect(request.url, target)
            request = _redirected(request, response.status, target)
        where = f"{request.method} {bare_url(request.url)}"
        raise PermanentFailure(f"{where}: more than {MAX_REDIRECTS} redirects")

    def _transport(self) -> HttpTransport:
        if self.transport is None:
            if self._make_transport is None:
                raise PermanentFailure("this runtime has no HTTP transport to send requests with")
            self.transport = self._make_transport()
        return self.transport


def bare_url(url: str) -> str:
    """``url`` as records and messages show it: no user info, query or fragment."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


def _request(ctx: NodeContext, spec: HttpNode) -> HttpRequest:
    url = _checked_url(_render(ctx, spec, "url"))
    query = {name: _render(ctx, spec, f"query.{name}") for name in spec.query}
    headers = {"User-Agent": "agent-node"}
    if ctx.traceparent is not None:
        headers["traceparent"] = child_traceparent(ctx.traceparent, ctx.idempotency_key)
    content: bytes | None = None
    if isinstance(spec.body, str):
        content = _render(ctx, spec, "body").encode("utf-8")
        headers["Content-Type"] = "text/plain; charset=utf-8"
    elif spec.body is not None:
        rendered = _rendered(ctx, spec, "body", spec.body)
        content = json.dumps(rendered, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        headers["Content-Type"] = "application/json"
    given = {name.lower() for name in spec.headers}
    headers = {name: value for name, value in headers.items() if name.lower() not in given}
    for name in spec.headers:
        value = _render(ctx, spec, f"headers.{name}")
        if not _HEADER_VALUE.match(value):
            raise PermanentFailure(f"headers.{name}: rendered a value HTTP headers cannot carry")
        headers[name] = value
    headers["Idempotency-Key"] = ctx.idempotency_key
    return HttpRequest(
        method=spec.method,
        url=_with_query(url, query),
        headers=tuple(headers.items()),
        content=content,
        timeout=spec.timeout,
        max_bytes=spec.max_bytes,
    )


def _render(ctx: NodeContext, spec: HttpNode, field: str) -> str:
    try:
        return ctx.workflow.template(spec.id, field).render(ctx.data)
    except NodeFailed as exc:  # the state is the same next attempt: so is the failure
        raise PermanentFailure(f"{field}: {exc}") from None


def _rendered(ctx: NodeContext, spec: HttpNode, path: str, value: Any) -> Any:
    """A JSON body with its string leaves rendered (named as :func:`_leaves` names them)."""
    if isinstance(value, str):
        return _render(ctx, spec, path)
    if isinstance(value, Mapping):
        return {k: _rendered(ctx, spec, _child(path, k), v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rendered(ctx, spec, f"{path}[{i}]", v) for i, v in enumerate(value)]
    return value


def _leaves(path: str, value: Any) -> Iterator[tuple[str, Any]]:
    """``(field, leaf)`` of every leaf of a JSON-shaped value."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from _leaves(_child(path, key), item)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _leaves(f"{path}[{index}]", item)
    else:
        yield path, value


def _child(path: str, key: object) -> str:
    if isinstance(key, str) and _NAME.match(key):
        return f"{path}.{key}"
    return f"{path}[{json.dumps(str(key))}]"


def _json_leaf(leaf: object) -> bool:
    if isinstance(leaf, float):
        return math.isfinite(leaf)
    return leaf is None or isinstance(leaf, str | int | bool)


def _checked_url(url: str) -> str:
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise PermanentFailure(f"url: {bare_url(url)!r} is not a valid URL") from None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise PermanentFailure(f"url: {bare_url(url)!r} is not an http(s) URL with a host")
    if parts.username is not None or parts.password is not None:
        raise PermanentFailure(
            "url: user info is not allowed in the URL (send an Authorization header)"
        )
    return urlunsplit(parts._replace(fragment=""))


def _with_query(url: str, query: Mapping[str, str]) -> str:
    if not query:
        return url
    parts = urlsplit(url)
    extra = urlencode(list(query.items()))
    return urlunsplit(parts._replace(query=f"{parts.query}&{extra}" if parts.query else extra))


def _check_redirect(source: str, target: str) -> None:
    _checked_url(target)
    here, there = urlsplit(source), urlsplit(target)
    same = (here.hostname or "").lower() == (there.hostname or "").lower()
    if there.scheme == here.scheme:
        same = same and _port(here) == _port(there)
    else:  # only an upgrade to https on the default ports
        upgrade = (here.scheme, there.scheme) == ("http", "https")
        same = same and upgrade and here.port is None and there.port is None
    if not same:
        raise PermanentFailure(
            f"{bare_url(source)} redirects from host {_origin(here)} to host {_origin(there)}"
            f" ({bare_url(target)}); only same-host redirects are followed"
        )


def _port(parts: SplitResult) -> int | None:
    return parts.port or _DEFAULT_PORTS.get(parts.scheme)


def _origin(parts: SplitResult) -> str:
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def _redirected(request: HttpRequest, status: int, url: str) -> HttpRequest:
    """The request to send next, by the Fetch standard's method rules."""
    method = request.method
    to_get = (status in (301, 302) and method == "POST") or (
        status == 303 and method not in ("GET", "HEAD")
    )
    if not to_get:
        return replace(request, url=url)
    headers = tuple((k, v) for k, v in request.headers if k.lower() != "content-type")
    return replace(request, method="GET", url=url, headers=headers, content=None)


def _problem(method: str, url: str, response: HttpResponse) -> str:
    try:
        reason = f" {HTTPStatus(response.status).phrase}"
    except ValueError:
        reason = ""
    head = replace(response, content=response.content[: 4 * _EXCERPT])
    text = " ".join(_text(head).split())
    if len(text) > _EXCERPT:
        text = text[: _EXCERPT - 3] + "..."
    said = f": {text}" if text else ""
    return f"{method} {bare_url(url)} answered {response.status}{reason}{said}"


def _state(ctx: NodeContext, spec: HttpNode, response: HttpResponse) -> BaseModel | None:
    """The new state (``None``: unchanged); :class:`_Permanent` when the answer
    does not fit it."""
    patch: dict[str, Any] = {}
    if spec.status_output:
        patch[spec.status_output] = response.status
    if spec.output or spec.fields:
        value = _value(response)
        if spec.output:
            patch[spec.output] = value
        for key, path in spec.fields.items():
            patch[key] = _lookup(value, path)
    if not patch:
        return None
    try:
        return coerce_state(ctx, patch)
    except StateValidationError as exc:
        raise PermanentFailure(str(exc)) from None


def _value(response: HttpResponse) -> Any:
    """The body: parsed JSON when the content type says JSON, else text."""
    if not response.content:
        return None
    mime = response.headers.get("content-type", "").partition(";")[0].strip().lower()
    if mime == "application/json" or mime.endswith("+json"):
        try:
            return json.loads(response.content, parse_constant=_no_constant)
        except (ValueError, RecursionError) as exc:
            raise PermanentFailure(f"the answer is not valid JSON: {exc}") from None
    return _text(response)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _text(response: HttpResponse) -> str:
    charset = "utf-8"
    for param in response.headers.get("content-type", "").split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"') or charset
    try:
        codecs.lookup(charset)
    except LookupError:
        charset = "utf-8"
    return response.content.decode(charset, errors="replace")


def _lookup(value: Any, path: str) -> Any:
    found = value
    for depth, step in enumerate(path.split(".")):
        if isinstance(found, Mapping) and step in found:
            found = found[step]
        elif isinstance(found, list) and step.isdigit() and int(step) < len(found):
            found = found[int(step)]
        else:
            at = ".".join(path.split(".")[:depth]) or "the answer"
            raise PermanentFailure(f"the answer has no {path!r} ({at} is {_kind(found)})")
    return found


def _kind(value: Any) -> str:
    if isinstance(value, Mapping):
        keys = ", ".join(sorted(map(str, value))[:10])
        return f"an object with keys: {keys}" if keys else "an empty object"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    return "null" if value is None else f"a {type(value).__name__}"


def _spec(spec: object) -> HttpNode:
    if not isinstance(spec, HttpNode):
        raise NodeFailed(f"node {getattr(spec, 'id', '?')!r} is not an http node")
    return spec

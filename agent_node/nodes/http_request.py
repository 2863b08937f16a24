"""The requests an ``http`` node sends: rendered from the state, and redirected.

:func:`build_request` renders the spec's templates against the state —
URL, query, headers, body — and adds what the node always sends (its
``Idempotency-Key``, a ``traceparent``). :func:`check_redirect` refuses a
redirect to another host, :func:`redirected` is the request sent next, by
the Fetch standard's method rules (see :mod:`.http` for why). Apart from the
executor because what goes out is one concern, what comes back
(:mod:`.http_answer`) another. A template that does not render, a URL or a
header value that cannot be sent is a :class:`PermanentFailure`: the state
is the same on the next attempt.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import SplitResult, urlencode, urlsplit, urlunsplit

from agent_node.engine.executor import NodeContext
from agent_node.errors import NodeFailed, PermanentFailure
from agent_node.nodes.http_spec import HttpNode, child_field
from agent_node.nodes.http_transport import HttpRequest, bare_url
from agent_node.tracing import child_traceparent

__all__ = ["build_request", "check_redirect", "redirected"]

#: What a rendered header value may hold: printable ASCII and tabs.
_HEADER_VALUE = re.compile(r"[\t\x20-\x7e]*\Z")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def build_request(ctx: NodeContext, spec: HttpNode) -> HttpRequest:
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
    """A JSON body with its string leaves rendered (named as
    :func:`~.http_spec.leaves_of` names them)."""
    if isinstance(value, str):
        return _render(ctx, spec, path)
    if isinstance(value, Mapping):
        return {k: _rendered(ctx, spec, child_field(path, k), v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rendered(ctx, spec, f"{path}[{i}]", v) for i, v in enumerate(value)]
    return value


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


def check_redirect(source: str, target: str) -> None:
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


def redirected(request: HttpRequest, status: int, url: str) -> HttpRequest:
    """The request to send next, by the Fetch standard's method rules."""
    method = request.method
    to_get = (status in (301, 302) and method == "POST") or (
        status == 303 and method not in ("GET", "HEAD")
    )
    if not to_get:
        return replace(request, url=url)
    headers = tuple((k, v) for k, v in request.headers if k.lower() != "content-type")
    return replace(request, method="GET", url=url, headers=headers, content=None)

"""What an ``http`` node makes of an answer: the state it writes, or why it failed.

:func:`answer_state` maps an accepted answer into the state: ``output``
gets the body (parsed JSON when its content type says JSON, else its text),
``fields`` single values of it by dotted path, ``status_output`` the status.
:func:`answer_problem` says what was wrong with an answer that was not
accepted — the status, the URL without its query, the start of the body.
Apart from the executor (:mod:`.http`) because what comes back is one
concern, what goes out (:mod:`.http_request`) another.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Mapping
from dataclasses import replace
from http import HTTPStatus
from typing import Any

from pydantic import BaseModel

from agent_node.engine.executor import NodeContext
from agent_node.errors import PermanentFailure
from agent_node.nodes.base import coerce_state
from agent_node.nodes.http_spec import HttpNode
from agent_node.nodes.http_transport import HttpResponse, bare_url

__all__ = ["answer_problem", "answer_state"]

_EXCERPT = 200


def answer_problem(method: str, url: str, response: HttpResponse) -> str:
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


def answer_state(ctx: NodeContext, spec: HttpNode, response: HttpResponse) -> BaseModel | None:
    """The new state (``None``: unchanged); a :class:`StateValidationError` (a
    permanent failure) when the answer does not fit it."""
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
    return coerce_state(ctx, patch)


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


def _index(step: str) -> int:
    """``step`` as a list index; -1 if it is none (isascii: '²'.isdigit() holds)."""
    return int(step) if step.isascii() and step.isdigit() and len(step) <= 18 else -1


def _lookup(value: Any, path: str) -> Any:
    found = value
    for depth, step in enumerate(path.split(".")):
        if isinstance(found, Mapping) and step in found:
            found = found[step]
        elif isinstance(found, list) and 0 <= _index(step) < len(found):
            found = found[_index(step)]
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

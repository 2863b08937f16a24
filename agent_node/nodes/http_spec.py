"""The ``http`` node's spec: its fields, their validation, its templates.

What an author writes (YAML or ``wf.http(...)``) and what the compiler
checks before anything runs: a header name the node sets itself, a status
that is not one, a JSON body leaf that is not JSON, a ``fields`` path that
is not dotted. Apart from the executor (:mod:`.http`) because the request
builder (:mod:`.http_request`) and the answer's mapping
(:mod:`.http_answer`) read it too; :mod:`.http` re-exports it, the place
every node type's spec is found.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from agent_node.workflow.ir import NodeSpec, node_type
from agent_node.workflow.retry import RetryPolicy

__all__ = ["DEFAULT_MAX_BYTES", "HttpNode", "Method", "child_field", "leaves_of"]

#: The default cap on the size of an answer's body (``max_bytes``).
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
#: Headers the node sets itself, or that would break the framing of the request.
_RESERVED = frozenset({"idempotency-key", "host", "content-length", "transfer-encoding"})
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*\Z")

Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]


@node_type
class HttpNode(NodeSpec):
    """Sends one HTTP request; its answer goes into the state (see :mod:`.http`).

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
    #: 5xx, 408, 429 and network errors are retried by default (see :mod:`.http`).
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
            for path, leaf in leaves_of("body", self.body):
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
        leaves = leaves_of("body", self.body) if self.body is not None else iter(())
        return found + [(path, leaf) for path, leaf in leaves if isinstance(leaf, str)]

    def writes(self) -> list[tuple[str, str]]:
        written = [("output", self.output)] if self.output else []
        written += [("status_output", self.status_output)] if self.status_output else []
        return written + [(f"fields.{key}", key) for key in self.fields]

    def accepts(self, status: int) -> bool:
        """Whether ``status`` is a successful answer."""
        return status in self.expect if self.expect is not None else 200 <= status < 300


def leaves_of(path: str, value: Any) -> Iterator[tuple[str, Any]]:
    """``(field, leaf)`` of every leaf of a JSON-shaped value."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from leaves_of(child_field(path, key), item)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from leaves_of(f"{path}[{index}]", item)
    else:
        yield path, value


def child_field(path: str, key: object) -> str:
    if isinstance(key, str) and _NAME.match(key):
        return f"{path}.{key}"
    return f"{path}[{json.dumps(str(key))}]"


def _json_leaf(leaf: object) -> bool:
    if isinstance(leaf, float):
        return math.isfinite(leaf)
    return leaf is None or isinstance(leaf, str | int | bool)

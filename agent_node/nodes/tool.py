"""``tool``: call one tool of an MCP server and put its answer in the state.

::

    search:
      type: tool
      server: web            # optional when one configured server offers the tool
      tool: search
      arguments:
        query: "{{ state.question }}"     # a single {{ }}: the value, typed
        limit: 5                          # a literal
        note: "about {{ state.topic }}"   # text around it: a rendered string
      output: hits           # the structured content, else the text
      files: images          # optional: the answer's images, audio, blobs (A2A parts)
      retry: 3
      next: summarize

Arguments are built from the state as :mod:`agent_node.workflow.values`
says: a string that is exactly one ``{{ … }}`` holding a safe expression is
that expression's value, with its type (``"{{ state.limit }}"`` passes the
number — tools validate their arguments against a JSON Schema, where ``"5"``
is not ``5``); any other string with ``{{``, ``{%`` or ``{#`` is a template,
rendered to text; everything else is passed as written, lists and mappings
walked (fields ``arguments.a.b``, ``arguments.a[0]``). All of them are
compiled with the workflow, so an unknown state key is a compile-time error.

A result the server marks ``is_error`` fails the attempt with the tool's
text, retried per the node's ``retry`` (none by default: a tool call may not
be safe to repeat; each attempt carries the visit's idempotency key in the
request's ``_meta`` for servers that deduplicate). ``node_completed`` records
``server``, ``tool`` and ``duration`` (seconds).

A call waits for its answer at most the node's ``timeout``, else its
server's (``mcp: [{timeout: …}]``, 60 s by default); past it the attempt
fails, retried per ``retry``. An answer larger than its server's
``max_bytes`` (10 MiB by default) fails the node for good
(:class:`AnswerTooLarge`): the same call would give it again.

Images, audio and binary resources of an answer are kept as A2A file parts
(``{"raw": <base64>, "mediaType": …}``, a resource's ``filename`` too) in
the state key ``files`` names (a list, empty when the answer has none); the
answer's text says ``[image image/png]`` where each was.

The MCP client is behind :class:`ToolPool` (``agent_node.integrations.mcp``
implements it): this module never imports the MCP SDK.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from pydantic import Field

from agent_node.engine.executor import Advance, NodeContext, Outcome
from agent_node.errors import NodeFailed, NotEquipped, PermanentFailure
from agent_node.nodes.base import Parkless
from agent_node.tracing import child_traceparent
from agent_node.workflow.ir import NodeSpec, node_type
from agent_node.workflow.values import build, expressions_in, templates_in

__all__ = [
    "IDEMPOTENCY_META",
    "AnswerTooLarge",
    "ToolExecutor",
    "ToolNode",
    "ToolPool",
    "ToolResult",
    "call_meta",
    "model_call_key",
]

#: The ``_meta`` key of a call's idempotency key (``execution/node/visit``).
IDEMPOTENCY_META = "agent-node/idempotency-key"


@node_type
class ToolNode(NodeSpec):
    """Calls ``tool`` on the MCP server ``server`` (see the module doc)."""

    type: Literal["tool"] = "tool"
    #: A configured MCP server; None: the one server that offers ``tool``.
    server: str | None = Field(default=None, min_length=1)
    tool: str = Field(min_length=1)
    arguments: dict[str, Any] = Field(default_factory=dict)
    #: The state key that receives the structured content, else the text.
    output: str | None = None
    #: The state key that receives the answer's files, as A2A parts.
    files: str | None = None
    next: str | None = None

    def templates(self) -> list[tuple[str, str]]:
        return templates_in(self.arguments, "arguments")

    def expressions(self) -> list[tuple[str, str]]:
        return expressions_in(self.arguments, "arguments")

    def writes(self) -> list[tuple[str, str]]:
        given = (("output", self.output), ("files", self.files))
        return [(name, key) for name, key in given if key]


@dataclass(frozen=True, slots=True)
class ToolResult:
    """What a tool answered: its text blocks joined, its structured content
    (None when it gave none), whether it reported an error, and its images,
    audio and binary resources as A2A file parts (``raw``, ``mediaType``)."""

    content_text: str
    structured: Any | None
    is_error: bool
    files: tuple[dict[str, str], ...] = ()

    def size(self) -> int:
        """Bytes the answer takes as a node keeps it: its text and files,
        or its structured content as JSON, whichever is larger."""
        kept = len(self.content_text.encode()) + sum(len(f.get("raw", "")) for f in self.files)
        if self.structured is None:
            return kept
        return max(kept, len(json.dumps(self.structured, ensure_ascii=False).encode()))


class AnswerTooLarge(PermanentFailure):
    """A tool's answer is larger than its server's ``max_bytes``: asking
    again would give it again, so the node fails for good."""


class ToolPool(Protocol):
    """The client side of tool calls (``agent_node.integrations.mcp.McpPool``)."""

    async def call(
        self,
        server: str,
        tool: str,
        arguments: Mapping[str, Any],
        *,
        meta: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> ToolResult:
        """Call ``tool``, waiting ``timeout`` seconds at most (None: the
        server's own); a failure to reach the server, or no answer in time,
        raises ``NodeFailed``, an answer too large :class:`AnswerTooLarge`."""
        ...

    async def server_for(self, tool: str) -> str:
        """The one configured server offering ``tool``; ``NodeFailed`` otherwise."""
        ...


class ToolExecutor(Parkless):
    """Runs tool nodes through ``pool`` (None: a runtime without MCP servers)."""

    def __init__(self, pool: ToolPool | None = None) -> None:
        self.pool = pool

    async def execute(self, ctx: NodeContext) -> Outcome:
        spec = _spec(ctx.spec)
        if self.pool is None:
            raise NotEquipped(
                f"tool node {spec.id!r}: this runtime has no MCP servers (configure `mcp:`"
                " in agent-node.yaml and run with it: `agent-node serve`, `run --config`)"
            )
        arguments = build(ctx.workflow, spec.id, "arguments", spec.arguments, ctx.data)
        server = spec.server or await self.pool.server_for(spec.tool)
        started = time.perf_counter()
        result = await self.pool.call(
            server, spec.tool, arguments, meta=call_meta(ctx), timeout=spec.timeout
        )
        duration = time.perf_counter() - started
        if result.is_error:
            text = result.content_text or "(no text)"
            raise NodeFailed(
                f"tool node {spec.id!r}: {server}/{spec.tool} answered an error: {text}"
            )
        value = result.structured if result.structured is not None else result.content_text
        patch: dict[str, Any] = {spec.output: value} if spec.output else {}
        if spec.files:
            patch[spec.files] = list(result.files)
        output = {"server": server, "tool": spec.tool, "duration": round(duration, 6)}
        return Advance(next=spec.next, patch=patch or None, output=output)


def call_meta(ctx: NodeContext, key: str | None = None) -> dict[str, str]:
    """The ``_meta`` of a tool call of ``ctx``'s attempt: its idempotency key
    (``key``, else the visit's) and a span of the execution's trace."""
    key = key or ctx.idempotency_key
    return {IDEMPOTENCY_META: key, "traceparent": child_traceparent(ctx.traceparent, key)}


def model_call_key(ctx: NodeContext, ordinal: int, tool: str, args: Mapping[str, Any]) -> str:
    """The idempotency key of a model node's ``ordinal``-th tool call of the
    attempt (``execution/node/visit/call-N-digest``): a retried attempt whose
    model asks the same call in the same place sends the same key; a different
    call never shares one (the digest is of the tool and its arguments)."""
    said = json.dumps([tool, args], sort_keys=True, ensure_ascii=False, default=str)
    digest = hashlib.sha256(said.encode()).hexdigest()[:12]
    return f"{ctx.idempotency_key}/call-{ordinal}-{digest}"


def _spec(spec: object) -> ToolNode:
    if not isinstance(spec, ToolNode):
        raise NodeFailed(f"node {getattr(spec, 'id', '?')!r} is not a tool node")
    return spec

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

The MCP client is behind :class:`ToolPool` (``agent_node.integrations.mcp``
implements it): this module never imports the MCP SDK.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from pydantic import Field

from agent_node.engine.executor import Advance, NodeContext, Outcome
from agent_node.errors import NodeFailed, NotEquipped
from agent_node.nodes.base import Parkless
from agent_node.tracing import child_traceparent
from agent_node.workflow.ir import NodeSpec, node_type
from agent_node.workflow.values import build, expressions_in, templates_in

__all__ = ["IDEMPOTENCY_META", "ToolExecutor", "ToolNode", "ToolPool", "ToolResult"]

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
    next: str | None = None

    def templates(self) -> list[tuple[str, str]]:
        return templates_in(self.arguments, "arguments")

    def expressions(self) -> list[tuple[str, str]]:
        return expressions_in(self.arguments, "arguments")

    def writes(self) -> list[tuple[str, str]]:
        return [("output", self.output)] if self.output else []


@dataclass(frozen=True, slots=True)
class ToolResult:
    """What a tool answered: its text blocks joined, its structured content
    (None when it gave none) and whether it reported an error."""

    content_text: str
    structured: Any | None
    is_error: bool


class ToolPool(Protocol):
    """The client side of tool calls (``agent_node.integrations.mcp.McpPool``)."""

    async def call(
        self,
        server: str,
        tool: str,
        arguments: Mapping[str, Any],
        *,
        meta: Mapping[str, Any] | None = None,
    ) -> ToolResult:
        """Call ``tool``; a failure to reach the server raises ``NodeFailed``."""
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
                f"tool node {spec.id!r}: this runtime has no MCP servers"
                " (configure `mcp:` in agent-node.yaml and run the workflow in `agent-node serve`)"
            )
        arguments = build(ctx.workflow, spec.id, "arguments", spec.arguments, ctx.data)
        server = spec.server or await self.pool.server_for(spec.tool)
        meta = {
            IDEMPOTENCY_META: ctx.idempotency_key,
            "traceparent": child_traceparent(ctx.traceparent, ctx.idempotency_key),
        }
        started = time.perf_counter()
        result = await self.pool.call(server, spec.tool, arguments, meta=meta)
        duration = time.perf_counter() - started
        if result.is_error:
            text = result.content_text or "(no text)"
            raise NodeFailed(
                f"tool node {spec.id!r}: {server}/{spec.tool} answered an error: {text}"
            )
        value = result.structured if result.structured is not None else result.content_text
        patch = {spec.output: value} if spec.output else None
        output = {"server": server, "tool": spec.tool, "duration": round(duration, 6)}
        return Advance(next=spec.next, patch=patch, output=output)


def _spec(spec: object) -> ToolNode:
    if not isinstance(spec, ToolNode):
        raise NodeFailed(f"node {getattr(spec, 'id', '?')!r} is not a tool node")
    return spec

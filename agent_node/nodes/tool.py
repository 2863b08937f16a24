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

How an argument is built from what is written:

* a string that is exactly one ``{{ … }}`` holding a safe expression (see
  :mod:`agent_node.workflow.expressions`) is that expression's value, with
  its type: ``"{{ state.limit }}"`` passes the number, ``"{{ state.tags }}"``
  the list — tools validate their arguments against a JSON Schema, where
  ``"5"`` is not ``5``;
* any other string with ``{{``, ``{%`` or ``{#`` is a template, rendered to
  text;
* everything else is passed as written; lists and mappings are walked, so
  templates may sit anywhere inside them (fields ``arguments.a.b``,
  ``arguments.a[0]``).

All of them are compiled with the workflow (the ``expressions`` and
``templates`` hooks), so an unknown state key is a compile-time error.

A result the server marks ``is_error`` fails the attempt with the tool's
text, retried per the node's ``retry`` (none by default: a tool call may not
be safe to repeat; each attempt carries the visit's idempotency key in the
request's ``_meta`` for servers that deduplicate). ``node_completed`` records
``server``, ``tool`` and ``duration`` (seconds).

The MCP client is behind :class:`ToolPool` (``agent_node.integrations.mcp``
implements it): this module never imports the MCP SDK.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from pydantic import Field

from agent_node.engine.executor import Advance, NodeContext, Outcome
from agent_node.errors import NodeFailed
from agent_node.nodes.base import Parkless
from agent_node.tracing import child_traceparent
from agent_node.workflow.expressions import ExpressionError, compile_expression
from agent_node.workflow.ir import NodeSpec, node_type

__all__ = ["IDEMPOTENCY_META", "ToolExecutor", "ToolNode", "ToolPool", "ToolResult"]

#: The ``_meta`` key of a call's idempotency key (``execution/node/visit``).
IDEMPOTENCY_META = "agent-node/idempotency-key"
_WHOLE = re.compile(r"^\s*\{\{(?P<inner>(?:(?!\{\{|\}\}).)*)\}\}\s*$", re.DOTALL)
_TEMPLATE_MARKS = ("{{", "{%", "{#")


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
        return [(f, s) for f, s in _leaves(self.arguments, "arguments") if _kind(s) == "template"]

    def expressions(self) -> list[tuple[str, str]]:
        found = _leaves(self.arguments, "arguments")
        return [(f, _inner(s)) for f, s in found if _kind(s) == "expression"]

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
            raise NodeFailed(
                f"tool node {spec.id!r}: this runtime has no MCP servers"
                " (configure `mcp:` in agent-node.yaml and run the workflow in `agent-node serve`)"
            )
        arguments = {
            key: _value(ctx, spec.id, f"arguments.{key}", value)
            for key, value in spec.arguments.items()
        }
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


def _kind(text: str) -> Literal["expression", "template", "literal"]:
    whole = _WHOLE.match(text)
    if whole is not None:
        try:
            compile_expression(whole["inner"])
        except ExpressionError:
            pass  # Jinja-only syntax (filters, `~`): rendered as text
        else:
            return "expression"
    return "template" if any(mark in text for mark in _TEMPLATE_MARKS) else "literal"


def _inner(text: str) -> str:
    whole = _WHOLE.match(text)
    return whole["inner"].strip() if whole else text


def _leaves(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """``(field, text)`` of every string in ``value``, walking lists and mappings."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _leaves(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _leaves(item, f"{path}[{index}]")


def _value(ctx: NodeContext, node: str, path: str, value: Any) -> Any:
    """The argument ``value`` as the tool gets it (see the module doc)."""
    if isinstance(value, str):
        key = (node, path)
        if key in ctx.workflow.expressions:
            return ctx.workflow.expressions[key].evaluate(ctx.data)
        if key in ctx.workflow.templates:
            return ctx.workflow.templates[key].render(ctx.data)
        return value
    if isinstance(value, Mapping):
        return {k: _value(ctx, node, f"{path}.{k}", item) for k, item in value.items()}
    if isinstance(value, list):
        return [_value(ctx, node, f"{path}[{i}]", item) for i, item in enumerate(value)]
    return value


def _spec(spec: object) -> ToolNode:
    if not isinstance(spec, ToolNode):
        raise NodeFailed(f"node {getattr(spec, 'id', '?')!r} is not a tool node")
    return spec

"""MCP tools as model nodes call them: the pool behind the model node's
``ToolBox`` protocol.

Apart from the pool (:mod:`.mcp`) because it is the model node's view of
it: entries of a node's ``tools`` (``tool`` or ``server/tool``) and the
function names the model calls them by, answers as the text the model
reads, and the running node's key, trace and deadline for each call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from agent_node.engine.context import node_context
from agent_node.nodes.tool import AnswerTooLarge, call_meta, model_call_key
from agent_node.nodes.tool_refs import ToolRef

if TYPE_CHECKING:
    from agent_node.integrations.mcp import McpPool

__all__ = ["McpToolBox"]


class McpToolBox:
    """The pool's tools as model nodes call them (``agent_node.nodes.model.ToolBox``).

    A node's entry is ``tool`` or ``server/tool``; the model sees it under its
    function name (:mod:`agent_node.nodes.tool_refs`). A call carries what a
    tool node's does — an idempotency key (:func:`~agent_node.nodes.tool.model_call_key`)
    and a trace context in ``_meta`` — and waits at most the node's
    ``timeout``, else the server's, both read from the running node. An
    answer over ``max_bytes`` is told to the model as an error (it may ask
    for less); other failures to get an answer fail the attempt.
    """

    def __init__(self, pool: McpPool) -> None:
        self.pool = pool

    async def schemas(self, names: Sequence[str]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for name in names:
            ref = ToolRef.parse(name)
            _, info = await self.pool.tool_info(ref.tool, ref.server)
            function = {
                "name": ref.function,
                "description": info.description or "",
                "parameters": info.input_schema,
            }
            found.append({"type": "function", "function": function})
        return found

    async def call(self, name: str, args: Mapping[str, Any], *, ordinal: int = 1) -> str:
        ref = ToolRef.parse(name)
        server = ref.server or await self.pool.server_for(ref.tool)
        ctx = node_context.get()
        meta = call_meta(ctx, model_call_key(ctx, ordinal, name, args)) if ctx else None
        timeout = ctx.spec.timeout if ctx else None
        try:
            result = await self.pool.call(server, ref.tool, args, meta=meta, timeout=timeout)
        except AnswerTooLarge as exc:
            return f"error: {exc}"
        return f"error: {result.content_text}" if result.is_error else result.content_text

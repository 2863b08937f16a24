"""``python``: run a step function and route by ``next`` or by a route function."""

from __future__ import annotations

from typing import Any

from agent_node.engine.executor import Advance, NodeContext, Outcome, Restart
from agent_node.errors import NodeFailed, StateValidationError
from agent_node.nodes.base import Parkless, coerce_state

__all__ = ["PythonExecutor"]


class PythonExecutor(Parkless):
    async def execute(self, ctx: NodeContext) -> Outcome:
        node_id = ctx.spec.id
        body = ctx.workflow.functions.get(node_id)
        if body is None:
            raise NodeFailed(f"python node {node_id!r} has no step function bound")
        result = await body(ctx.state)
        if isinstance(result, Restart):  # continue as new: the state is a new input
            return Restart(coerce_state(ctx, result.state))
        state = coerce_state(ctx, result)
        return Advance(next=self._route(ctx, state), state=state)

    def _route(self, ctx: NodeContext, state: Any) -> str | None:
        router = ctx.workflow.routers.get(ctx.spec.id)
        if router is None:
            return getattr(ctx.spec, "next", None)
        target = router(state)
        if target is not None and target not in ctx.workflow.ir.nodes:
            known = ", ".join(ctx.workflow.ir.nodes)
            raise StateValidationError(
                f"the route of node {ctx.spec.id!r} chose {target!r}, which is not a node"
                f" (known: {known})"
            )
        return target

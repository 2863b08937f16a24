"""``end``: finish the execution, completed or failed, with an optional output."""

from __future__ import annotations

from agent_node.engine.executor import Finish, NodeContext, Outcome
from agent_node.errors import NodeFailed
from agent_node.nodes.base import Parkless
from agent_node.workflow.ir import EndNode

__all__ = ["EndExecutor"]


class EndExecutor(Parkless):
    async def execute(self, ctx: NodeContext) -> Outcome:
        spec = ctx.spec
        if not isinstance(spec, EndNode):
            raise NodeFailed(f"node {spec.id!r} is not an end")
        output = {key: ctx.data.get(key) for key in spec.output} if spec.output else None
        if spec.status == "failed":
            message = spec.message or f"ended at {spec.id!r}"
            if (spec.id, "message") in ctx.workflow.templates:
                message = ctx.workflow.template(spec.id, "message").render(ctx.data)
            return Finish("failed", message, output)
        return Finish("completed", None, output)

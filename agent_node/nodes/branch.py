"""``branch``: go to the first case whose condition holds, else ``default``."""

from __future__ import annotations

from agent_node.engine.executor import Advance, NodeContext, Outcome
from agent_node.errors import NodeFailed
from agent_node.nodes.base import Parkless
from agent_node.workflow.ir import BranchNode

__all__ = ["BranchExecutor"]


class BranchExecutor(Parkless):
    async def execute(self, ctx: NodeContext) -> Outcome:
        spec = ctx.spec
        if not isinstance(spec, BranchNode):
            raise NodeFailed(f"node {spec.id!r} is not a branch")
        for index, case in enumerate(spec.cases):
            if ctx.workflow.expression(spec.id, f"cases[{index}].when").evaluate(ctx.data):
                return Advance(next=case.next, output={"case": index})
        if spec.default is None:
            raise NodeFailed(f"branch {spec.id!r}: no case matched and there is no default")
        return Advance(next=spec.default, output={"case": "default"})

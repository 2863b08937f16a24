"""``parallel`` starts its branches at once; ``join`` continues when all arrived.

The branches share the execution's state: each node's changes are merged
key by key when it commits, so branches should write different keys (when
two write the same key, the later commit wins).
"""

from __future__ import annotations

from agent_node.engine.executor import Advance, Fork, NodeContext, Outcome
from agent_node.errors import NodeFailed
from agent_node.nodes.base import Parkless
from agent_node.workflow.ir import JoinNode, ParallelNode

__all__ = ["JoinExecutor", "ParallelExecutor"]


class ParallelExecutor(Parkless):
    async def execute(self, ctx: NodeContext) -> Outcome:
        spec = ctx.spec
        if not isinstance(spec, ParallelNode):
            raise NodeFailed(f"node {spec.id!r} is not a parallel node")
        return Fork(branches=tuple(spec.branches), join=spec.join)


class JoinExecutor(Parkless):
    async def execute(self, ctx: NodeContext) -> Outcome:
        spec = ctx.spec
        if not isinstance(spec, JoinNode):
            raise NodeFailed(f"node {spec.id!r} is not a join")
        return Advance(next=spec.next)

"""The node attempt a step body is running in, for code that needs it.

A step receives only the state; when its effect leaves the process it needs
the attempt's idempotency key::

    from agent_node import current_node

    @wf.step
    async def charge(state: Order) -> Order:
        await payments.charge(state.amount, idempotency_key=current_node().idempotency_key)
        ...
"""

from __future__ import annotations

from contextvars import ContextVar

from agent_node.engine.executor import NodeContext
from agent_node.errors import UsageError

__all__ = ["current_node", "node_context"]

node_context: ContextVar[NodeContext | None] = ContextVar("agent_node_node", default=None)


def current_node() -> NodeContext:
    """The running node attempt; raises :class:`UsageError` outside a step."""
    ctx = node_context.get()
    if ctx is None:
        raise UsageError("current_node() is only available inside a running node")
    return ctx

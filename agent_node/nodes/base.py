"""Helpers shared by executors."""

from __future__ import annotations

from typing import Any

from agent_node.engine.executor import Outcome, ResumeContext
from agent_node.engine.state import coerce_state
from agent_node.errors import NodeFailed

__all__ = ["Parkless", "coerce_state"]


class Parkless:
    """Base for executors whose nodes never park."""

    def resume(self, ctx: ResumeContext, payload: Any) -> Outcome:
        raise NodeFailed(f"node {ctx.spec.id!r} ({ctx.spec.type}) does not wait for anything")

    def expire(self, ctx: ResumeContext) -> Outcome:
        raise NodeFailed(f"node {ctx.spec.id!r} ({ctx.spec.type}) has no deadline")

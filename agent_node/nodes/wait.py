"""``wait``: park for an external event, human input or an authorization
(optional timeout), or a timer.

Nothing stays in memory while an execution waits: the engine writes a wait
row and forgets it. ``signal`` resolves an event wait through :meth:`resume`
(the payload goes to the state key ``output``); a passed deadline resolves
it through :meth:`expire`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from agent_node.engine.executor import (
    Advance,
    Finish,
    NodeContext,
    Outcome,
    Park,
    ResumeContext,
)
from agent_node.errors import NodeFailed
from agent_node.nodes.base import Parkless
from agent_node.workflow.ir import INPUT_EVENT, WaitNode

__all__ = ["WaitExecutor"]


def _spec(spec: object) -> WaitNode:
    if not isinstance(spec, WaitNode):
        raise NodeFailed(f"node {getattr(spec, 'id', '?')!r} is not a wait")
    return spec


class WaitExecutor(Parkless):
    async def execute(self, ctx: NodeContext) -> Outcome:
        spec = _spec(ctx.spec)
        deadline = ctx.now + spec.timeout if spec.timeout is not None else None
        if spec.prompt is not None:
            field = spec.prompt[0]
            info = {"prompt": ctx.workflow.template(spec.id, field).render(ctx.data)}
            kind: Literal["auth", "input"] = "auth" if field == "auth" else "input"
            return Park(kind, event=INPUT_EVENT, deadline=deadline, info=info)
        if spec.event is not None:
            event = spec.event
            if (spec.id, "event") in ctx.workflow.templates:
                event = ctx.workflow.template(spec.id, "event").render(ctx.data)
            return Park("event", event=event, deadline=deadline)
        if spec.duration is not None:
            return Park("timer", deadline=ctx.now + spec.duration)
        rendered = ctx.workflow.template(spec.id, "until").render(ctx.data)
        return Park("timer", deadline=_instant(spec.id, rendered))

    def resume(self, ctx: ResumeContext, payload: Any) -> Outcome:
        spec = _spec(ctx.spec)
        patch = {spec.output: payload} if spec.output else None
        return Advance(next=spec.next, patch=patch)

    def expire(self, ctx: ResumeContext) -> Outcome:
        spec = _spec(ctx.spec)
        if spec.awaited is None:
            return Advance(next=spec.next)
        if spec.on_timeout is not None:
            return Advance(next=spec.on_timeout, output={"timed_out": True})
        what = spec.prompt[0] if spec.prompt is not None else f"event {spec.event!r}"
        return Finish("failed", f"wait {spec.id!r} for {what} timed out")


def _instant(node: str, text: str) -> float:
    """Epoch seconds from a number or an ISO 8601 time (UTC when no zone)."""
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise NodeFailed(
            f"wait {node!r}: 'until' rendered {text!r}, not an ISO 8601 time or epoch seconds"
        ) from None
    if moment.tzinfo is None:
        from datetime import UTC

        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()

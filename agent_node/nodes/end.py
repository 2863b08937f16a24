"""``end``: finish the execution, completed or failed, with an optional
output — or start it over with a new input (``continue_as_new``)."""

from __future__ import annotations

from agent_node.engine.executor import Finish, NodeContext, Outcome, Restart
from agent_node.engine.state import validated_input
from agent_node.errors import NodeFailed, StateValidationError
from agent_node.nodes.base import Parkless
from agent_node.workflow.ir import EndNode
from agent_node.workflow.values import build

__all__ = ["EndExecutor"]


class EndExecutor(Parkless):
    async def execute(self, ctx: NodeContext) -> Outcome:
        spec = ctx.spec
        if not isinstance(spec, EndNode):
            raise NodeFailed(f"node {spec.id!r} is not an end")
        if spec.continue_as_new is not None:
            return _restart(ctx, spec)
        output = {key: ctx.data.get(key) for key in spec.output} if spec.output else None
        if spec.status == "failed":
            message = spec.message or f"ended at {spec.id!r}"
            if (spec.id, "message") in ctx.workflow.templates:
                message = ctx.workflow.template(spec.id, "message").render(ctx.data)
            return Finish("failed", message, output)
        return Finish("completed", None, output)


def _restart(ctx: NodeContext, spec: EndNode) -> Restart:
    """The new input, built from the state and checked like any input: one
    that does not fit fails the visit, and the run it would have replaced
    stays as it is."""
    given = build(ctx.workflow, spec.id, "continue_as_new", spec.continue_as_new, ctx.data)
    try:
        data = validated_input(ctx.workflow, given)
    except StateValidationError as exc:
        raise StateValidationError(f"cannot continue as new: {exc}") from None
    return Restart(ctx.workflow.state_model.model_validate(data))

"""State handling shared by the engine and executors: validate an input, and
what a step returned."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticSerializationError

from agent_node.engine.executor import NodeContext
from agent_node.errors import StateValidationError
from agent_node.problems import describe_validation
from agent_node.workflow.compiled import CompiledWorkflow

__all__ = ["coerce_state", "validated_input"]


def coerce_state(ctx: NodeContext, result: object) -> BaseModel:
    """A step's return value as a validated state: the new state, a patch of
    changed keys, or ``None`` (unchanged). Raises :class:`StateValidationError`."""
    model = ctx.workflow.state_model
    if result is None:
        return ctx.state
    if isinstance(result, model):
        try:
            raw: Mapping[str, Any] = result.model_dump(mode="json", warnings="error")
        except PydanticSerializationError as exc:
            raise StateValidationError(
                f"node {ctx.spec.id!r} returned a state that does not serialize: {exc}"
            ) from None
    elif isinstance(result, Mapping):
        unknown = sorted(set(result) - set(model.model_fields))
        if unknown:
            raise StateValidationError(
                f"node {ctx.spec.id!r} returned unknown state key(s) {unknown}"
                f" (the state has {sorted(model.model_fields)})"
            )
        raw = {**ctx.data, **result}
    else:
        raise StateValidationError(
            f"node {ctx.spec.id!r} returned {type(result).__name__};"
            f" a step returns a {model.__name__}, a dict of changed keys, or None"
        )
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise StateValidationError(
            f"node {ctx.spec.id!r} produced a state that does not validate:"
            f" {describe_validation(exc, model)}"
        ) from None


def validated_input(
    workflow: CompiledWorkflow, state: BaseModel | Mapping[str, Any]
) -> dict[str, Any]:
    """``state`` checked against the workflow's state model, as JSON data."""
    raw = state.model_dump(mode="json") if isinstance(state, BaseModel) else dict(state)
    try:
        data: dict[str, Any] = workflow.state_model.model_validate(raw).model_dump(mode="json")
    except ValidationError as exc:
        raise StateValidationError(
            f"the input does not fit {workflow.key}'s state:"
            f" {describe_validation(exc, workflow.state_model)}"
        ) from None
    return data

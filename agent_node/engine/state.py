"""State handling shared by the engine and executors: validate an input, what
a step returned, and the state as it is stored.

A state is stored as JSON: a value that has none (an object of a class
pydantic does not know, bytes that are not UTF-8 text, NaN) fails the step
— or the start, for an input — with a :class:`StateValidationError` that
names the workflow, the node and where the value is (``state.items[2].when``,
:mod:`.storable`), and nothing of the state is written."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticSerializationError

from agent_node.engine.executor import NodeContext
from agent_node.engine.storable import finite, unstorable
from agent_node.errors import StateValidationError
from agent_node.problems import describe_validation
from agent_node.store.patches import StatePatch, diff
from agent_node.workflow.compiled import CompiledWorkflow

__all__ = ["coerce_state", "stored_change", "validated_input"]

#: What a dump to JSON data raises for a value it cannot write (a cycle and
#: bytes that are not UTF-8 are ValueErrors).
_DUMP_ERRORS = (PydanticSerializationError, ValueError, TypeError, RecursionError)


def coerce_state(ctx: NodeContext, result: object) -> BaseModel:
    """A step's return value as a validated state: the new state, a patch of
    changed keys, or ``None`` (unchanged). Raises :class:`StateValidationError`."""
    model = ctx.workflow.state_model
    if result is None:
        return ctx.state
    if isinstance(result, model):
        raw = _dumped(result, lambda: _returned(ctx), checked=True)
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


def stored_change(
    ctx: NodeContext, model: BaseModel, before: Mapping[str, Any]
) -> tuple[dict[str, Any], StatePatch]:
    """``model``, a node's new state, as it is stored (its JSON data), and
    its change from ``before`` (the state's data when the node started).
    Raises :class:`StateValidationError` saying where a value has no JSON
    form: only what changed is looked at for NaN (what a step did not
    change was looked at when it was written)."""
    new = _dumped(model, lambda: _returned(ctx))
    patch = diff(before, new)
    if patch and not finite((patch.set, patch.append)):
        raise _unstorable(model, None, _returned(ctx))
    return new, patch


def validated_input(
    workflow: CompiledWorkflow, state: BaseModel | Mapping[str, Any]
) -> dict[str, Any]:
    """``state`` checked against the workflow's state model, as JSON data."""

    def said() -> str:
        return f"the input of {workflow.key} cannot be stored as JSON"

    raw = _dumped(state, said) if isinstance(state, BaseModel) else dict(state)
    try:
        model = workflow.state_model.model_validate(raw)
    except ValidationError as exc:
        raise StateValidationError(
            f"the input does not fit {workflow.key}'s state:"
            f" {describe_validation(exc, workflow.state_model)}"
        ) from None
    data = _dumped(model, said)
    if not finite(data):
        raise _unstorable(model, None, said())
    return data


def _dumped(model: BaseModel, said: Callable[[], str], *, checked: bool = False) -> dict[str, Any]:
    """``model`` as JSON data. ``checked``: a model a step built itself,
    whose values may not be of their fields' types (a warning of pydantic's
    is an error). NaN is not looked for here: :func:`stored_change` looks in
    what a step changed, not in the whole state at every step. Raises
    :class:`StateValidationError` opening with ``said()``."""
    try:
        data: dict[str, Any] = model.model_dump(mode="json", warnings="error" if checked else True)
    except _DUMP_ERRORS as exc:
        raise _unstorable(model, exc, said()) from None
    return data


def _returned(ctx: NodeContext) -> str:
    return (
        f"node {ctx.spec.id!r} of {ctx.workflow.key} returned a state that cannot be stored as JSON"
    )


def _unstorable(model: BaseModel, error: Exception | None, said: str) -> StateValidationError:
    """The error for ``model`` whose dump failed with ``error`` (None: it
    holds NaN): where, when the walk finds it, else the dump's own words."""
    fault = unstorable(model, "state")
    if fault is not None:
        return StateValidationError(f"{said}: {fault}")
    return StateValidationError(f"{said}: {error or 'it holds NaN or an infinity'}")

"""Whether an execution still fits the definition registered for its
workflow version.

An execution runs the version it started with to its end, so a definition
changed under the same version may no longer fit it: the node it is parked
at is gone, or its stored state does not validate against the state model
now. Reading it then says so — which execution, which workflow@version,
what no longer fits and what to do — and changes nothing: the execution
stays as it is until the old definition is registered again.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from agent_node.errors import ConfigError
from agent_node.problems import describe_validation
from agent_node.workflow.compiled import CompiledWorkflow, StateT
from agent_node.workflow.ir import NodeSpec

__all__ = ["node_at", "stored_state"]

_WHAT_TO_DO = (
    "the workflow changed without a new version. Bump its version and keep the"
    " old definition registered until its executions have ended (README:"
    " 'Changing a workflow'); the execution is left as it is"
)


def node_at(workflow: CompiledWorkflow, execution_id: str, node: str) -> NodeSpec:
    """The spec of ``node``, where the execution is."""
    spec = workflow.ir.nodes.get(node)
    if spec is None:
        raise ConfigError(
            f"execution {execution_id} is at node {node!r}, which {workflow.key}"
            f" no longer has: {_WHAT_TO_DO}"
        )
    return spec


def stored_state(
    workflow: CompiledWorkflow[StateT], execution_id: str, state: str | Mapping[str, Any]
) -> StateT:
    """The execution's stored state (its JSON text or data) as the workflow's
    state model."""
    data = json.loads(state) if isinstance(state, str) else state
    try:
        return workflow.state_model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(
            f"the state of execution {execution_id} does not fit the state model of"
            f" {workflow.key} ({describe_validation(exc, workflow.state_model)}):"
            f" {_WHAT_TO_DO}"
        ) from None

"""agent-node: durable agent workflows that call other agents.

Public API (everything else is private and may change)::

    from agent_node import Workflow, RetryPolicy, Runtime, RunResult, continue_as_new

The names are imported on first use (PEP 562), so that ``import agent_node``
— and the ``agent-node`` command, which imports the package for its version —
do not pay for pydantic, the engine and the stores before they need them.
Type checkers see the imports themselves, never the lazy ``__getattr__``:
a misspelt name is an error to them, not an ``Any``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agent_node.engine.context import current_node
    from agent_node.engine.executor import NodeContext, Restart, continue_as_new
    from agent_node.errors import (
        AgentNodeError,
        ConfigError,
        InvalidSignal,
        NodeFailed,
        NodeTimeout,
        StateValidationError,
        UnknownExecution,
        UsageError,
        WorkflowDefinitionError,
    )
    from agent_node.results import Event, NodeRun, RunResult
    from agent_node.runtime import Runtime, close_shared_runtimes
    from agent_node.sdk import Workflow
    from agent_node.workflow.budget import Budget
    from agent_node.workflow.compiled import CompiledWorkflow
    from agent_node.workflow.loading import load_workflow
    from agent_node.workflow.retry import RetryPolicy

__all__ = [
    "AgentNodeError",
    "Budget",
    "CompiledWorkflow",
    "ConfigError",
    "Event",
    "InvalidSignal",
    "NodeContext",
    "NodeFailed",
    "NodeRun",
    "NodeTimeout",
    "Restart",
    "RetryPolicy",
    "RunResult",
    "Runtime",
    "StateValidationError",
    "UnknownExecution",
    "UsageError",
    "Workflow",
    "WorkflowDefinitionError",
    "close_shared_runtimes",
    "continue_as_new",
    "current_node",
    "load_workflow",
]

__version__ = "0.1.0"

#: Where each public name lives.
_HOMES = {
    "current_node": "agent_node.engine.context",
    "continue_as_new": "agent_node.engine.executor",
    "NodeContext": "agent_node.engine.executor",
    "Restart": "agent_node.engine.executor",
    "AgentNodeError": "agent_node.errors",
    "ConfigError": "agent_node.errors",
    "InvalidSignal": "agent_node.errors",
    "NodeFailed": "agent_node.errors",
    "NodeTimeout": "agent_node.errors",
    "StateValidationError": "agent_node.errors",
    "UnknownExecution": "agent_node.errors",
    "UsageError": "agent_node.errors",
    "WorkflowDefinitionError": "agent_node.errors",
    "Event": "agent_node.results",
    "NodeRun": "agent_node.results",
    "RunResult": "agent_node.results",
    "Runtime": "agent_node.runtime",
    "close_shared_runtimes": "agent_node.runtime",
    "Workflow": "agent_node.sdk",
    "Budget": "agent_node.workflow.budget",
    "CompiledWorkflow": "agent_node.workflow.compiled",
    "load_workflow": "agent_node.workflow.loading",
    "RetryPolicy": "agent_node.workflow.retry",
}


if not TYPE_CHECKING:
    # Hidden from type checkers: a module __getattr__ would make any name,
    # misspelt ones included, an Any to them.

    def __getattr__(name: str) -> object:
        home = _HOMES.get(name)
        if home is None:
            raise AttributeError(f"module 'agent_node' has no attribute {name!r}")
        value = getattr(importlib.import_module(home), name)
        globals()[name] = value  # found directly from now on
        return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

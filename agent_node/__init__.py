"""agent-node: durable agent workflows that call other agents.

Public API (everything else is private and may change)::

    from agent_node import Workflow, RetryPolicy, Runtime, RunResult
"""

from __future__ import annotations

from agent_node.engine.context import current_node
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
from agent_node.sdk import Workflow, load_workflow
from agent_node.workflow.ir import RetryPolicy

__all__ = [
    "AgentNodeError",
    "ConfigError",
    "Event",
    "InvalidSignal",
    "NodeFailed",
    "NodeRun",
    "NodeTimeout",
    "RetryPolicy",
    "RunResult",
    "Runtime",
    "StateValidationError",
    "UnknownExecution",
    "UsageError",
    "Workflow",
    "WorkflowDefinitionError",
    "close_shared_runtimes",
    "current_node",
    "load_workflow",
]

__version__ = "0.1.0"

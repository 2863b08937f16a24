"""A compiled workflow: the IR plus everything bound to it at compile time.

Both authoring surfaces produce a :class:`CompiledWorkflow`; the engine runs
nothing else. Expressions and templates are parsed once here, so running a
node never parses text.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol

from pydantic import BaseModel
from typing_extensions import TypeVar

from agent_node.errors import ConfigError
from agent_node.workflow.ir import NodeSpec, WorkflowIR

__all__ = [
    "CompiledWorkflow",
    "Expression",
    "RouteFn",
    "StateT",
    "StepFn",
    "StepResult",
    "Template",
]

#: A workflow's state model, for type checkers: ``Workflow[Expense]`` runs
#: to a ``RunResult[Expense]``; where it is not known, a ``BaseModel``.
StateT = TypeVar("StateT", bound=BaseModel, default=BaseModel, covariant=True)

#: What a step body may return: the new state, a patch of changed keys, or
#: ``None`` for "no change".
StepResult = BaseModel | Mapping[str, Any] | None
StepFn = Callable[[Any], Awaitable[StepResult]]
#: A dynamic route: given the new state, the id of the next node (None = end).
RouteFn = Callable[[Any], str | None]


class Expression(Protocol):
    """A safe expression, compiled once. ``state`` is the JSON-shaped state."""

    source: str

    def evaluate(self, state: Mapping[str, Any]) -> Any: ...


class Template(Protocol):
    """A sandboxed template, compiled once."""

    source: str

    def render(self, state: Mapping[str, Any]) -> str: ...


@dataclass(frozen=True)
class CompiledWorkflow(Generic[StateT]):
    ir: WorkflowIR
    state_model: type[StateT]
    #: Step bodies of python nodes, by node id.
    functions: Mapping[str, StepFn] = field(default_factory=dict)
    #: Dynamic routes of python nodes, by node id.
    routers: Mapping[str, RouteFn] = field(default_factory=dict)
    #: Compiled expressions by ``(node id, field)`` as the spec reports them.
    expressions: Mapping[tuple[str, str], Expression] = field(default_factory=dict)
    #: Compiled templates by ``(node id, field)``.
    templates: Mapping[tuple[str, str], Template] = field(default_factory=dict)
    #: How a worker process loads this workflow again: a YAML/Python file path
    #: or ``module:attr``. ``None`` when it can only run in this process.
    ref: str | None = None

    @property
    def key(self) -> str:
        return self.ir.key

    def node(self, node_id: str) -> NodeSpec:
        spec = self.ir.nodes.get(node_id)
        if spec is None:  # an execution's node, of a definition changed since
            raise ConfigError(f"workflow {self.key} has no node {node_id!r}")
        return spec

    def expression(self, node_id: str, field_name: str) -> Expression:
        return self.expressions[(node_id, field_name)]

    def template(self, node_id: str, field_name: str) -> Template:
        return self.templates[(node_id, field_name)]

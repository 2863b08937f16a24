"""The workflow IR: what both authoring surfaces (Python SDK, YAML) compile to.

A workflow is a graph of nodes keyed by id. Every node spec is a frozen
pydantic model with a ``type`` discriminator. The engine understands the
control-flow types defined here (python, branch, parallel, join, wait, end);
each further node type (model, tool, http, eval, delegate) is one module under
``agent_node/nodes/`` that subclasses :class:`NodeSpec`, decorates it with
:func:`node_type`, and registers an executor for it — nothing else changes.

Graph conventions:

* ``next: None`` on a node that can continue means "the execution ends here".
* A node reports its static successors through :meth:`NodeSpec.successors`,
  the expressions and templates it evaluates through :meth:`expressions` and
  :meth:`templates`, and the state keys it writes through :meth:`writes`.
  Compile-time validation uses only these four hooks.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, field_validator, model_validator

from agent_node.workflow.budget import Budget
from agent_node.workflow.durations import as_duration
from agent_node.workflow.retry import RetryPolicy
from agent_node.workflow.values import expressions_in, templates_in

__all__ = [
    "INPUT_EVENT",
    "NODE_TYPES",
    "BranchCase",
    "BranchNode",
    "EndNode",
    "JoinNode",
    "NodeSpec",
    "ParallelNode",
    "PythonNode",
    "WaitNode",
    "WorkflowIR",
    "node_class",
    "node_type",
    "parse_node",
]


class NodeSpec(BaseModel):
    """Base of every node type. Subclasses set ``type`` to a ``Literal``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str
    id: str = ""
    description: str | None = None
    retry: RetryPolicy | None = None
    timeout: float | None = Field(default=None, gt=0)

    #: Whether this type has a plain ``next`` field (False for branch/parallel).
    has_next: ClassVar[bool] = True

    _timeout = field_validator("timeout", mode="before")(as_duration)

    @field_validator("retry", mode="before")
    @classmethod
    def _retry_shorthand(cls, value: object) -> object:
        if isinstance(value, int) and not isinstance(value, bool):
            return {"max_attempts": value}
        return value

    def successors(self) -> list[str]:
        """Ids this node can continue to, as written (validated against the graph)."""
        nxt = getattr(self, "next", None)
        return [nxt] if isinstance(nxt, str) else []

    def can_end(self) -> bool:
        """Whether the execution can end right after this node."""
        return self.has_next and getattr(self, "next", None) is None

    def expressions(self) -> list[tuple[str, str]]:
        """``(field, source)`` of every safe expression this node evaluates."""
        return []

    def templates(self) -> list[tuple[str, str]]:
        """``(field, source)`` of every template this node renders."""
        return []

    def writes(self) -> list[tuple[str, str]]:
        """``(field, state key)`` of every state key this node writes by name."""
        return []


NODE_TYPES: dict[str, type[NodeSpec]] = {}
#: The event that answers a wait for human input or authorization (the
#: caller's next message on the task).
INPUT_EVENT = "input"

_Spec = TypeVar("_Spec", bound=type[NodeSpec])


def node_type(cls: _Spec) -> _Spec:
    """Register a node spec class under its ``type`` literal."""
    literal = cls.__pydantic_fields__["type"].default
    if not isinstance(literal, str):
        raise TypeError(f"{cls.__name__}.type needs a string default")
    NODE_TYPES[literal] = cls
    return cls


def parse_node(node_id: str, raw: Mapping[str, Any]) -> NodeSpec:
    """Build the spec of one node from its mapping (``type`` picks the class)."""
    return node_class(raw).model_validate({**raw, "id": node_id})


def node_class(raw: Mapping[str, Any]) -> type[NodeSpec]:
    """The class of the node ``raw`` describes, by its ``type``."""
    kind = raw.get("type")
    cls = NODE_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None and isinstance(kind, str):
        # The built-in types above the core ones (model, tool, http, eval,
        # delegate) register themselves when ``agent_node.nodes`` is imported;
        # a YAML file may name one before anything did (``load_workflow`` in
        # a fresh process). That package sits above this one: imported by
        # name, when a file needs it.
        importlib.import_module("agent_node.nodes")
        cls = NODE_TYPES.get(kind)
    if cls is None:
        known = ", ".join(sorted(NODE_TYPES))
        raise ValueError(f"unknown node type {kind!r} (known: {known})")
    return cls


@node_type
class PythonNode(NodeSpec):
    """A Python step: an async function taking and returning the state.

    ``function`` is an import reference (``package.module:attr``) for YAML;
    the Python SDK binds the callable directly. When the SDK routes with a
    function, ``routes`` lists the targets it may return (``None`` = unknown).
    """

    type: Literal["python"] = "python"
    function: str | None = None
    next: str | None = None
    routes: list[str] | None = None
    dynamic_next: bool = False

    def successors(self) -> list[str]:
        return [*super().successors(), *(self.routes or [])]

    def can_end(self) -> bool:
        return self.dynamic_next or self.next is None


class BranchCase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    when: str
    next: str


@node_type
class BranchNode(NodeSpec):
    """Goes to the first case whose ``when`` expression holds, else ``default``."""

    type: Literal["branch"] = "branch"
    cases: list[BranchCase] = Field(min_length=1)
    default: str | None = None
    has_next: ClassVar[bool] = False

    def successors(self) -> list[str]:
        targets = [case.next for case in self.cases]
        return [*targets, self.default] if self.default else targets

    def can_end(self) -> bool:
        return False

    def expressions(self) -> list[tuple[str, str]]:
        return [(f"cases[{i}].when", case.when) for i, case in enumerate(self.cases)]


@node_type
class ParallelNode(NodeSpec):
    """Starts every branch at once; the branches meet again at ``join``."""

    type: Literal["parallel"] = "parallel"
    branches: list[str] = Field(min_length=1)
    join: str
    has_next: ClassVar[bool] = False

    def successors(self) -> list[str]:
        return list(self.branches)

    def can_end(self) -> bool:
        return False


@node_type
class JoinNode(NodeSpec):
    """Continues once every branch of the parallel node that leads here arrived."""

    type: Literal["join"] = "join"
    next: str | None = None


@node_type
class WaitNode(NodeSpec):
    """Parks the execution: for an external ``event``, for human ``input``,
    for an ``auth``orization (both optionally with a ``timeout``), or as a
    timer (``duration`` or ``until``).

    ``input`` is the prompt (a template) shown to whoever must answer: over
    A2A the task is INPUT_REQUIRED with this prompt, and the caller's next
    message on the task resolves the wait (as the event ``input``). ``auth``
    is the same with AUTH_REQUIRED: the prompt says what to authorize (or
    where), and the caller's next message resolves it the same way — what
    that message proves is the workflow's to check (A2A §7.6.4: the state
    itself grants nothing). The payload that resolves a wait is written to
    the state key ``output`` when given. On timeout the execution goes to
    ``on_timeout``, or fails when unset. A waiting execution is a row in the
    store, never a coroutine.
    """

    type: Literal["wait"] = "wait"
    event: str | None = None
    input: str | None = None
    auth: str | None = None
    duration: float | None = Field(default=None, ge=0)
    until: str | None = None
    output: str | None = None
    on_timeout: str | None = None
    next: str | None = None

    _duration = field_validator("duration", mode="before")(as_duration)

    @model_validator(mode="after")
    def _one_kind(self) -> WaitNode:
        given = (self.event, self.input, self.auth, self.duration, self.until)
        if sum(x is not None for x in given) != 1:
            raise ValueError(
                "a wait needs exactly one of 'event', 'input', 'auth', 'duration' or 'until'"
            )
        answered = self.awaited is not None
        if not answered and (self.timeout is not None or self.on_timeout is not None):
            raise ValueError("'timeout' and 'on_timeout' apply to event, input and auth waits only")
        if not answered and self.output is not None:
            raise ValueError("'output' applies to event, input and auth waits only")
        return self

    @property
    def prompt(self) -> tuple[str, str] | None:
        """``(field, template)`` of a wait that asks its caller: ``input`` or ``auth``."""
        if self.input is not None:
            return "input", self.input
        return ("auth", self.auth) if self.auth is not None else None

    @property
    def awaited(self) -> str | None:
        """The name of the event that resolves this wait (``input`` for input and auth)."""
        return INPUT_EVENT if self.prompt is not None else self.event

    def successors(self) -> list[str]:
        return [*super().successors(), *([self.on_timeout] if self.on_timeout else [])]

    def templates(self) -> list[tuple[str, str]]:
        found = [("event", self.event)] if self.event and "{" in self.event else []
        found += [self.prompt] if self.prompt else []
        return [*found, *([("until", self.until)] if self.until else [])]

    def writes(self) -> list[tuple[str, str]]:
        return [("output", self.output)] if self.output else []


@node_type
class EndNode(NodeSpec):
    """Ends the execution. ``status: failed`` with a ``message`` template ends it
    as failed; ``output`` names the state keys that form the result (default:
    the whole state).

    ``continue_as_new`` starts the execution over from ``start`` instead, under
    the same id, with a new input: each state key it names gets a value built
    from the current state as :mod:`agent_node.workflow.values` says
    (``"{{ state.round + 1 }}"``, ``[]``); the keys it leaves out take their
    defaults. The input is checked like any input when the node runs. It
    goes with neither ``status: failed`` nor ``message`` and ``output``: the
    execution does not end there.
    """

    type: Literal["end"] = "end"
    status: Literal["completed", "failed"] = "completed"
    message: str | None = None
    output: list[str] | None = None
    continue_as_new: dict[str, Any] | None = None
    has_next: ClassVar[bool] = False

    @model_validator(mode="after")
    def _restart_or_end(self) -> EndNode:
        if self.continue_as_new is None:
            return self
        if self.status == "failed":
            raise ValueError(
                "continue_as_new starts the execution over; it cannot go with status: failed"
            )
        if self.message is not None or self.output is not None:
            raise ValueError(
                "'message' and 'output' say how an execution ends; with continue_as_new it"
                " starts over instead"
            )
        return self

    def can_end(self) -> bool:
        return True

    def expressions(self) -> list[tuple[str, str]]:
        return expressions_in(self.continue_as_new, "continue_as_new")

    def templates(self) -> list[tuple[str, str]]:
        found = [("message", self.message)] if self.message else []
        return [*found, *templates_in(self.continue_as_new, "continue_as_new")]

    def writes(self) -> list[tuple[str, str]]:
        # Not written, but must exist in the state: validated the same way.
        ended = [(f"output[{i}]", key) for i, key in enumerate(self.output or [])]
        return [*ended, *((f"continue_as_new.{key}", key) for key in self.continue_as_new or {})]


class WorkflowIR(BaseModel):
    """A whole workflow: header plus node map. ``state_schema`` is JSON Schema."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    version: str = Field(min_length=1)
    description: str | None = None
    state_schema: dict[str, Any]
    start: str
    nodes: dict[str, SerializeAsAny[NodeSpec]]
    #: What each execution may spend on models (None: no limit).
    budget: Budget | None = None

    @field_validator("version", mode="before")
    @classmethod
    def _version_text(cls, value: object) -> object:
        return str(value) if isinstance(value, int | float) else value

    @property
    def key(self) -> str:
        """``id@version``: how executions name the workflow they run."""
        return f"{self.id}@{self.version}"

"""The contract between the engine and node executors.

One executor per node type (``agent_node/nodes/<type>.py``). The engine calls
:meth:`Executor.execute` once per attempt of a node visit, with a
:class:`NodeContext`, and the executor answers with an :data:`Outcome`:

* :class:`Advance` — the node finished: an optional new state (or patch) and
  the next node (``None`` ends this path of the execution);
* :class:`Fork` — start several branches that meet at a join node;
* :class:`Park` — wait for an external event or a deadline; the engine
  records a wait row and drops everything from memory;
* :class:`Finish` — end the whole execution, completed or failed.

Rules an executor must keep:

* ``execute`` may run more than once for one visit (a crash between its
  effect and the commit): effects that leave the process must use
  ``ctx.idempotency_key``. The engine commits at most one result per visit.
* Raising any ``Exception`` is a failed attempt, retried per the node's
  retry policy. Never swallow :class:`~agent_node.errors.ControlSignal` or
  ``asyncio.CancelledError``: they mean the execution was cancelled, the
  worker is stopping, or (tests) the process "crashed".
* A node that parks gets :meth:`Executor.resume` called — synchronously,
  inside the transaction that resolves the wait — with the payload that
  arrived, or :meth:`Executor.expire` when the wait's deadline passed. Both
  must be pure (no I/O): they only map the payload into an outcome.
* A node whose visit keeps state of its own beside its wait (a delegation)
  may also implement :meth:`Informed.inform`: news from the machinery that
  works for the visit (the watchdog, a push), pure like ``resume``, which
  may resolve the wait or :class:`Keep` it (changing the visit's row).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from pydantic import BaseModel

from agent_node.store.live import Live
from agent_node.store.records import DelegationRecord, EventRecord, WaitRecord
from agent_node.workflow.compiled import CompiledWorkflow
from agent_node.workflow.ir import NodeSpec

__all__ = [
    "Advance",
    "Executor",
    "Finish",
    "Fork",
    "Informed",
    "Keep",
    "NodeContext",
    "Outcome",
    "Park",
    "Reaction",
    "Restart",
    "ResumeContext",
    "continue_as_new",
]


@dataclass(frozen=True, slots=True)
class NodeContext:
    """What one attempt of one node visit sees."""

    execution_id: str
    workflow: CompiledWorkflow
    spec: NodeSpec
    visit: int
    attempt: int
    #: The state as a validated model instance (do not mutate it in place).
    state: BaseModel
    #: The same state as JSON-shaped data, for expressions and templates.
    data: Mapping[str, Any]
    now: float
    #: The execution's W3C trace context, when it has one (A2A tasks do).
    traceparent: str | None = None
    #: Reads the execution's event log so far (eval nodes score latency and cost).
    history: Callable[[], Awaitable[list[EventRecord]]] | None = None
    #: The store's live channel, for text a node writes while it runs
    #: (a model's streamed answer: :class:`~agent_node.store.live.LiveWriter`).
    live: Live | None = None
    #: Logs an event about this attempt while it runs (``kind``, data), under
    #: its lease: what it waits for (a model backend's slot) shows in ``inspect``.
    note: Callable[[str, Mapping[str, Any]], Awaitable[None]] | None = None
    #: What the attempt has paid for so far, as its executor adds sources
    #: while it runs (each gives a ``usage`` mapping of counts when asked: a
    #: model node's conversation, each judge's): a failed attempt's
    #: ``node_failed`` records their sum however it ended — a node
    #: ``timeout`` that cut it mid-call too (:func:`~.attempts.spent_usage`).
    spending: list[Callable[[], Mapping[str, Any] | None]] = field(default_factory=list)

    @property
    def idempotency_key(self) -> str:
        """``execution/node/visit``: the same for every attempt of this visit."""
        return f"{self.execution_id}/{self.spec.id}/{self.visit}"


@dataclass(frozen=True, slots=True)
class ResumeContext:
    """What :meth:`Executor.resume` and :meth:`Executor.expire` see."""

    execution_id: str
    workflow: CompiledWorkflow
    spec: NodeSpec
    visit: int
    data: Mapping[str, Any]
    now: float
    #: The delegation of this visit, for delegate nodes that have one (as
    #: read in the transaction that resumes it).
    delegation: DelegationRecord | None = None
    #: The visit's wait (None: it has none any more, for ``inform``).
    wait: WaitRecord | None = None


@dataclass(frozen=True, slots=True)
class Advance:
    """The node finished. ``state`` is a new state, ``patch`` changed keys
    (give one or neither). ``next`` is the following node, ``None`` to end
    this path; ``output`` and ``usage`` are recorded in the event."""

    next: str | None
    state: BaseModel | None = None
    patch: Mapping[str, Any] | None = None
    output: Any = None
    usage: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Fork:
    """Start every branch now; they continue together at ``join``."""

    branches: tuple[str, ...]
    join: str


@dataclass(frozen=True, slots=True)
class Park:
    """Wait. ``kind`` is ``event`` (resolved by the event named ``event``),
    ``input`` (human input: resolved by the event ``input``; ``info`` holds
    the ``prompt``), ``auth`` (an authorization, the same way),
    ``delegation`` (a task sent to a peer: resolved by the event ``event``
    when the peer's result arrives; ``delegation`` is the row written with
    the wait) or ``timer``; the wait expires at ``deadline``
    (epoch seconds) when one is given."""

    kind: Literal["event", "input", "auth", "delegation", "timer"]
    event: str | None = None
    deadline: float | None = None
    info: Mapping[str, Any] = field(default_factory=dict)
    delegation: DelegationRecord | None = None


@dataclass(frozen=True, slots=True)
class Finish:
    """End the execution now (other branches are dropped)."""

    status: Literal["completed", "failed"] = "completed"
    error: str | None = None
    output: Any = None
    #: What the node's calls cost (recorded in its ``node_completed``).
    usage: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Keep:
    """The visit's wait stays as it is (news that changes nothing for it, or
    that it has no wait any more); ``delegation`` replaces the visit's
    delegation row."""

    delegation: DelegationRecord | None = None


@dataclass(frozen=True, slots=True)
class Restart:
    """Start the execution over with ``state`` as its input (*continue as
    new*): the same execution id and A2A task, its log so far dropped, its
    other paths, waits and delegations ended — a workflow meant to run for
    ever keeps a log of one run. A python step returns it
    (:func:`continue_as_new`)."""

    state: BaseModel


def continue_as_new(state: BaseModel) -> Restart:
    """What a python step returns to start its execution over with ``state``
    (see :class:`Restart`): ``return continue_as_new(State(round=s.round + 1))``."""
    return Restart(state)


Outcome = Advance | Fork | Park | Finish | Restart
#: What :meth:`Informed.inform` answers, and the events to log first
#: (``(kind, data)``, about the visit).
Reaction = tuple[Advance | Fork | Park | Finish | Keep, tuple[tuple[str, Mapping[str, Any]], ...]]


class Executor(Protocol):
    """Runs one node type. See the module docstring for the contract."""

    async def execute(self, ctx: NodeContext) -> Outcome: ...

    def resume(self, ctx: ResumeContext, payload: Any) -> Outcome:
        """Map an arrived payload to an outcome (nodes that park only)."""
        ...

    def expire(self, ctx: ResumeContext) -> Outcome:
        """The wait's deadline passed (nodes that park with a deadline only)."""
        ...


class Informed(Protocol):
    """An executor that takes news about its visits (see the module doc)."""

    def inform(self, ctx: ResumeContext, news: Mapping[str, Any]) -> Reaction:
        """Map news about the visit (``ctx.wait`` is its wait, or None) to a
        resolution of the wait or a :class:`Keep`. Pure, like ``resume``."""
        ...

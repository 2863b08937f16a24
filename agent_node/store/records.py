"""Rows of the store as plain dataclasses, and the execution lifecycle.

These mirror the tables in :mod:`agent_node.store.schema` one to one. JSON
columns (``state``, ``cursor``, ``data``, ``metadata``) stay JSON text here:
the engine decides when parsing is worth its cost.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "ACTIVE",
    "TERMINAL",
    "Claim",
    "EventRecord",
    "ExecutionRecord",
    "ExecutionStatus",
    "PushClaim",
    "PushConfigRecord",
    "WaitRecord",
    "WorkItem",
]

#: pending: created, nothing started · running: a node is ready or running ·
#: waiting: parked on waits only · completed / failed / canceled: terminal.
ExecutionStatus = Literal["pending", "running", "waiting", "completed", "failed", "canceled"]
TERMINAL: frozenset[str] = frozenset({"completed", "failed", "canceled"})
ACTIVE: frozenset[str] = frozenset({"pending", "running", "waiting"})


@dataclass(slots=True)
class ExecutionRecord:
    """The projection of one execution (table ``executions``)."""

    id: str
    workflow_id: str
    workflow_version: str
    workflow_ref: str | None
    status: ExecutionStatus
    state: str
    cursor: str
    last_seq: int
    error: str | None
    context_id: str | None
    metadata: str | None
    created_at: float
    updated_at: float

    @property
    def caller(self) -> str | None:
        """The identity that created the execution (``metadata.caller``), if any."""
        return self._meta("caller")

    @property
    def traceparent(self) -> str | None:
        """The W3C trace context the execution runs in (``metadata.traceparent``)."""
        return self._meta("traceparent")

    def _meta(self, key: str) -> str | None:
        if not self.metadata or f'"{key}"' not in self.metadata:
            return None
        value = json.loads(self.metadata).get(key)
        return value if isinstance(value, str) else None


@dataclass(slots=True)
class EventRecord:
    """One entry of the append-only log (table ``events``)."""

    execution_id: str
    seq: int
    kind: str
    node: str | None
    visit: int | None
    attempt: int | None
    at: float
    data: str | None


@dataclass(slots=True)
class WorkItem:
    """A ready (or running) node visit (table ``work``).

    ``attempt`` is the number of the latest attempt started (0 = never
    claimed). ``fence`` grows by one on every claim; a write is accepted only
    from the holder of the current fence.
    """

    execution_id: str
    node: str
    visit: int
    attempt: int
    available_at: float
    lease_owner: str | None
    lease_expires_at: float | None
    fence: int

    @property
    def key(self) -> str:
        """The attempt-independent idempotency key ``execution/node/visit``."""
        return f"{self.execution_id}/{self.node}/{self.visit}"


@dataclass(slots=True)
class WaitRecord:
    """A parked node visit (table ``waits``): an event, a timer, or a join."""

    execution_id: str
    node: str
    visit: int
    kind: str
    event: str | None
    deadline: float | None


@dataclass(slots=True)
class DelegationRecord:
    """A task sent to a peer agent that a delegate node's wait is parked on
    (table ``delegations``; schema version 3).

    Written in the transaction that parks the wait (``delegation_sent``), and
    deleted in the one that resolves it. A row whose wait is gone (the
    execution was canceled, or the wait timed out) tells the watchdog to
    cancel the peer's task, then the row goes. ``next_poll_at`` is when the
    watchdog asks the peer for the task next, if no push came first. While
    the peer asks for input that our caller must give, the visit waits for
    input instead and the row stays; the answer is kept in ``relay`` until
    the watchdog has sent it on to the peer's task.
    """

    execution_id: str
    node: str
    visit: int
    #: The peer's configured name (or its base URL when it was discovered).
    peer: str
    remote_task_id: str
    #: The JSON-RPC URL the task was sent to, and the protocol version spoken.
    endpoint: str
    version: str
    #: The identity the peer's certificate named; pushes must come from it.
    identity: str | None
    sent_at: float
    next_poll_at: float
    polls: int = 0
    #: Our caller's answer to the peer's question, not yet relayed to the
    #: peer's task (the message as 1.0 JSON); None when there is none.
    relay: str | None = None


@dataclass(slots=True)
class Claim:
    """A work item leased to us, with its execution as it was when claimed."""

    work: WorkItem
    execution: ExecutionRecord


@dataclass(slots=True)
class PushConfigRecord:
    """Where to push a task's changes, and how far pushing got (table ``push_configs``).

    The row is its own outbox: ``pushed_seq`` is a cursor over the task's
    event log. A task whose ``last_seq`` passed the cursor while it is parked
    or terminal has a change to push; a successful POST (or giving up on it)
    moves the cursor, and a terminal task pushed to the end is ``settled``.
    ``attempts`` and ``next_attempt_at`` pace the retries of the change due;
    the lease keeps two senders from pushing the same change at once.
    """

    task_id: str
    id: str
    #: The config as the caller set it: the 1.0 ``TaskPushNotificationConfig`` JSON.
    config: str
    #: The protocol version of the caller that set it: the shape of the pushes.
    version: str
    caller: str | None
    created_at: float
    pushed_seq: int = 0
    settled: bool = False
    attempts: int = 0
    next_attempt_at: float = 0.0
    last_error: str | None = None
    lease_owner: str | None = None
    lease_expires_at: float | None = None


@dataclass(slots=True)
class PushClaim:
    """A push config leased for delivery, with its task's position when claimed."""

    config: PushConfigRecord
    last_seq: int
    status: ExecutionStatus

"""Rows of the store as plain dataclasses, and the execution lifecycle.

These mirror the tables in :mod:`agent_node.store.schema` one to one. JSON
columns (``state``, ``cursor``, ``data``, ``metadata``) stay JSON text here:
the engine decides when parsing is worth its cost.
"""

from __future__ import annotations

import dataclasses
import json
import operator
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

__all__ = [
    "ACTIVE",
    "TERMINAL",
    "Asking",
    "Claim",
    "DelegationRecord",
    "DelegationState",
    "EventRecord",
    "ExecutionRecord",
    "ExecutionStatus",
    "PushClaim",
    "PushConfigRecord",
    "VisitKey",
    "WaitRecord",
    "WorkItem",
    "asking_of",
    "copied",
]

R = TypeVar("R")

#: pending: created, nothing started · running: a node is ready or running ·
#: waiting: parked on waits only · completed / failed / canceled: terminal.
ExecutionStatus = Literal["pending", "running", "waiting", "completed", "failed", "canceled"]
TERMINAL: frozenset[str] = frozenset({"completed", "failed", "canceled"})
ACTIVE: frozenset[str] = frozenset({"pending", "running", "waiting"})
#: What a waiting execution asks of whoever started it (A2A's interrupted
#: states): ``auth`` (AUTH_REQUIRED), ``input`` (INPUT_REQUIRED), or
#: ``none`` (neither: working, or parked on a timer, an event, a peer).
Asking = Literal["auth", "input", "none"]


def asking_of(status: str, wait_kinds: Collection[str]) -> Asking:
    """What an execution with ``status`` and waits of ``wait_kinds`` asks.
    An authorization comes first: a task asking both is AUTH_REQUIRED."""
    if status != "waiting":
        return "none"
    if "auth" in wait_kinds:
        return "auth"
    return "input" if "input" in wait_kinds else "none"


@dataclass(slots=True)
class ExecutionRecord:
    """The projection of one execution (table ``executions``).

    ``state`` is the whole current state as JSON in the records a store's
    reads return (:meth:`~agent_node.store.base.Store.get`,
    ``list_executions``). In a claim or a transaction it is what the row
    holds: the whole current state when it is small enough to live there,
    else "" (:mod:`~agent_node.store.snapshots`: it is then a snapshot and
    the patches after it, which ``state_seq`` versions).
    """

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
    #: The ``seq`` of the event that last changed the state (0: the input).
    state_seq: int = 0
    #: The ``seq`` the stored snapshot of the state was taken at.
    snapshot_seq: int = 0
    #: Bytes of patches allowed before the next snapshot (large states only).
    patch_room: int = 0
    #: SQLite: the execution's number, the high half of its events' row ids
    #: (:mod:`~agent_node.store.sqlite_events`), carried from where the row
    #: was read or inserted so that a commit's events need not look it up.
    #: 0 where it is not known (and on the other stores). Not compared: a
    #: row read back does not carry it.
    num: int = field(default=0, compare=False)
    #: ``metadata`` parsed (:meth:`meta`), once per record and carried by
    #: :meth:`copy` — a runner reads the traceparent at every step. Kept by
    #: the record, not in a cache of the process: a parked execution, whose
    #: record nobody holds, keeps nothing.
    parsed: Mapping[str, Any] | None = field(default=None, repr=False, compare=False)

    def copy(self) -> ExecutionRecord:
        """A copy to change (a plan changes its record in place): a node's
        commit makes one, and ``dataclasses.replace`` cost ten times more."""
        return ExecutionRecord(
            self.id,
            self.workflow_id,
            self.workflow_version,
            self.workflow_ref,
            self.status,
            self.state,
            self.cursor,
            self.last_seq,
            self.error,
            self.context_id,
            self.metadata,
            self.created_at,
            self.updated_at,
            self.state_seq,
            self.snapshot_seq,
            self.patch_room,
            self.num,
            self.parsed,
        )

    @property
    def caller(self) -> str | None:
        """The identity that created the execution (``metadata.caller``), if any."""
        return self._meta("caller")

    @property
    def traceparent(self) -> str | None:
        """The W3C trace context the execution runs in (``metadata.traceparent``)."""
        return self._meta("traceparent")

    def meta(self) -> Mapping[str, Any]:
        """``metadata`` as a mapping (empty when there is none); shared: never
        changed by whoever reads it."""
        found = self.parsed
        if found is None:
            found = self.parsed = parsed_metadata(self.metadata) if self.metadata else {}
        return found

    def _meta(self, key: str) -> str | None:
        if not self.metadata or f'"{key}"' not in self.metadata:
            return None
        value = self.meta().get(key)
        return value if isinstance(value, str) else None


#: Each record class's fields in order, read in one call (:func:`copied`).
_FIELDS: dict[type, Callable[[Any], tuple[Any, ...]]] = {}


def copied(record: R) -> R:
    """A shallow copy of a record (the memory store hands out copies, as the
    SQL stores hand out rows read anew): its constructor called with its
    fields, read by one ``attrgetter`` — ``dataclasses.replace`` checks
    every field by name and cost the memory store a sixth of a step."""
    cls = type(record)
    fields = _FIELDS.get(cls)
    if fields is None:
        names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
        # Two names at least: attrgetter then always returns a tuple.
        fields = _FIELDS[cls] = operator.attrgetter(names[0], names[1], *names[2:])
    return cls(*fields(record))


def parsed_metadata(metadata: str) -> Mapping[str, Any]:
    """An execution's metadata (JSON) as a mapping (:meth:`ExecutionRecord.meta`
    keeps it); empty when it is not a JSON object."""
    try:
        found = json.loads(metadata)
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


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
    #: A completed visit's run time (seconds), as its ``data`` says it, when
    #: that is all its data has for the commit's observers (:mod:`.notify`) to
    #: count — no model usage — carried from the commit that wrote it so that
    #: they need not parse ``data``; else None, and None on an event read back
    #: from a SQL store (the memory store keeps the commit's). Not a column:
    #: not stored, not compared.
    duration: float | None = field(default=None, compare=False, repr=False)


#: A node visit: (execution id, node id, visit).
VisitKey = tuple[str, str, int]


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


#: The states of a delegation row (see :class:`DelegationRecord`).
DelegationState = Literal["sending", "sent", "asked", "answered", "canceling"]


@dataclass(slots=True)
class DelegationRecord:
    """A task handed to a peer agent: the state machine of one delegation
    (table ``delegations``; schema version 3, states since version 4).

    The row is written with the delegate node's wait, **before** anything is
    sent, and moves ``sending → sent → (asked ⇄ answered)* →`` settled (the
    row is deleted with the wait's resolution), or ``canceling`` when the
    wait went away first (the execution was canceled or ended, or the wait
    timed out) until the peer's task is canceled:

    * ``sending``: ``request`` is to be sent; ``remote_task_id`` is "" until
      the peer's answer (or an early push) names its task. An unreachable
      peer leaves the row here, due again after a backoff.
    * ``sent``: the peer has the task; news comes by push, stream or poll.
    * ``asked``: the peer asked for input (``question``); the visit waits
      for our caller's answer.
    * ``answered``: our caller answered (``turn`` counts the answers);
      ``relay`` holds the answer until it has been sent to the peer's task.
    * ``canceling``: the peer's task is to be canceled, then the row goes.

    Content (state, turn, relay, question, the peer's task) changes only in
    a transaction on the execution that read the row under its lock, as a
    conditional update on ``(state, turn)``; the watchdog's scheduling
    columns (``next_poll_at``, ``polls``, ``last_error``) are written by
    separate conditional statements, so no writer ever puts back a copy it
    read earlier.
    """

    execution_id: str
    node: str
    visit: int
    #: The peer's configured name (or its base URL when it was discovered);
    #: "" while a peer found by skill or tag has not been chosen yet.
    peer: str
    #: The peer's task ("" until known).
    remote_task_id: str
    #: The interface URL the task was sent to, and what is spoken there: the
    #: protocol version for JSON-RPC ("1.0", "0.3"), else binding and version
    #: ("HTTP+JSON 1.0"); "" until sent.
    endpoint: str
    version: str
    #: The identity the peer's certificate named; pushes must come from it.
    identity: str | None
    #: When the delegation was recorded (before the first send).
    sent_at: float
    #: When the watchdog looks at the row next (a send, a relay, a poll, a cancel).
    next_poll_at: float
    #: How often the watchdog took the row up since the last progress (its backoff).
    polls: int = 0
    #: Our caller's answer to the peer's question, not yet relayed to the
    #: peer's task (the message as 1.0 JSON); None when there is none.
    relay: str | None = None
    state: DelegationState = "sent"
    #: Answers relayed so far (the relay's messageId carries it).
    turn: int = 0
    #: What to send: the delegation as JSON (see ``nodes.delegate.Delegation``).
    request: str | None = None
    #: The peer's last question: ``{"id", "at", "text"}`` of its status message
    #: (news asking again is a new question only if it is newer).
    question: str | None = None
    #: Why the last attempt to reach the peer failed (None after progress).
    last_error: str | None = None
    #: When the watchdog holding the row took it up for the try now in
    #: flight (a send, a poll, a relay, a cancel); None when none is. A
    #: claim sets it (``next_poll_at`` is then the claim's expiry, not a
    #: next try); whatever ends the try clears it: a reschedule, news
    #: applied to the row, a lease freed (schema version 13).
    claimed_at: float | None = None

    @property
    def key(self) -> str:
        """The idempotency key of the visit: ``execution/node/visit``."""
        return f"{self.execution_id}/{self.node}/{self.visit}"


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

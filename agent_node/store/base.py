"""The store protocol: what the engine needs from persistence, and nothing more.

Three implementations pass one shared test suite: :mod:`.memory` (fastest,
nothing durable), :mod:`.sqlite` (embedded default) and :mod:`.postgres`
(many worker processes and nodes share one database).

How writes work. Every change to an execution happens inside **one
transaction per execution**, described by a *plan*: a plain function the
engine passes in. The store locks the execution's row, hands the plan a
:class:`Txn` holding the row as it is now (and, when asked, the execution's
work and wait rows), lets the plan record what must change, then writes it
all and commits. A plan that raises leaves nothing behind. So the rules of
the engine (which events, which next node, which status) live once, in the
engine; a store only knows rows.

Fencing. A write from a worker that runs a node names the lease it holds
(:class:`Fence`). The store checks it *first* — before locking the execution
row — and raises :class:`~agent_node.errors.Fenced` when the lease was taken
over, so a zombie can never commit. Lock order is always work rows, then the
execution row (claims take them in the same order), so writers cannot
deadlock each other.

Notifications. After a commit the store tells subscribers, in this process
and (PostgreSQL) in every other process, what changed: ``("work", id)`` when
a node became ready, ``("timer", id)`` when a wait with a deadline was
written, ``("status", id)`` when an execution parked or ended,
``("cancel", id)`` when it was cancelled.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from agent_node.store.gauges import StoreGauges
from agent_node.store.live import Live
from agent_node.store.patches import StatePatch
from agent_node.store.records import (
    Asking,
    Claim,
    DelegationRecord,
    EventRecord,
    ExecutionRecord,
    PushClaim,
    PushConfigRecord,
    WaitRecord,
    WorkItem,
)
from agent_node.store.slots import SharedSlots

__all__ = [
    "ClaimPlan",
    "Commit",
    "CommitObserver",
    "CommitTimer",
    "Fence",
    "Listener",
    "Plan",
    "StateWrite",
    "Store",
    "Txn",
]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

#: A notification callback: ``(kind, execution_id)``.
Listener = Callable[[str, str], None]
#: What a commit wrote: the execution as committed, and the events it appended.
Commit = tuple[ExecutionRecord, Sequence[EventRecord]]
#: Told what commits wrote, a few at a time, in commit order (:mod:`.notify`).
CommitObserver = Callable[[Sequence[Commit]], None]
#: Told how long writes waited for their commit (seconds), and how many
#: writes waited that long (a batch committed together).
CommitTimer = Callable[[float, int], None]


@dataclass(frozen=True, slots=True)
class Fence:
    """The lease a write relies on: the work item's key and the fence we hold."""

    node: str
    visit: int
    fence: int
    owner: str

    def names(self, held: Claim, execution_id: str) -> bool:
        """Whether ``held`` is the visit of ``execution_id`` this fence is on."""
        work = held.work
        key = (work.execution_id, held.execution.id, work.node, work.visit)
        return key == (execution_id, execution_id, self.node, self.visit)


@dataclass(slots=True)
class Txn:
    """One execution's pending changes, built by a plan inside a transaction.

    ``execution`` is the locked row; a plan changes its fields in place —
    but never its ``state``: a plan that changes the state says how with
    :meth:`change_state`, and the store decides what to write
    (:mod:`.snapshots`). ``work``, ``waits`` and ``delegations`` are the
    execution's rows when the caller asked for them (``related=True``), else
    ``None``; ``state`` is the whole current state as JSON when the caller
    asked for it (``state=True``), else ``None``. Read under the execution's
    lock, they are current for the whole transaction.
    """

    execution: ExecutionRecord
    now: float
    is_new: bool = False
    work: list[WorkItem] | None = None
    waits: list[WaitRecord] | None = None
    delegations: list[DelegationRecord] | None = None
    events: list[EventRecord] = field(default_factory=list)
    work_put: list[WorkItem] = field(default_factory=list)
    work_del: list[tuple[str, int]] = field(default_factory=list)
    waits_put: list[WaitRecord] = field(default_factory=list)
    waits_del: list[tuple[str, int]] = field(default_factory=list)
    delegations_put: list[DelegationRecord] = field(default_factory=list)
    #: Conditional updates: the new row, and the ``(state, turn)`` it was read in.
    delegations_set: list[tuple[DelegationRecord, tuple[str, int]]] = field(default_factory=list)
    delegations_del: list[tuple[str, int]] = field(default_factory=list)
    notices: set[str] = field(default_factory=set)
    state: str | None = None
    #: A new execution's ``execution_started`` (seq 1) holds its state as
    #: ``input``: a large one is read from there, not written twice.
    input_logged: bool = False
    #: The change to the state: its patch, the ``state_seq`` it applies
    #: after, and its size in bytes (see :meth:`change_state`).
    state_change: tuple[StatePatch, int, int] | None = None
    #: What the store writes of the state (decided at the commit; see
    #: :mod:`.snapshots`), ``None`` when nothing.
    state_write: StateWrite | None = None
    #: The log restarts at this ``seq``: the events before it are deleted
    #: (an execution that continues as new keeps the log of one run).
    log_from: int | None = None
    #: The execution's status as the transaction found it: a commit that
    #: leaves it writes no status, and so runs none of the triggers that
    #: watch it (store/counts.py, store/listing.py).
    status_was: str = ""
    #: The execution's ``context_id`` and ``metadata`` as the transaction
    #: found them: a commit writes them only when its plan changed them
    #: (nothing does on the hot path; see store/sql.py).
    labels_was: tuple[str | None, str | None] = field(init=False, default=(None, None))

    def __post_init__(self) -> None:
        record = self.execution
        if not self.status_was:
            self.status_was = record.status
        self.labels_was = (record.context_id, record.metadata)

    def change_state(self, patch: StatePatch, seq: int, size: int) -> None:
        """The state changes by ``patch``, logged in the event ``seq`` (its
        ``data`` holds the patch, ``size`` bytes of it): the new
        ``state_seq``. Once per transaction."""
        if self.state_change is not None:
            raise RuntimeError("a transaction changes the state once")
        record = self.execution
        self.state_change = (patch, record.state_seq, size)
        record.state_seq = seq

    def event(
        self,
        kind: str,
        node: str | None = None,
        visit: int | None = None,
        attempt: int | None = None,
        data: str | None = None,
        duration: float | None = None,
    ) -> EventRecord:
        """Append an event; its ``seq`` follows the execution's last one
        (``duration``: see :attr:`EventRecord.duration`)."""
        record = self.execution
        record.last_seq += 1
        ev = EventRecord(
            record.id, record.last_seq, kind, node, visit, attempt, self.now, data, duration
        )
        self.events.append(ev)
        return ev

    def put_work(self, item: WorkItem) -> None:
        """Insert or replace a work row; a ready one wakes workers."""
        self.work_put.append(item)
        if item.lease_owner is None:
            self.notices.add("work")

    def delete_work(self, node: str, visit: int) -> None:
        self.work_del.append((node, visit))

    def put_wait(self, wait: WaitRecord) -> None:
        """Insert or replace a wait row; one with a deadline wakes the
        workers driving its execution (their next timer may be sooner)."""
        self.waits_put.append(wait)
        if wait.deadline is not None:
            self.notices.add("timer")

    def delete_wait(self, node: str, visit: int) -> None:
        self.waits_del.append((node, visit))

    def put_delegation(self, delegation: DelegationRecord) -> None:
        """Insert a new delegation row."""
        self.delegations_put.append(delegation)

    def update_delegation(self, delegation: DelegationRecord, read: DelegationRecord) -> None:
        """Replace the row ``read`` (one of ``self.delegations``) by
        ``delegation``; the store checks the row is still in ``read``'s state
        and turn, and fails the transaction if not."""
        self.delegations_set.append((delegation, (read.state, read.turn)))

    def delete_delegation(self, node: str, visit: int) -> None:
        self.delegations_del.append((node, visit))

    def notify(self, kind: str) -> None:
        self.notices.add(kind)


@dataclass(slots=True)
class StateWrite:
    """What a transaction writes of the state besides its events
    (:mod:`.snapshots` decides). ``row``: the new value of the execution
    row's ``state`` column (None: unchanged); ``table``: a snapshot to keep
    in ``snapshots`` at the record's ``snapshot_seq`` (None: none); ``drop``:
    delete the execution's row of ``snapshots`` (the state is back in its row).
    """

    row: str | None = None
    table: str | None = None
    drop: bool = False


Plan = Callable[[Txn], T]
#: Called once per claimed execution, with the items claimed for it.
ClaimPlan = Callable[[Txn, Sequence[WorkItem]], None]


class Store(Protocol):
    """Persistence for executions. All times are epoch seconds (float)."""

    url: str

    @property
    def live(self) -> Live:
        """The live channel of the text nodes are writing (:mod:`.live`)."""
        ...

    @property
    def slots(self) -> SharedSlots | None:
        """Slots held across every process of this store (:mod:`.slots`);
        None when its executions all run in one process (memory)."""
        ...

    async def open(self) -> None:
        """Connect and create the schema if it is missing."""

    async def close(self) -> None:
        """Release connections; pending writes finish first."""

    async def create(self, execution: ExecutionRecord, plan: Plan[T]) -> T | None:
        """Insert a new execution and run ``plan`` on it in the same transaction.

        Returns the plan's value, or ``None`` (writing nothing) when an
        execution with that id exists already.
        """

    async def apply(
        self,
        execution_id: str,
        plan: Plan[T],
        *,
        fence: Fence | None = None,
        related: bool = False,
        state: bool = False,
        held: Claim | None = None,
    ) -> T:
        """Run ``plan`` on the execution in one transaction (see module doc);
        ``state``: the plan reads the whole state (``txn.state``).

        ``held``: the visit the writer holds under ``fence``, with the
        execution as the writer last claimed or committed it. A store may
        run the plan on a copy of that without reading the row (with
        ``related``: the held visit as the execution's only work row, and no
        waits or delegations) and commit only if it is still so; else it
        runs the plan again, the usual way. Plans are pure, so running one
        twice is safe; the value returned is from the run that committed.

        Raises :class:`~agent_node.errors.UnknownExecution` for an unknown id
        and :class:`~agent_node.errors.Fenced` when ``fence`` is stale.
        """

    async def claim(
        self,
        owner: str,
        *,
        now: float,
        lease_until: float,
        limit: int,
        plan: ClaimPlan,
        execution_ids: Collection[str] | None = None,
    ) -> list[Claim]:
        """Lease up to ``limit`` ready work items (available, and unleased or
        with an expired lease), bumping ``fence`` and ``attempt``; ``plan``
        records their start. Only items of ``execution_ids`` when given."""

    async def extend_leases(self, owner: str, until: float) -> list[tuple[str, str, int]]:
        """Extend every lease ``owner`` holds; returns the ``(execution, node,
        visit)`` keys still held, so the owner learns which it lost."""

    async def expire_leases(self, owners: Collection[str], now: float) -> int:
        """Make the leases of ``owners`` claimable at once (they are dead or
        stopping): their work, and the delegation rows their watchdogs
        claimed (due ``now``); how many."""

    async def lease_owners(self) -> list[str]:
        """Distinct owners of current leases and delegation claims (for
        dead-owner recovery)."""

    async def due_waits(
        self, now: float, limit: int, execution_ids: Collection[str] | None = None
    ) -> list[WaitRecord]:
        """Waits whose deadline has passed."""

    async def next_due(self, execution_ids: Collection[str] | None = None) -> float | None:
        """The earliest time something becomes due: a delayed work item, an
        expiring lease, or a wait deadline."""

    async def get(self, execution_id: str) -> ExecutionRecord | None:
        """The execution with its whole current state (materialized from its
        snapshot and the patches since: :mod:`.snapshots`)."""

    async def list_executions(
        self,
        *,
        status: Collection[str] | None = None,
        workflow_id: str | None = None,
        context_id: str | None = None,
        asking: Asking | None = None,
        caller: str | None = None,
        updated_after: float | None = None,
        limit: int = 100,
        offset: int = 0,
        before: tuple[float, str] | None = None,
    ) -> list[ExecutionRecord]:
        """Newest first (``created_at``, then ``id``), each with its whole
        state (as :meth:`get`). ``before``: only those
        after ``(created_at, id)`` in that order — the last row of the page
        before (keyset paging: any page costs what the first does, unlike
        ``offset``). ``asking``: only executions that ask that of their
        caller (:func:`~agent_node.store.records.asking_of`: ``input`` is
        A2A's INPUT_REQUIRED, ``auth`` AUTH_REQUIRED, ``none`` neither).
        ``caller``: only those whose ``metadata`` names that ``caller`` (the
        identity that created them). ``updated_after``: only those changed
        at or after that time (epoch seconds)."""

    async def count_executions(
        self,
        *,
        status: Collection[str] | None = None,
        workflow_id: str | None = None,
        context_id: str | None = None,
        asking: Asking | None = None,
        caller: str | None = None,
        updated_after: float | None = None,
    ) -> int:
        """How many executions :meth:`list_executions` would list, unpaged."""

    async def prune(self, before: float, limit: int) -> int:
        """Delete up to ``limit`` finished executions last changed before
        ``before``, with their events, waits and push configs (:mod:`.retention`)."""

    async def gauges(self, now: float) -> StoreGauges:
        """What the store holds right now, for metrics (:mod:`.gauges`)."""

    async def events(self, execution_id: str, after: int = 0) -> list[EventRecord]:
        """The log of one execution, in ``seq`` order, from ``after + 1``."""

    async def events_of(
        self, execution_ids: Sequence[str], kinds: Collection[str]
    ) -> dict[str, list[EventRecord]]:
        """The events of ``kinds`` of each execution, in ``seq`` order, in one
        read (a page of A2A tasks renders from a few kinds of a long log)."""

    async def work(self, execution_id: str) -> list[WorkItem]: ...

    async def waits(self, execution_id: str) -> list[WaitRecord]: ...

    # -- push configs: the A2A push outbox (see PushConfigRecord) -------------

    async def put_push_config(self, config: PushConfigRecord) -> None:
        """Insert the config ``(task_id, id)``, or replace it (dropping any lease)."""

    async def push_configs(self, task_id: str) -> list[PushConfigRecord]:
        """The task's push configs, oldest first."""

    async def delete_push_config(self, task_id: str, config_id: str) -> bool:
        """Remove one; False when there was none."""

    async def claim_pushes(
        self, owner: str, *, now: float, lease_until: float, limit: int
    ) -> list[PushClaim]:
        """Lease up to ``limit`` configs with a change to push: not settled,
        due, unleased (or the lease expired), and their task parked or
        terminal with events past the config's cursor."""

    async def release_push(self, owner: str, config: PushConfigRecord) -> bool:
        """Write back a leased config's cursor and retry state and drop the
        lease; False when ``owner`` no longer held it (replaced or deleted)."""

    # -- delegations (rows written by plans through Txn.put_delegation) ------

    async def delegations_of_task(self, remote_task_id: str) -> list[DelegationRecord]:
        """The delegations waiting on a peer's task (a push about it arrived)."""

    async def delegations(self, execution_id: str) -> list[DelegationRecord]:
        """An execution's delegations, oldest first."""

    async def delegation(self, execution_id: str, node: str, visit: int) -> DelegationRecord | None:
        """One delegation row, as it is now."""

    async def claim_delegations(
        self, *, now: float, lease_until: float, limit: int, owner: str | None = None
    ) -> list[DelegationRecord]:
        """Delegations due (``next_poll_at <= now``), in one statement: their
        ``next_poll_at`` moved to ``lease_until`` and ``polls`` counted up,
        so two watchdogs sharing a store never take up one row at the same
        time; the rows as updated. ``owner`` (a lease owner) is recorded as
        the claimer, so that :meth:`expire_leases` frees the rows of a
        watchdog that died holding them."""

    async def reschedule_delegation(
        self, delegation: DelegationRecord, next_poll_at: float, error: str | None = None
    ) -> bool:
        """Set ``next_poll_at`` and ``last_error`` of the row if it is still in
        ``delegation``'s state and turn; False when it moved on (or is gone)."""

    async def next_delegation_at(self) -> float | None:
        """When the next row not taken up since its last move (``polls`` 0:
        its first poll, after the delegate node's ``poll``) is due, maybe in
        the past; None when there is none. A watchdog wakes for these on
        time; rows backed off or polled before wait for its next tick."""

    async def wake_delegations(self, peer: str, state: str, now: float, within: float) -> int:
        """Make rows of ``peer`` in ``state`` that were backed off after a
        failure (``last_error``) to a time before ``within``, due ``now``
        (the peer answers again); how many. Rows taken up (leased past
        ``within``) are left alone: they are being worked on."""

    async def drop_delegation(self, delegation: DelegationRecord) -> bool:
        """Delete the row if it is still in ``delegation``'s state and turn."""

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` on every notification; returns the unsubscribe."""

    def observe(
        self, observer: CommitObserver, commit_timer: CommitTimer | None = None
    ) -> Callable[[], None]:
        """Tell ``observer`` what each commit of this process that wrote an
        execution wrote, a few commits at a time, soon after (:mod:`.notify`),
        and ``commit_timer`` how long writes waited for their commit, as they
        commit. Returns the way to stop (``observer`` hears what was
        committed before it)."""

    def tell_observers(self) -> None:
        """Tell the observers what is held for them now (:mod:`.notify`)."""

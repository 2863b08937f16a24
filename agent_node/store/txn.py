"""A transaction's write set: what a plan (see :mod:`.base`) records while
the store holds its execution's lock — the events it appends, the rows it
puts and deletes, the state's change — and the lease it relies on
(:class:`Fence`). The stores write a :class:`Txn` as one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agent_node.store.patches import StatePatch
from agent_node.store.records import (
    Claim,
    DelegationRecord,
    EventRecord,
    ExecutionRecord,
    WaitRecord,
    WorkItem,
)

__all__ = ["Fence", "StateWrite", "Txn"]


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

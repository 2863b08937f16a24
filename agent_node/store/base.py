"""The store protocol: what the engine needs from persistence, and nothing more.

Three implementations pass one shared test suite: :mod:`.memory` (fastest,
nothing durable), :mod:`.sqlite` (embedded default) and :mod:`.postgres`
(many worker processes and nodes share one database).

How writes work. Every change to an execution happens inside **one
transaction per execution**, described by a *plan*: a plain function the
engine passes in. The store locks the execution's row, hands the plan a
:class:`~.txn.Txn` holding the row as it is now (and, when asked, the execution's
work and wait rows), lets the plan record what must change, then writes it
all and commits. A plan that raises leaves nothing behind. So the rules of
the engine (which events, which next node, which status) live once, in the
engine; a store only knows rows.

Fencing. A write from a worker that runs a node names the lease it holds
(:class:`~.txn.Fence`). The store checks it *first* — before locking the execution
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
from typing import Protocol, TypeVar

from agent_node.store.gauges import StoreGauges
from agent_node.store.live import Live
from agent_node.store.records import (
    Asking,
    Claim,
    DelegationRecord,
    EventRecord,
    ExecutionRecord,
    PushClaim,
    PushConfigRecord,
    VisitKey,
    WaitRecord,
    WorkItem,
)
from agent_node.store.slots import SharedSlots
from agent_node.store.stranded import Key, StrandedPage
from agent_node.store.txn import Fence, Txn

__all__ = [
    "ClaimPlan",
    "Commit",
    "CommitObserver",
    "CommitTimer",
    "Listener",
    "Plan",
    "Store",
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

    async def schema_version(self) -> int | None:
        """The schema version the store holds now: above this release's
        :data:`~.schema.SCHEMA_VERSION` once a newer agent-node upgraded it
        since it was opened (:mod:`agent_node.engine.schema_guard`); None for
        a store without one (memory). One primary-key read."""

    async def store_id(self) -> str:
        """The store's own random id, the same for every process that serves
        it (:mod:`.store_id`): written by the first to ask, then read (and
        kept by this object)."""

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

    async def extend_leases(self, owner: str, until: float) -> list[VisitKey]:
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

    async def next_due_of(self, execution_ids: Collection[str]) -> dict[str, float]:
        """When something of each of ``execution_ids`` is next due, in one
        read: as :meth:`next_due` has it, ``inf`` when only news moves it (a
        wait for an event). One with neither work nor waits (it ended, or
        is unknown) is not in the answer."""

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
        id_prefix: str | None = None,
        limit: int = 100,
        offset: int = 0,
        before: tuple[float, str] | None = None,
        state: bool = True,
    ) -> list[ExecutionRecord]:
        """Newest first (``created_at``, then ``id``), each with its whole
        state (as :meth:`get`), or ``""`` for it when not ``state`` (a list
        that shows no state: a large one is rebuilt from its snapshot and
        patches, ~3 ms a megabyte). ``before``: only those
        after ``(created_at, id)`` in that order — the last row of the page
        before (keyset paging: any page costs what the first does, unlike
        ``offset``). ``asking``: only executions that ask that of their
        caller (:func:`~agent_node.store.records.asking_of`: ``input`` is
        A2A's INPUT_REQUIRED, ``auth`` AUTH_REQUIRED, ``none`` neither).
        ``caller``: only those whose ``metadata`` names that ``caller`` (the
        identity that created them). ``updated_after``: only those changed
        at or after that time (epoch seconds). ``id_prefix``: only those
        whose id starts with it (on an index: a search by the start of an
        id costs what the ids that match cost, not the store)."""

    async def count_executions(
        self,
        *,
        status: Collection[str] | None = None,
        workflow_id: str | None = None,
        context_id: str | None = None,
        asking: Asking | None = None,
        caller: str | None = None,
        updated_after: float | None = None,
        id_prefix: str | None = None,
    ) -> int:
        """How many executions :meth:`list_executions` would list, unpaged."""

    async def count_open(self, caller: str, limit: int) -> int:
        """How many executions ``caller`` created are not finished (pending,
        running or waiting), counted up to ``limit``: on an index of those
        alone, so the finished ones and other callers' cost nothing."""

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

    async def put_push_config(self, config: PushConfigRecord, limit: int | None = None) -> bool:
        """Insert the config ``(task_id, id)``, or replace it (dropping any
        lease); False, writing nothing, when it is new and its task has
        ``limit`` configs already. The count and the write are one step:
        two adds racing for a task's last place never both get it."""

    async def take_back_push_config(
        self, put: PushConfigRecord, previous: PushConfigRecord | None
    ) -> bool:
        """Undo :meth:`put_push_config` of ``put`` (its request was refused):
        if the task's config of that id is still ``put`` (its ``created_at``
        and ``config``), put ``previous`` back in its place, or remove it
        when ``previous`` is None, in one step. False, writing nothing, when
        another write replaced or removed it since: that one stands."""

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

    async def stranded(self, status: str, after: Key | None, limit: int) -> StrandedPage:
        """Of the first ``limit`` executions in ``status`` after ``after``
        (``(created_at, id)``, oldest first), those with no work, wait or
        delegation row: nothing will move them (:mod:`.stranded`)."""

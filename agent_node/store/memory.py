"""The in-memory store: the same contract as the SQL stores, nothing durable.

Every method runs without awaiting anything, so each one is atomic on the
event loop; a plan works on copies and its changes land only if it returns.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import replace
from typing import Any, TypeVar

from agent_node.errors import Fenced, StoreError, UnknownExecution
from agent_node.store.base import ClaimPlan, CommitObserver, Fence, Listener, Plan, Txn
from agent_node.store.gauges import StoreGauges, count_by
from agent_node.store.live import Live
from agent_node.store.notify import Notifier
from agent_node.store.patches import fold
from agent_node.store.records import (
    TERMINAL,
    Asking,
    Claim,
    DelegationRecord,
    EventRecord,
    ExecutionRecord,
    PushClaim,
    PushConfigRecord,
    WaitRecord,
    WorkItem,
    asking_of,
)
from agent_node.store.slots import SharedSlots
from agent_node.store.snapshots import base_of, finish_fold, settle

__all__ = ["MemoryStore"]

T = TypeVar("T")
_Key = tuple[str, int]


class MemoryStore:
    def __init__(self, url: str = "memory://") -> None:
        self.url = url
        self._executions: dict[str, ExecutionRecord] = {}
        self._events: dict[str, list[EventRecord]] = {}
        #: Large states (table ``snapshots``): ``(seq, state)`` per execution.
        self._snapshots: dict[str, tuple[int, str]] = {}
        self._work: dict[str, dict[_Key, WorkItem]] = {}
        self._waits: dict[str, dict[_Key, WaitRecord]] = {}
        self._pushes: dict[tuple[str, str], PushConfigRecord] = {}
        self._delegations: dict[tuple[str, str, int], DelegationRecord] = {}
        #: Who claimed each delegation row last (``claimed_by``).
        self._claimed: dict[tuple[str, str, int], str] = {}
        self._notifier = Notifier()
        #: Chunks of the text nodes are writing (:mod:`.live`), in this process.
        self.live = Live()
        #: One process runs every execution: its own slots suffice.
        self.slots: SharedSlots | None = None

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        return self._notifier.subscribe(listener)

    def observe(
        self, observer: CommitObserver, commit_timer: Callable[[float], None] | None = None
    ) -> Callable[[], None]:
        return self._notifier.observe(observer, commit_timer)

    # -- writes --------------------------------------------------------------

    async def create(self, execution: ExecutionRecord, plan: Plan[T]) -> T | None:
        if execution.id in self._executions:
            return None
        txn = Txn(replace(execution), execution.created_at, is_new=True, work=[], waits=[])
        result = plan(txn)
        self._flush(txn)
        return result

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
        if fence is not None:
            self._check_fence(execution_id, fence)
        current = self._executions.get(execution_id)
        if current is None:
            raise UnknownExecution(execution_id)
        txn = Txn(replace(current), time.time(), work=None, waits=None)
        if related:
            txn.work = [replace(w) for w in self._work.get(execution_id, {}).values()]
            txn.waits = [replace(w) for w in self._waits.get(execution_id, {}).values()]
            txn.delegations = [
                replace(d) for d in self._delegations.values() if d.execution_id == execution_id
            ]
        if state:
            txn.state = self._state_of(current)
        result = plan(txn)
        self._flush(txn)
        return result

    def _check_fence(self, execution_id: str, fence: Fence) -> None:
        item = self._work.get(execution_id, {}).get((fence.node, fence.visit))
        if item is None or item.fence != fence.fence or item.lease_owner != fence.owner:
            raise Fenced(f"lease on {execution_id}/{fence.node}/{fence.visit} was taken over")

    def _flush(self, txn: Txn) -> None:
        for delegation, (state, turn) in txn.delegations_set:  # checked before any write
            held = self._delegations.get(
                (delegation.execution_id, delegation.node, delegation.visit)
            )
            if held is None or (held.state, held.turn) != (state, turn):
                raise StoreError(f"delegation {delegation.key} changed under a transaction")
        self._keep_state(txn)
        record = txn.execution
        record.updated_at = txn.now
        self._executions[record.id] = record
        log = self._events.setdefault(record.id, [])
        log.extend(txn.events)
        if txn.log_from is not None:
            log[:] = [e for e in log if e.seq >= txn.log_from]
        work = self._work.setdefault(record.id, {})
        for key in txn.work_del:
            work.pop(key, None)
        for item in txn.work_put:
            work[(item.node, item.visit)] = item
        waits = self._waits.setdefault(record.id, {})
        for key in txn.waits_del:
            waits.pop(key, None)
        for wait in txn.waits_put:
            waits[(wait.node, wait.visit)] = wait
        for node, visit in txn.delegations_del:
            self._delegations.pop((record.id, node, visit), None)
            self._claimed.pop((record.id, node, visit), None)
        for delegation in [*txn.delegations_put, *(d for d, _ in txn.delegations_set)]:
            at = (delegation.execution_id, delegation.node, delegation.visit)
            self._delegations[at] = replace(delegation)
        if not work:
            del self._work[record.id]
        if not waits:
            del self._waits[record.id]
        for kind in txn.notices:
            self._notifier.publish(kind, record.id)
        if self._notifier.observed:
            self._notifier.committed([txn])

    def _keep_state(self, txn: Txn) -> None:
        """Write what ``txn`` changed of the state (:mod:`.snapshots`)."""
        record = txn.execution
        due = settle(txn)
        if due is not None:
            finish_fold(txn, *self._snapshot(record.id, due.snapshot_seq, due.until))
        write = txn.state_write
        if write is not None and write.table is not None:
            self._snapshots[record.id] = (record.snapshot_seq, write.table)
        elif write is not None and write.drop:
            self._snapshots.pop(record.id, None)

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
        by_execution: dict[str, list[WorkItem]] = {}
        found = 0
        for execution_id in self._candidates(execution_ids):
            for item in self._work.get(execution_id, {}).values():
                if found < limit and _ready(item, now):
                    by_execution.setdefault(execution_id, []).append(item)
                    found += 1
        claims: list[Claim] = []
        for execution_id, items in by_execution.items():
            leased = []
            for item in items:
                item.lease_owner, item.lease_expires_at = owner, lease_until
                item.fence += 1
                item.attempt += 1
                leased.append(replace(item))
            txn = Txn(replace(self._executions[execution_id]), now)
            plan(txn, leased)
            self._flush(txn)
            claims.extend(Claim(item, replace(txn.execution)) for item in leased)
        return claims

    def _candidates(self, execution_ids: Collection[str] | None) -> list[str]:
        if execution_ids is None:
            return list(self._work)
        return [e for e in execution_ids if e in self._work]

    async def extend_leases(self, owner: str, until: float) -> list[tuple[str, str, int]]:
        held = []
        for items in self._work.values():
            for item in items.values():
                if item.lease_owner == owner:
                    item.lease_expires_at = until
                    held.append((item.execution_id, item.node, item.visit))
        return held

    async def expire_leases(self, owners: Collection[str], now: float) -> int:
        count = 0
        for items in self._work.values():
            for item in items.values():
                if item.lease_owner in owners:
                    item.lease_expires_at = now
                    count += 1
        if count:
            for execution_id in list(self._work):
                self._notifier.publish("work", execution_id)
        freed = [at for at, owner in self._claimed.items() if owner in owners]
        for at in freed:
            del self._claimed[at]
            delegation = self._delegations.get(at)
            if delegation is not None:
                delegation.next_poll_at = min(delegation.next_poll_at, now)
                self._notifier.publish("delegation", delegation.execution_id)
        owed = [c for c in self._pushes.values() if c.lease_owner in owners]
        for config in owed:
            config.lease_expires_at = now
        return count + len(freed) + len(owed)

    async def lease_owners(self) -> list[str]:
        held = {i.lease_owner for w in self._work.values() for i in w.values() if i.lease_owner}
        pushing = {c.lease_owner for c in self._pushes.values() if c.lease_owner}
        return sorted(held | set(self._claimed.values()) | pushing)

    # -- push configs --------------------------------------------------------

    async def put_push_config(self, config: PushConfigRecord) -> None:
        self._pushes[(config.task_id, config.id)] = replace(config)

    async def push_configs(self, task_id: str) -> list[PushConfigRecord]:
        found = [replace(c) for c in self._pushes.values() if c.task_id == task_id]
        return sorted(found, key=lambda c: (c.created_at, c.id))

    async def delete_push_config(self, task_id: str, config_id: str) -> bool:
        return self._pushes.pop((task_id, config_id), None) is not None

    async def claim_pushes(
        self, owner: str, *, now: float, lease_until: float, limit: int
    ) -> list[PushClaim]:
        due: list[PushClaim] = []
        for config in sorted(self._pushes.values(), key=lambda c: c.next_attempt_at):
            task = self._executions.get(config.task_id)
            if len(due) == limit:
                break
            if task is None or config.settled or config.next_attempt_at > now:
                continue
            if config.lease_owner is not None and (config.lease_expires_at or 0.0) >= now:
                continue
            if task.last_seq > config.pushed_seq and task.status not in ("pending", "running"):
                config.lease_owner, config.lease_expires_at = owner, lease_until
                due.append(PushClaim(replace(config), task.last_seq, task.status))
        return due

    async def release_push(self, owner: str, config: PushConfigRecord) -> bool:
        held = self._pushes.get((config.task_id, config.id))
        if held is None or held.lease_owner != owner:
            return False
        self._pushes[(config.task_id, config.id)] = replace(
            config, lease_owner=None, lease_expires_at=None
        )
        return True

    # -- delegations ---------------------------------------------------------

    async def delegations_of_task(self, remote_task_id: str) -> list[DelegationRecord]:
        return [
            replace(d) for d in self._delegations.values() if d.remote_task_id == remote_task_id
        ]

    async def delegations(self, execution_id: str) -> list[DelegationRecord]:
        found = [replace(d) for d in self._delegations.values() if d.execution_id == execution_id]
        return sorted(found, key=lambda d: d.sent_at)

    async def delegation(self, execution_id: str, node: str, visit: int) -> DelegationRecord | None:
        held = self._delegations.get((execution_id, node, visit))
        return replace(held) if held is not None else None

    async def claim_delegations(
        self, *, now: float, lease_until: float, limit: int, owner: str | None = None
    ) -> list[DelegationRecord]:
        due = sorted(
            (d for d in self._delegations.values() if d.next_poll_at <= now),
            key=lambda d: d.next_poll_at,
        )[:limit]
        for delegation in due:
            delegation.next_poll_at = lease_until
            delegation.polls += 1
            at = (delegation.execution_id, delegation.node, delegation.visit)
            if owner is None:
                self._claimed.pop(at, None)
            else:
                self._claimed[at] = owner
        return [replace(d) for d in due]

    async def reschedule_delegation(
        self, delegation: DelegationRecord, next_poll_at: float, error: str | None = None
    ) -> bool:
        held = self._held(delegation)
        if held is not None:
            held.next_poll_at, held.last_error = next_poll_at, error
        return held is not None

    async def next_delegation_at(self) -> float | None:
        firsts = (d.next_poll_at for d in self._delegations.values() if d.polls == 0)
        return min(firsts, default=None)

    async def wake_delegations(self, peer: str, state: str, now: float, within: float) -> int:
        woken = [
            d
            for d in self._delegations.values()
            if d.peer == peer
            and d.state == state
            and now < d.next_poll_at <= within
            and d.last_error
        ]
        for delegation in woken:
            delegation.next_poll_at = now
        return len(woken)

    async def drop_delegation(self, delegation: DelegationRecord) -> bool:
        held = self._held(delegation)
        if held is not None:
            del self._delegations[(held.execution_id, held.node, held.visit)]
            self._claimed.pop((held.execution_id, held.node, held.visit), None)
        return held is not None

    def _held(self, delegation: DelegationRecord) -> DelegationRecord | None:
        """The row of ``delegation`` if it is still in its state and turn."""
        d = delegation
        held = self._delegations.get((d.execution_id, d.node, d.visit))
        if held is None or (held.state, held.turn) != (d.state, d.turn):
            return None
        return held

    # -- reads ---------------------------------------------------------------

    async def due_waits(
        self, now: float, limit: int, execution_ids: Collection[str] | None = None
    ) -> list[WaitRecord]:
        source = (
            self._waits
            if execution_ids is None
            else {e: self._waits[e] for e in execution_ids if e in self._waits}
        )
        due = [
            replace(w)
            for waits in source.values()
            for w in waits.values()
            if w.deadline is not None and w.deadline <= now
        ]
        return sorted(due, key=lambda w: w.deadline or 0.0)[:limit]

    async def next_due(self, execution_ids: Collection[str] | None = None) -> float | None:
        times: list[float] = []
        for execution_id in self._candidates(execution_ids):
            for item in self._work[execution_id].values():
                times.append(
                    item.lease_expires_at or 0.0 if item.lease_owner else item.available_at
                )
        ids = (
            self._waits if execution_ids is None else [e for e in execution_ids if e in self._waits]
        )
        times.extend(
            w.deadline for e in ids for w in self._waits[e].values() if w.deadline is not None
        )
        return min(times, default=None)

    async def get(self, execution_id: str) -> ExecutionRecord | None:
        record = self._executions.get(execution_id)
        return self._with_state(record) if record else None

    def _with_state(self, record: ExecutionRecord) -> ExecutionRecord:
        return replace(record, state=self._state_of(record))

    def _state_of(self, record: ExecutionRecord) -> str:
        """The execution's whole current state (:mod:`.snapshots`)."""
        if record.state:
            return record.state
        return fold(*self._snapshot(record.id, record.snapshot_seq, record.state_seq))

    def _snapshot(
        self, execution_id: str, since: int, until: int
    ) -> tuple[dict[str, Any], list[str | None]]:
        """The base at ``since`` and the patches (event data) up to ``until``."""
        # The log of an execution is its events in seq order, without gaps,
        # from its first kept one (1, or where it continued as new): a slice.
        log = self._events.get(execution_id, [])
        held = self._snapshots.get(execution_id)
        text = held[1] if held is not None and held[0] == since else None
        started = log[0].data if text is None and since == 0 and log else None
        first = log[0].seq if log else 1
        window = log[max(0, since + 1 - first) : max(0, until + 1 - first)]
        patches = [e.data for e in window if e.kind == "node_completed"]
        return base_of(text, started), patches

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
        rows = self._matching(status, workflow_id, context_id, asking, caller, updated_after)
        if before is not None:
            rows = [r for r in rows if (r.created_at, r.id) < before]
        rows.sort(key=lambda r: (r.created_at, r.id), reverse=True)
        return [self._with_state(r) for r in rows[offset : offset + limit]]

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
        return len(self._matching(status, workflow_id, context_id, asking, caller, updated_after))

    def _matching(
        self,
        status: Collection[str] | None,
        workflow_id: str | None,
        context_id: str | None,
        asking: Asking | None,
        caller: str | None,
        updated_after: float | None,
    ) -> list[ExecutionRecord]:
        return [
            r
            for r in self._executions.values()
            if (status is None or r.status in status)
            and (workflow_id is None or r.workflow_id == workflow_id)
            and (context_id is None or r.context_id == context_id)
            and (asking is None or self._asking(r) == asking)
            and (caller is None or r.caller == caller)
            and (updated_after is None or r.updated_at >= updated_after)
        ]

    def _asking(self, record: ExecutionRecord) -> Asking:
        waits = self._waits.get(record.id, {}).values()
        return asking_of(record.status, {w.kind for w in waits})

    async def prune(self, before: float, limit: int) -> int:
        owed = {p.task_id for p in self._pushes.values() if not p.settled}
        held = {d.execution_id for d in self._delegations.values()}
        done = sorted(
            (
                r
                for r in self._executions.values()
                if r.status in TERMINAL
                and r.updated_at < before
                and r.id not in owed
                and r.id not in held
            ),
            key=lambda r: r.created_at,
        )[:limit]
        for record in done:
            for table in (
                self._executions,
                self._events,
                self._snapshots,
                self._work,
                self._waits,
            ):
                table.pop(record.id, None)
            for key in [k for k in self._pushes if k[0] == record.id]:
                del self._pushes[key]
        return len(done)

    async def gauges(self, now: float) -> StoreGauges:
        work = [w for items in self._work.values() for w in items.values()]
        ready = [w.available_at for w in work if w.lease_owner is None and w.available_at <= now]
        parked = ("waiting", *TERMINAL)
        due = [
            (p, e)
            for p in self._pushes.values()
            if not p.settled
            and (e := self._executions.get(p.task_id)) is not None
            and e.last_seq > p.pushed_seq
            and e.status in parked
        ]
        return StoreGauges(
            ready=len(ready),
            oldest_ready_at=min(ready, default=None),
            leased=len(work) - sum(w.lease_owner is None for w in work),
            executions=count_by(
                (e for e in self._executions.values() if e.status not in TERMINAL),
                lambda e: e.status,
            ),
            waits=count_by((w for ws in self._waits.values() for w in ws.values()), _kind),
            delegations=count_by(self._delegations.values(), lambda d: d.state),
            pushes_due=len(due),
            pushes_failing=sum(p.last_error is not None for p, _ in due),
            oldest_push_at=min((e.updated_at for _, e in due), default=None),
        )

    async def events(self, execution_id: str, after: int = 0) -> list[EventRecord]:
        return [replace(e) for e in self._events.get(execution_id, ()) if e.seq > after]

    async def events_of(
        self, execution_ids: Sequence[str], kinds: Collection[str]
    ) -> dict[str, list[EventRecord]]:
        return {
            execution_id: [
                replace(e) for e in self._events.get(execution_id, ()) if e.kind in kinds
            ]
            for execution_id in execution_ids
        }

    async def work(self, execution_id: str) -> list[WorkItem]:
        return [replace(w) for w in self._work.get(execution_id, {}).values()]

    async def waits(self, execution_id: str) -> list[WaitRecord]:
        return [replace(w) for w in self._waits.get(execution_id, {}).values()]


def _ready(item: WorkItem, now: float) -> bool:
    if item.available_at > now:
        return False
    return item.lease_owner is None or (item.lease_expires_at or 0.0) < now


def _kind(wait: WaitRecord) -> str:
    return wait.kind

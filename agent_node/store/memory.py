"""The in-memory store: the same contract as the SQL stores, nothing durable.

Every method runs without awaiting anything, so each one is atomic on the
event loop; a plan works on copies and its changes land only if it returns.
The rows and how a transaction lands in them are :mod:`.memory_tables`;
push configs and delegations, :mod:`.memory_outbox`; this module holds the
writes of executions, work and leases, and the reads.
"""

from __future__ import annotations

import math
import time
from collections.abc import Collection, Sequence
from typing import TypeVar

from agent_node.errors import UnknownExecution
from agent_node.store.base import ClaimPlan, Plan
from agent_node.store.gauges import StoreGauges, count_by
from agent_node.store.live import Live
from agent_node.store.memory_outbox import MemoryOutbox
from agent_node.store.notify import Notifying
from agent_node.store.records import (
    TERMINAL,
    Asking,
    Claim,
    EventRecord,
    ExecutionRecord,
    VisitKey,
    WaitRecord,
    WorkItem,
    asking_of,
    copied,
)
from agent_node.store.slots import SharedSlots
from agent_node.store.store_id import new_store_id
from agent_node.store.stranded import Key, StrandedPage
from agent_node.store.txn import Fence, Txn

__all__ = ["MemoryStore"]

T = TypeVar("T")


class MemoryStore(MemoryOutbox, Notifying):
    def __init__(self, url: str = "memory://") -> None:
        super().__init__()
        self.url = url
        #: Chunks of the text nodes are writing (:mod:`.live`), in this process.
        self.live = Live()
        #: One process runs every execution: its own slots suffice.
        self.slots: SharedSlots | None = None
        #: This object's: no other serves its executions.
        self._store_id = new_store_id()

    async def open(self) -> None:
        return None

    async def schema_version(self) -> int | None:
        return None  # no schema: no other process can upgrade it

    async def store_id(self) -> str:
        return self._store_id

    async def close(self) -> None:
        return None

    # -- writes --------------------------------------------------------------

    async def create(self, execution: ExecutionRecord, plan: Plan[T]) -> T | None:
        if execution.id in self._executions:
            return None
        txn = Txn(copied(execution), execution.created_at, is_new=True, work=[], waits=[])
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
        txn = Txn(copied(current), time.time(), work=None, waits=None)
        if related:
            txn.work = [copied(w) for w in self._work.get(execution_id, {}).values()]
            txn.waits = [copied(w) for w in self._waits.get(execution_id, {}).values()]
            txn.delegations = [
                copied(d) for d in self._delegations.values() if d.execution_id == execution_id
            ]
        if state:
            txn.state = self._state_of(current)
        result = plan(txn)
        self._flush(txn)
        return result

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
                leased.append(copied(item))
            txn = Txn(copied(self._executions[execution_id]), now)
            plan(txn, leased)
            self._flush(txn)
            claims.extend(Claim(item, copied(txn.execution)) for item in leased)
        return claims

    def _candidates(self, execution_ids: Collection[str] | None) -> list[str]:
        if execution_ids is None:
            return list(self._work)
        return [e for e in execution_ids if e in self._work]

    async def extend_leases(self, owner: str, until: float) -> list[VisitKey]:
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
                delegation.claimed_at = None
                self._notifier.publish("delegation", delegation.execution_id)
        owed = [c for c in self._pushes.values() if c.lease_owner in owners]
        for config in owed:
            config.lease_expires_at = now
        return count + len(freed) + len(owed)

    async def lease_owners(self) -> list[str]:
        held = {i.lease_owner for w in self._work.values() for i in w.values() if i.lease_owner}
        pushing = {c.lease_owner for c in self._pushes.values() if c.lease_owner}
        return sorted(held | set(self._claimed.values()) | pushing)

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
            copied(w)
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

    async def next_due_of(self, execution_ids: Collection[str]) -> dict[str, float]:
        dues: dict[str, float] = {}
        for execution_id in execution_ids:
            work, waits = self._work.get(execution_id), self._waits.get(execution_id)
            if not work and not waits:
                continue
            due = math.inf
            for i in work.values() if work else ():
                due = min(due, i.lease_expires_at or 0.0 if i.lease_owner else i.available_at)
            for w in waits.values() if waits else ():
                if w.deadline is not None:
                    due = min(due, w.deadline)
            dues[execution_id] = due
        return dues

    async def get(self, execution_id: str) -> ExecutionRecord | None:
        record = self._executions.get(execution_id)
        return self._with_state(record) if record else None

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
        rows = self._matching(
            status, workflow_id, context_id, asking, caller, updated_after, id_prefix
        )
        if before is not None:
            rows = [r for r in rows if (r.created_at, r.id) < before]
        rows.sort(key=lambda r: (r.created_at, r.id), reverse=True)
        shown = rows[offset : offset + limit]
        return [self._with_state(r) for r in shown] if state else [_stateless(r) for r in shown]

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
        return len(
            self._matching(
                status, workflow_id, context_id, asking, caller, updated_after, id_prefix
            )
        )

    async def count_open(self, caller: str, limit: int) -> int:
        return min(len(self._open.get(caller, ())), limit)

    def _matching(
        self,
        status: Collection[str] | None,
        workflow_id: str | None,
        context_id: str | None,
        asking: Asking | None,
        caller: str | None,
        updated_after: float | None,
        id_prefix: str | None,
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
            and (not id_prefix or r.id.startswith(id_prefix))
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
        ready = [
            w.available_at if w.lease_owner is None else (w.lease_expires_at or 0.0)
            for w in work
            if w.available_at <= now
            and (w.lease_owner is None or (w.lease_expires_at or 0.0) < now)
        ]
        leased = sum(w.lease_owner is not None and (w.lease_expires_at or 0.0) >= now for w in work)
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
            leased=leased,
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
        return [copied(e) for e in self._events.get(execution_id, ()) if e.seq > after]

    async def events_of(
        self, execution_ids: Sequence[str], kinds: Collection[str]
    ) -> dict[str, list[EventRecord]]:
        return {
            execution_id: [copied(e) for e in self._events.get(execution_id, ()) if e.kind in kinds]
            for execution_id in execution_ids
        }

    async def work(self, execution_id: str) -> list[WorkItem]:
        return [copied(w) for w in self._work.get(execution_id, {}).values()]

    async def waits(self, execution_id: str) -> list[WaitRecord]:
        return [copied(w) for w in self._waits.get(execution_id, {}).values()]

    async def stranded(self, status: str, after: Key | None, limit: int) -> StrandedPage:
        rows = sorted(
            (r.created_at, r.id)
            for r in self._executions.values()
            if r.status == status and (after is None or (r.created_at, r.id) > after)
        )[:limit]
        held = {d.execution_id for d in self._delegations.values()}
        ids = [
            i for _, i in rows if not self._work.get(i) and not self._waits.get(i) and i not in held
        ]
        return StrandedPage(ids, rows[-1] if len(rows) >= limit else None)


def _ready(item: WorkItem, now: float) -> bool:
    if item.available_at > now:
        return False
    return item.lease_owner is None or (item.lease_expires_at or 0.0) < now


def _kind(wait: WaitRecord) -> str:
    return wait.kind


def _stateless(record: ExecutionRecord) -> ExecutionRecord:
    found = copied(record)
    found.state = ""
    return found

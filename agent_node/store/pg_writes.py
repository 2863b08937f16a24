"""PostgreSQL: the store's writes — the hot path first.

A node's commit (``apply`` with ``held``: what its runner holds) and a new
execution (``create``) are planned without reading anything and handed to
the group commit (:mod:`.pg_group`) as compact write sets with a gate
(:mod:`.pg_write`): one statement, one round trip, shared with every commit
of the process at that moment, committing by itself. What that cannot
carry — a plan that needs the state or rows the writer does not hold, a
write set with waits, delegations or a snapshot, a row another writer moved
on — runs in a transaction that locks the lease and the execution row in
one statement and writes compact sets in one more (:mod:`.pg_txn`). A claim
of many visits is five round trips whatever their number: ``BEGIN``, the
claim, the lock of their executions, their writes, ``COMMIT``.

Why the plan runs twice when the row moved on: plans are pure functions of
what they are given, so running one again on the current row is exactly
what a locked run would have done first; the value returned is the one of
the run that committed.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence
from typing import Any, TypeVar

import asyncpg

from agent_node.errors import StoreError
from agent_node.store.base import ClaimPlan, Plan
from agent_node.store.held import plan_held
from agent_node.store.pg_conn import keep_session, retried
from agent_node.store.pg_group import GroupCommit
from agent_node.store.pg_outbox import PgOutbox
from agent_node.store.pg_txn import (
    flush_txn,
    lock_many_txn,
    lock_txn,
    related_txn,
    settle_txn,
    state_txn,
    write_many_txn,
)
from agent_node.store.pg_write import Gate, compact, write_sets
from agent_node.store.records import Claim, ExecutionRecord, WorkItem
from agent_node.store.snapshots import settle
from agent_node.store.sql import WORK_COLUMNS
from agent_node.store.sql_rows import work_from_row
from agent_node.store.txn import Fence, Txn

__all__ = ["PgWrites"]

T = TypeVar("T")

_CLAIM = (
    "UPDATE work w SET lease_owner = $1, lease_expires_at = $2, fence = w.fence + 1,"
    " attempt = w.attempt + 1 FROM (SELECT execution_id, node, visit FROM work"
    " WHERE available_at <= $3 AND (lease_owner IS NULL OR lease_expires_at < $3){scope}"
    " ORDER BY available_at LIMIT $4 FOR UPDATE SKIP LOCKED) s"
    " WHERE w.execution_id = s.execution_id AND w.node = s.node AND w.visit = s.visit"
    " RETURNING " + ", ".join(f"w.{c.strip()}" for c in WORK_COLUMNS.split(","))
)


class PgWrites(PgOutbox):
    """The writes of :class:`~.postgres.PostgresStore` (module doc)."""

    def __init__(self, url: str, dsn: str, pool_size: int) -> None:
        super().__init__(url, dsn, pool_size)
        #: The group commit (its counters say how well commits group).
        self.group = GroupCommit(self._write_batch)
        #: The group commit's own connections (one per lane): its statement
        #: runs on a generic plan, which PostgreSQL plans once per connection
        #: — custom plans cost more than the statement's own work (~0.5 ms
        #: against ~0.2 ms). The store's other statements keep custom plans.
        self._hot: asyncpg.Pool | None = None

    async def _open_writes(self) -> None:
        self._hot = await asyncpg.create_pool(
            self.dsn,
            min_size=1,
            max_size=self.group.lanes,
            command_timeout=60,
            reset=keep_session,
            server_settings={"plan_cache_mode": "force_generic_plan"},
        )

    async def _close_writes(self) -> None:
        """Finish the commits handed over, then close their connections."""
        hot, self._hot = self._hot, None
        if hot is not None:
            await self.group.drain()
            await hot.close()

    async def create(self, execution: ExecutionRecord, plan: Plan[T]) -> T | None:
        txn = _new_txn(execution)
        result = plan(txn)
        if settle(txn) is None and compact(txn):
            return result if await self._group_commit(txn, None) else None
        written: list[Txn] = []

        async def job(conn: asyncpg.Connection) -> T | None:
            written.clear()
            exists = await conn.fetchval("SELECT 1 FROM executions WHERE id = $1", execution.id)
            if exists:
                return None
            txn = _new_txn(execution)
            result = plan(txn)
            await settle_txn(conn, txn)
            await flush_txn(conn, txn, None)
            written.append(txn)
            return result

        return await self._transact(job, written)

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
        if held is not None and fence is not None and not state:
            committed = await self._apply_held(execution_id, plan, fence, related, held)
            if committed is not None:
                return committed[0]
        written: list[Txn] = []

        async def job(conn: asyncpg.Connection) -> T:
            written.clear()
            record = await lock_txn(conn, execution_id, fence)
            gate = Gate(record.last_seq, record.updated_at)
            txn = Txn(record, time.time())
            if related:
                await related_txn(conn, txn)
            if state:
                txn.state = await state_txn(conn, txn.execution)
            result = plan(txn)
            await settle_txn(conn, txn)
            await flush_txn(conn, txn, gate)
            written.append(txn)
            return result

        return await self._transact(job, written)

    async def _apply_held(
        self, execution_id: str, plan: Plan[T], fence: Fence, related: bool, held: Claim
    ) -> tuple[T] | None:
        """Run ``plan`` on what the writer holds and commit it if that is
        still current (module doc): the plan's value, or None if it was not."""
        planned = plan_held(plan, held, execution_id, fence, related)
        if planned is None:
            return None
        txn, result = planned
        was = held.execution
        if settle(txn) is not None or not compact(txn):
            return None
        gate = Gate(was.last_seq, was.updated_at, fence, alone=related)
        return (result,) if await self._group_commit(txn, gate) else None

    async def _group_commit(self, txn: Txn, gate: Gate | None) -> bool:
        began = time.perf_counter()
        written = await self.group.commit(txn, gate)
        if written and self._notifier.observed:
            self._notifier.took(time.perf_counter() - began, 1)
            self._notifier.committed([txn])
        return written

    async def _write_batch(self, batch: Sequence[tuple[Txn, Gate | None]]) -> set[str]:
        """One statement of the group commit (:mod:`.pg_group`), retried on
        a deadlock (it wrote nothing)."""

        async def once() -> set[str]:
            if self._hot is None:
                raise StoreError(f"the store {self.url} is not open")
            async with self._hot.acquire() as conn:
                return await write_sets(conn, batch)

        return await retried(self.url, once)

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
        ids = list(execution_ids) if execution_ids is not None else None
        if ids is not None and not ids:
            return []
        sql = _CLAIM.format(scope=" AND execution_id = ANY($5::text[])" if ids else "")
        params: list[Any] = [owner, lease_until, now, limit, *([ids] if ids else [])]

        written: list[Txn] = []

        async def job(conn: asyncpg.Connection) -> list[Claim]:
            written.clear()
            items = [work_from_row(tuple(r)) for r in await conn.fetch(sql, *params)]
            by_execution: dict[str, list[WorkItem]] = {}
            for item in items:
                by_execution.setdefault(item.execution_id, []).append(item)
            if not by_execution:
                return []
            batch: list[tuple[Txn, Gate | None]] = []
            for record in await lock_many_txn(conn, sorted(by_execution)):
                txn = Txn(record, now)
                gate = Gate(record.last_seq, record.updated_at)
                plan(txn, by_execution[record.id])
                await settle_txn(conn, txn)
                batch.append((txn, gate))
            await write_many_txn(conn, batch)
            written.extend(txn for txn, _ in batch)
            return [
                Claim(item, txn.execution)
                for txn, _ in batch
                for item in by_execution[txn.execution.id]
            ]

        return await self._transact(job, written)


def _new_txn(execution: ExecutionRecord) -> Txn:
    """A new execution's transaction, on a copy of ``execution``: the
    caller's record stays as given, and a run again after a deadlock plans
    on it as given, not on what the first run's plan changed."""
    record = execution.copy()
    return Txn(record, record.created_at, is_new=True, work=[], waits=[], delegations=[])

"""SQLite: the store's writes — executions, their work and their leases.

A new execution (``create``), a plan run on an execution (``apply``, the hot
path: a node's commit), a claim of ready work, and the leases that claims
take. Each is one job of the writer (:mod:`.sqlite_writer`): committed with
the jobs waiting beside it, its result returned only after that commit.
Apart from the store because these are the writes the engine's workers
make; the transaction-scoped steps they share are in :mod:`.sqlite_txn`,
as :mod:`.pg_writes` and :mod:`.pg_txn` are for PostgreSQL.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Collection
from typing import TypeVar

from agent_node.errors import UnknownExecution
from agent_node.store.base import ClaimPlan, Plan
from agent_node.store.held import plan_held
from agent_node.store.records import Claim, ExecutionRecord, VisitKey
from agent_node.store.sql import WORK_COLUMNS, in_list
from agent_node.store.sql_rows import (
    delegation_from_row,
    execution_from_row,
    wait_from_row,
    work_from_row,
)
from agent_node.store.sqlite_outbox import SqliteOutbox
from agent_node.store.sqlite_txn import (
    IDS,
    LOCK_EXECUTION,
    STMTS,
    Gate,
    check_fence_txn,
    flush_gated_txn,
    flush_new_txn,
    flush_txn,
    start_claims_txn,
    state_txn,
)
from agent_node.store.sqlite_writer import Notices
from agent_node.store.txn import Fence, Txn

__all__ = ["SqliteWrites"]

T = TypeVar("T")


class SqliteWrites(SqliteOutbox):
    """Executions, work and leases of :class:`~.sqlite.SqliteStore`."""

    async def create(self, execution: ExecutionRecord, plan: Plan[T]) -> T | None:
        def job(conn: sqlite3.Connection) -> tuple[T | None, Notices]:
            # On a copy: a run again (sqlite_batch) starts from the record as given.
            record = execution.copy()
            txn = Txn(record, record.created_at, is_new=True, work=[], waits=[], delegations=[])
            result = plan(txn)
            written = flush_new_txn(conn, txn)
            return (None, []) if written is None else (result, written)

        result: T | None = await self._writer.submit(job, replayable=True)
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
        planned = None
        if held is not None and fence is not None and not state:
            planned = plan_held(plan, held, execution_id, fence, related)

        def job(conn: sqlite3.Connection) -> tuple[T, Notices]:
            nonlocal planned
            # Planned on what the runner holds: written if the row is still
            # that. Once: the flush changes the planned record, so a run
            # again (sqlite_batch) plans on the row, as the plan was pure.
            if planned is not None and held is not None and fence is not None:
                (txn, result), planned = planned, None
                written = flush_gated_txn(conn, txn, Gate(held.execution, fence, related))
                if written is not None:
                    return result, written
            if fence is not None:
                check_fence_txn(conn, execution_id, fence)
            row = conn.execute(LOCK_EXECUTION, (execution_id,)).fetchone()
            if row is None:
                raise UnknownExecution(execution_id)
            txn = Txn(execution_from_row(row), time.time())
            if related:
                txn.work = [work_from_row(r) for r in conn.execute(STMTS.work_of, (execution_id,))]
                txn.waits = [
                    wait_from_row(r) for r in conn.execute(STMTS.waits_of, (execution_id,))
                ]
                txn.delegations = [
                    delegation_from_row(r)
                    for r in conn.execute(STMTS.lock_delegations_of, (execution_id,))
                ]
            if state:
                txn.state = state_txn(conn, txn.execution)
            result = plan(txn)
            return result, flush_txn(conn, txn)

        result: T = await self._writer.submit(job, replayable=True)
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
        ids = list(execution_ids) if execution_ids is not None else None
        if ids is not None and not ids:
            return []
        scope = f" AND execution_id IN {IDS}" if ids else ""
        sql = (
            "UPDATE work SET lease_owner = ?, lease_expires_at = ?, fence = fence + 1,"
            " attempt = attempt + 1 WHERE (execution_id, slot) IN"
            " (SELECT execution_id, slot FROM work WHERE available_at <= ?"
            f" AND (lease_owner IS NULL OR lease_expires_at < ?){scope}"
            f" ORDER BY available_at LIMIT ?) RETURNING {WORK_COLUMNS}"
        )

        def job(conn: sqlite3.Connection) -> tuple[list[Claim], Notices]:
            params = [owner, lease_until, now, now, *([json.dumps(ids)] if ids else []), limit]
            items = [work_from_row(r) for r in conn.execute(sql, params).fetchall()]
            return start_claims_txn(conn, items, plan, now)

        claims: list[Claim] = await self._writer.submit(job)
        return claims

    async def extend_leases(self, owner: str, until: float) -> list[VisitKey]:
        def job(conn: sqlite3.Connection) -> tuple[list[tuple[str, str, int]], Notices]:
            return [tuple(r) for r in conn.execute(STMTS.extend_leases, (until, owner))], []

        held: list[tuple[str, str, int]] = await self._writer.submit(job)
        return held

    async def expire_leases(self, owners: Collection[str], now: float) -> int:
        names = list(owners)
        if not names:
            return 0
        sql = f"UPDATE work SET lease_expires_at = ? WHERE lease_owner IN {in_list(len(names))}"
        claims = (
            "UPDATE delegations SET next_poll_at = MIN(next_poll_at, ?), claimed_by = NULL,"
            " claimed_at = NULL"
            f" WHERE claimed_by IN {in_list(len(names))}"
        )

        pushes = (
            "UPDATE push_configs SET lease_expires_at = ?"
            f" WHERE lease_owner IN {in_list(len(names))}"
        )

        def job(conn: sqlite3.Connection) -> tuple[int, Notices]:
            count = conn.execute(sql, [now, *names]).rowcount
            freed = conn.execute(claims, [now, *names]).rowcount
            owed = conn.execute(pushes, [now, *names]).rowcount
            notices: Notices = [("work", "*")] if count else []
            return count + freed + owed, [*notices, ("delegation", "*")] if freed else notices

        count: int = await self._writer.submit(job)
        return count

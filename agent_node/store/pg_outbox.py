"""PostgreSQL: the rows that carry news to and from other agents.

A2A push configs (the outbox of pushes to our callers) and delegations (our
tasks at peers, as state machines). Both are claimed with ``FOR UPDATE SKIP
LOCKED`` in one statement, so replicas sharing the database never take up
one row at the same time.
"""

from __future__ import annotations

import asyncpg

from agent_node.store.pg_conn import PgConnections
from agent_node.store.pg_txn import STMTS
from agent_node.store.records import DelegationRecord, PushClaim, PushConfigRecord
from agent_node.store.sql import DELEGATION_COLUMNS, PENDING_PUSHES, PUSH_COLUMNS, numbered
from agent_node.store.sql_rows import (
    delegation_from_row,
    push_claim_from_row,
    push_from_row,
    push_row,
    release_row,
)

__all__ = ["PgOutbox"]

_CLAIM_PUSHES = numbered(
    "UPDATE push_configs p SET lease_owner = ?, lease_expires_at = ?"
    " FROM (SELECT c.task_id, c.id, e.last_seq, e.status "
    + PENDING_PUSHES
    + " FOR UPDATE OF c SKIP LOCKED) s WHERE p.task_id = s.task_id AND p.id = s.id RETURNING "
    + ", ".join(f"p.{c.strip()}" for c in PUSH_COLUMNS.split(","))
    + ", s.last_seq, s.status"
)
#: The advisory lock space of push config adds, one lock per task ("push").
_PUSHES = 0x70757368
_CLAIM_DELEGATIONS = (
    "UPDATE delegations d SET next_poll_at = $1, polls = d.polls + 1, claimed_by = $4,"
    " claimed_at = $2"
    " FROM (SELECT execution_id, node, visit"
    " FROM delegations WHERE next_poll_at <= $2 ORDER BY next_poll_at LIMIT $3"
    " FOR UPDATE SKIP LOCKED) s WHERE d.execution_id = s.execution_id AND d.node = s.node"
    " AND d.visit = s.visit RETURNING "
    + ", ".join(f"d.{c.strip()}" for c in DELEGATION_COLUMNS.split(","))
)


class PgOutbox(PgConnections):
    """Push configs and delegations of :class:`~.postgres.PostgresStore`."""

    # -- push configs --------------------------------------------------------

    async def put_push_config(self, config: PushConfigRecord, limit: int | None = None) -> bool:
        if limit is None:
            async with self._connection() as conn:
                await conn.execute(STMTS.put_push, *push_row(config))
            return True

        async def job(conn: asyncpg.Connection) -> bool:
            # The task's adds queue here, so each counts what the one before wrote.
            await conn.execute(
                "SELECT pg_advisory_xact_lock($1, hashtext($2))", _PUSHES, config.task_id
            )
            if await conn.fetchval(STMTS.other_pushes, config.task_id, config.id) >= limit:
                return False
            await conn.execute(STMTS.put_push, *push_row(config))
            return True

        return await self._transact(job)

    async def take_back_push_config(
        self, put: PushConfigRecord, previous: PushConfigRecord | None
    ) -> bool:
        async def job(conn: asyncpg.Connection) -> bool:
            mine = (put.task_id, put.id, put.created_at, put.config)
            if (await conn.execute(STMTS.take_back_push, *mine)).split()[-1] == "0":
                return False
            if previous is not None:  # the same place: the task's count does not move
                await conn.execute(STMTS.put_push, *push_row(previous))
            return True

        return await self._transact(job)

    async def push_configs(self, task_id: str) -> list[PushConfigRecord]:
        rows = await self._fetch(STMTS.push_configs_of, task_id)
        return [push_from_row(tuple(r)) for r in rows]

    async def delete_push_config(self, task_id: str, config_id: str) -> bool:
        async with self._connection() as conn:
            status = await conn.execute(STMTS.delete_push, task_id, config_id)
        return int(status.split()[-1]) > 0

    async def claim_pushes(
        self, owner: str, *, now: float, lease_until: float, limit: int
    ) -> list[PushClaim]:
        async def job(conn: asyncpg.Connection) -> list[PushClaim]:
            rows = await conn.fetch(_CLAIM_PUSHES, owner, lease_until, now, now, limit)
            return [push_claim_from_row(tuple(r)) for r in rows]

        return await self._transact(job)

    async def release_push(self, owner: str, config: PushConfigRecord) -> bool:
        async with self._connection() as conn:
            status = await conn.execute(STMTS.release_push, *release_row(owner, config))
        return int(status.split()[-1]) > 0

    # -- delegations ---------------------------------------------------------

    async def delegations_of_task(self, remote_task_id: str) -> list[DelegationRecord]:
        rows = await self._fetch(STMTS.delegations_of_task, remote_task_id)
        return [delegation_from_row(tuple(r)) for r in rows]

    async def delegations(self, execution_id: str) -> list[DelegationRecord]:
        rows = await self._fetch(STMTS.delegations_of, execution_id)
        return [delegation_from_row(tuple(r)) for r in rows]

    async def delegation(self, execution_id: str, node: str, visit: int) -> DelegationRecord | None:
        rows = await self._fetch(STMTS.delegation, execution_id, node, visit)
        return delegation_from_row(tuple(rows[0])) if rows else None

    async def claim_delegations(
        self, *, now: float, lease_until: float, limit: int, owner: str | None = None
    ) -> list[DelegationRecord]:
        async def job(conn: asyncpg.Connection) -> list[DelegationRecord]:
            rows = await conn.fetch(_CLAIM_DELEGATIONS, lease_until, now, limit, owner)
            return [delegation_from_row(tuple(r)) for r in rows]

        return await self._transact(job)

    async def reschedule_delegation(
        self, delegation: DelegationRecord, next_poll_at: float, error: str | None = None
    ) -> bool:
        d = delegation
        return await self._count(
            STMTS.reschedule_delegation,
            next_poll_at,
            error,
            d.execution_id,
            d.node,
            d.visit,
            d.state,
            d.turn,
        )

    async def next_delegation_at(self) -> float | None:
        rows = await self._fetch(STMTS.next_delegation_at)
        return float(rows[0][0]) if rows and rows[0][0] is not None else None

    async def wake_delegations(self, peer: str, state: str, now: float, within: float) -> int:
        async with self._connection() as conn:
            status = await conn.execute(STMTS.wake_delegations, now, peer, state, now, within)
        return int(status.split()[-1])

    async def drop_delegation(self, delegation: DelegationRecord) -> bool:
        d = delegation
        return await self._count(
            STMTS.drop_delegation, d.execution_id, d.node, d.visit, d.state, d.turn
        )

"""SQLite: the rows that carry news to and from other agents.

A2A push configs (the outbox of pushes to our callers) and delegations (our
tasks at peers, as state machines, :mod:`agent_node.store.records`): their
writes, reads and claims. Apart from the store because they are the part of
it the peers' machinery uses (push sender, watchdog), with rows and
statements of their own, as :mod:`.pg_outbox` is for PostgreSQL.
"""

from __future__ import annotations

import sqlite3

from agent_node.store.records import DelegationRecord, PushClaim, PushConfigRecord
from agent_node.store.sql import DELEGATION_COLUMNS, PENDING_PUSHES, PUSH_COLUMNS
from agent_node.store.sql_rows import (
    delegation_from_row,
    push_claim_from_row,
    push_from_row,
    push_row,
    release_row,
)
from agent_node.store.sqlite_conn import SqliteConnections
from agent_node.store.sqlite_txn import STMTS
from agent_node.store.sqlite_writer import Notices

__all__ = ["SqliteOutbox"]


class SqliteOutbox(SqliteConnections):
    """Push configs and delegations of :class:`~.sqlite.SqliteStore`."""

    # -- push configs --------------------------------------------------------

    async def put_push_config(self, config: PushConfigRecord, limit: int | None = None) -> bool:
        def job(conn: sqlite3.Connection) -> tuple[bool, Notices]:
            # One writer: nothing comes between the count and the insert.
            if limit is not None:
                (others,) = conn.execute(STMTS.other_pushes, (config.task_id, config.id)).fetchone()
                if others >= limit:
                    return False, []
            conn.execute(STMTS.put_push, push_row(config))
            return True, []

        put: bool = await self._writer.submit(job)
        return put

    async def take_back_push_config(
        self, put: PushConfigRecord, previous: PushConfigRecord | None
    ) -> bool:
        def job(conn: sqlite3.Connection) -> tuple[bool, Notices]:
            mine = (put.task_id, put.id, put.created_at, put.config)
            if conn.execute(STMTS.take_back_push, mine).rowcount == 0:
                return False, []
            if previous is not None:
                conn.execute(STMTS.put_push, push_row(previous))
            return True, []

        taken: bool = await self._writer.submit(job)
        return taken

    async def push_configs(self, task_id: str) -> list[PushConfigRecord]:
        return [push_from_row(r) for r in await self._fetch(STMTS.push_configs_of, (task_id,))]

    async def delete_push_config(self, task_id: str, config_id: str) -> bool:
        return await self._write(STMTS.delete_push, (task_id, config_id)) > 0

    async def claim_pushes(
        self, owner: str, *, now: float, lease_until: float, limit: int
    ) -> list[PushClaim]:
        select = f"SELECT {', '.join('c.' + c.strip() for c in PUSH_COLUMNS.split(','))},"
        select += f" e.last_seq, e.status {PENDING_PUSHES}"
        lease = (
            "UPDATE push_configs SET lease_owner = ?, lease_expires_at = ?"
            " WHERE task_id = ? AND id = ?"
        )

        def job(conn: sqlite3.Connection) -> tuple[list[PushClaim], Notices]:
            claims = [push_claim_from_row(r) for r in conn.execute(select, (now, now, limit))]
            for claim in claims:
                claim.config.lease_owner, claim.config.lease_expires_at = owner, lease_until
            rows = [(owner, lease_until, c.config.task_id, c.config.id) for c in claims]
            conn.executemany(lease, rows)
            return claims, []

        claims: list[PushClaim] = await self._writer.submit(job)
        return claims

    async def release_push(self, owner: str, config: PushConfigRecord) -> bool:
        return await self._write(STMTS.release_push, release_row(owner, config)) > 0

    # -- delegations ---------------------------------------------------------

    async def delegations_of_task(self, remote_task_id: str) -> list[DelegationRecord]:
        rows = await self._fetch(STMTS.delegations_of_task, (remote_task_id,))
        return [delegation_from_row(r) for r in rows]

    async def delegations(self, execution_id: str) -> list[DelegationRecord]:
        rows = await self._fetch(STMTS.delegations_of, (execution_id,))
        return [delegation_from_row(r) for r in rows]

    async def delegation(self, execution_id: str, node: str, visit: int) -> DelegationRecord | None:
        rows = await self._fetch(STMTS.delegation, (execution_id, node, visit))
        return delegation_from_row(rows[0]) if rows else None

    async def claim_delegations(
        self, *, now: float, lease_until: float, limit: int, owner: str | None = None
    ) -> list[DelegationRecord]:
        sql = (
            "UPDATE delegations SET next_poll_at = ?, polls = polls + 1, claimed_by = ?,"
            " claimed_at = ?"
            " WHERE (execution_id, node, visit) IN (SELECT execution_id, node, visit"
            " FROM delegations WHERE next_poll_at <= ? ORDER BY next_poll_at LIMIT ?)"
            f" RETURNING {DELEGATION_COLUMNS}"
        )

        def job(conn: sqlite3.Connection) -> tuple[list[DelegationRecord], Notices]:
            rows = conn.execute(sql, (lease_until, owner, now, now, limit)).fetchall()
            return [delegation_from_row(r) for r in rows], []

        claimed: list[DelegationRecord] = await self._writer.submit(job)
        return claimed

    async def reschedule_delegation(
        self, delegation: DelegationRecord, next_poll_at: float, error: str | None = None
    ) -> bool:
        d = delegation
        params = (next_poll_at, error, d.execution_id, d.node, d.visit, d.state, d.turn)
        return await self._write(STMTS.reschedule_delegation, params) > 0

    async def next_delegation_at(self) -> float | None:
        rows = await self._fetch(STMTS.next_delegation_at, ())
        return float(rows[0][0]) if rows and rows[0][0] is not None else None

    async def wake_delegations(self, peer: str, state: str, now: float, within: float) -> int:
        return await self._write(STMTS.wake_delegations, (now, peer, state, now, within))

    async def drop_delegation(self, delegation: DelegationRecord) -> bool:
        d = delegation
        params = (d.execution_id, d.node, d.visit, d.state, d.turn)
        return await self._write(STMTS.drop_delegation, params) > 0

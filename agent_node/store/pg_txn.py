"""PostgreSQL: what a store transaction does on its connection.

Helpers that take the transaction's connection and end in ``_txn`` (the
store's public methods open the transaction): lock the execution row (and
the lease a write relies on, in one statement: work row, then execution
row, the lock order of every writer), read what a plan asked for, and write
what it changed — compact write sets as the one statement of
:mod:`.pg_write`, the others statement by statement.
"""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from agent_node.errors import Fenced, StoreError, UnknownExecution
from agent_node.store.patches import fold
from agent_node.store.pg_write import CHANNEL, Gate, compact, write_sets
from agent_node.store.records import ExecutionRecord
from agent_node.store.snapshots import base_of, finish_fold, settle
from agent_node.store.sql import (
    DELEGATION_COLUMNS,
    EXECUTION_COLUMNS,
    WAIT_COLUMNS,
    WORK_COLUMNS,
    Statements,
    flush_statements,
)
from agent_node.store.sql_rows import (
    delegation_from_row,
    delegation_update_row,
    execution_from_row,
    wait_from_row,
    work_from_row,
)
from agent_node.store.txn import Fence, Txn

__all__ = [
    "STMTS",
    "flush_txn",
    "lock_many_txn",
    "lock_txn",
    "related_txn",
    "state_txn",
]

STMTS = Statements(postgres=True)
#: The execution row, locked with the work row whose lease is named (no
#: row: the lease was taken over, or the visit is gone).
_LOCK_FENCED = (
    "SELECT "
    + ", ".join(f"e.{c.strip()}" for c in EXECUTION_COLUMNS.split(","))
    + " FROM work w JOIN executions e ON e.id = w.execution_id WHERE w.execution_id = $1"
    " AND w.node = $2 AND w.visit = $3 AND w.fence = $4 AND w.lease_owner = $5"
    " FOR UPDATE OF w, e"
)
#: An execution's work, waits and delegations (locked: a watchdog's claim of
#: one is seen, or waits until we commit) as three JSON arrays of rows.
#: (PostgreSQL writes a float8 in JSON as its shortest exact form.)
_RELATED = (
    f"SELECT (SELECT coalesce(json_agg(json_build_array({WORK_COLUMNS})), '[]') FROM work"
    " WHERE execution_id = $1),"
    f" (SELECT coalesce(json_agg(json_build_array({WAIT_COLUMNS})), '[]') FROM waits"
    " WHERE execution_id = $1),"
    f" (SELECT coalesce(json_agg(json_build_array({DELEGATION_COLUMNS})), '[]') FROM"
    " (SELECT * FROM delegations WHERE execution_id = $1 FOR UPDATE) d)"
)
_LOCK_MANY = (
    f"SELECT {EXECUTION_COLUMNS} FROM executions WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE"
)


async def lock_txn(
    conn: asyncpg.Connection, execution_id: str, fence: Fence | None
) -> ExecutionRecord:
    """The execution row, locked; with ``fence``, only while that lease is
    held (else :class:`Fenced`)."""
    if fence is None:
        row = await conn.fetchrow(STMTS.lock_execution, execution_id)
        if row is None:
            raise UnknownExecution(execution_id)
    else:
        row = await conn.fetchrow(
            _LOCK_FENCED, execution_id, fence.node, fence.visit, fence.fence, fence.owner
        )
        if row is None:
            raise Fenced(f"lease on {execution_id}/{fence.node}/{fence.visit} was taken over")
    return execution_from_row(tuple(row))


async def lock_many_txn(conn: asyncpg.Connection, ids: list[str]) -> list[ExecutionRecord]:
    """The rows of ``ids`` that exist, locked in id order."""
    return [execution_from_row(tuple(r)) for r in await conn.fetch(_LOCK_MANY, ids)]


async def related_txn(conn: asyncpg.Connection, txn: Txn) -> None:
    """Read the execution's work, waits and (locked) delegations into
    ``txn``, in one round trip."""
    work, waits, delegations = await conn.fetchrow(_RELATED, txn.execution.id)
    txn.work = [work_from_row(r) for r in json.loads(work)]
    txn.waits = [wait_from_row(r) for r in json.loads(waits)]
    txn.delegations = [delegation_from_row(r) for r in json.loads(delegations)]


async def state_txn(conn: asyncpg.Connection, record: ExecutionRecord) -> str:
    """The execution's whole current state (:mod:`.snapshots`)."""
    if record.state:
        return record.state
    return fold(*await _snapshot_txn(conn, record.id, record.snapshot_seq, record.state_seq))


async def _snapshot_txn(
    conn: asyncpg.Connection, execution_id: str, since: int, until: int
) -> tuple[dict[str, Any], list[str | None]]:
    """The base at ``since`` and the patches (event data) up to ``until``."""
    text = await conn.fetchval(STMTS.snapshot_of, execution_id, since)
    started = None
    if text is None and since == 0:
        started = await conn.fetchval(STMTS.input_of, execution_id)
    patches = [r[0] for r in await conn.fetch(STMTS.patches_of, execution_id, since, until)]
    return base_of(text, started), patches


async def settle_txn(conn: asyncpg.Connection, txn: Txn) -> None:
    """Decide what ``txn`` writes of the state, folding a snapshot if one is due."""
    due = settle(txn)
    if due is not None:
        finish_fold(txn, *await _snapshot_txn(conn, txn.execution.id, due.snapshot_seq, due.until))


async def flush_txn(conn: asyncpg.Connection, txn: Txn, gate: Gate | None) -> None:
    """Write what ``txn`` changed (settled: :func:`settle_txn`) on the
    execution row locked at ``gate`` (None: a new execution)."""
    await write_many_txn(conn, [(txn, gate)])


async def write_many_txn(conn: asyncpg.Connection, batch: list[tuple[Txn, Gate | None]]) -> None:
    """Write settled transactions of locked (or new) executions: the compact
    ones in one statement, the others statement by statement."""
    single = [(txn, gate) for txn, gate in batch if not compact(txn)]
    many = [(txn, gate) for txn, gate in batch if compact(txn)]
    if many:
        written = await write_sets(conn, many)
        lost = [txn.execution.id for txn, _ in many if txn.execution.id not in written]
        if lost:
            raise StoreError(f"executions {', '.join(lost)} changed under a transaction")
    for txn, _ in single:
        await _statements_txn(conn, txn)


async def _statements_txn(conn: asyncpg.Connection, txn: Txn) -> None:
    txn.execution.updated_at = txn.now
    for sql, rows in flush_statements(txn, STMTS):
        if len(rows) == 1:
            await conn.execute(sql, *rows[0])
        else:
            await conn.executemany(sql, rows)
    for delegation, expected in txn.delegations_set:
        status = await conn.execute(
            STMTS.update_delegation, *delegation_update_row(delegation, expected)
        )
        if status != "UPDATE 1":
            raise StoreError(f"delegation {delegation.key} changed under a transaction")
    for kind in txn.notices:
        await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, f"{kind}:{txn.execution.id}")

"""SQLite: what a store transaction does on its connection.

Helpers that take the connection of a job (on the writer's thread, in its
transaction: :mod:`.sqlite_writer`) or of a read transaction, and end in
``_txn``: check a fence, read an execution's whole state, write what a plan
changed, start the claims of a batch of leased visits. Apart from the store
class because they are the transaction-scoped half of every write, shared
by :mod:`.sqlite_writes` and the reads of :mod:`.sqlite_conn`, as
:mod:`.pg_txn` is for PostgreSQL.
"""

from __future__ import annotations

import sqlite3
from typing import Any, NamedTuple

from agent_node.errors import Fenced, StoreError
from agent_node.store.base import ClaimPlan
from agent_node.store.patches import fold
from agent_node.store.records import Claim, ExecutionRecord, WorkItem
from agent_node.store.snapshots import base_of, finish_fold, settle
from agent_node.store.sql import EXECUTION_COLUMNS, Statements, flush_statements
from agent_node.store.sql_rows import delegation_update_row, execution_from_row
from agent_node.store.sqlite_events import INPUT_OF, NEXT_NUM, PATCHES_OF, write_log_txn
from agent_node.store.sqlite_work import write_work_txn
from agent_node.store.sqlite_writer import Notices
from agent_node.store.txn import Fence, Txn

__all__ = [
    "IDS",
    "LOCK_EXECUTION",
    "STMTS",
    "Gate",
    "check_fence_txn",
    "flush_gated_txn",
    "flush_new_txn",
    "flush_txn",
    "start_claims_txn",
    "state_txn",
]

STMTS = Statements(postgres=False)
# A set of ids as one JSON parameter: one statement text whatever the set's
# size, so the driver's statement cache does not fill with IN-list variants.
IDS = "(SELECT value FROM json_each(?))"


def check_fence_txn(conn: sqlite3.Connection, execution_id: str, fence: Fence) -> None:
    """Raise :class:`Fenced` unless the lease ``fence`` names is still held."""
    params = (execution_id, fence.node, fence.visit, fence.fence, fence.owner)
    if conn.execute(STMTS.check_fence, params).fetchone() is None:
        raise Fenced(f"lease on {execution_id}/{fence.node}/{fence.visit} was taken over")


# A node's commit planned on what its writer holds (SqliteWrites.apply) is
# written only if the row is still the version the plan ran on (every write
# of an execution sets last_seq and updated_at) and the lease still held;
# "alone" adds that the lease's work row is the execution's only related row.
# The gate is the WHERE of the commit's own UPDATE of the execution, run
# before its other writes: one statement, where a SELECT that checked first
# was one more per step.
_GATE = (
    " AND last_seq = ? AND updated_at = ? AND EXISTS (SELECT 1 FROM work w"
    " WHERE w.execution_id = executions.id AND w.node = ? AND w.visit = ? AND w.fence = ?"
    " AND w.lease_owner = ?)"
)
_ALONE = (
    " AND NOT EXISTS (SELECT 1 FROM work o WHERE o.execution_id = executions.id"
    " AND (o.node <> ? OR o.visit <> ?))"
    " AND NOT EXISTS (SELECT 1 FROM waits o WHERE o.execution_id = executions.id)"
    " AND NOT EXISTS (SELECT 1 FROM delegations o WHERE o.execution_id = executions.id)"
)
_GATES = (_GATE, _GATE + _ALONE)
#: A new execution's row, with its number (store/sqlite_events.py).
_INSERT_EXECUTION = (
    f"INSERT INTO executions ({EXECUTION_COLUMNS}, caller, finished_at, num)"
    f" VALUES ({', '.join('?' * 19)}) ON CONFLICT (id) DO NOTHING"
)
#: An execution's row, with its number (for its commit's events).
LOCK_EXECUTION = f"SELECT {EXECUTION_COLUMNS}, num FROM executions WHERE id = ?"


class Gate(NamedTuple):
    """What a held commit's UPDATE checks (:func:`flush_txn`): ``was`` is
    still the execution's row, ``fence`` still held and, with ``alone``,
    the fenced visit its only work, wait or delegation."""

    was: ExecutionRecord
    fence: Fence
    alone: bool

    def params(self) -> tuple[Any, ...]:
        fence = self.fence
        held = (fence.node, fence.visit, fence.fence, fence.owner)
        extra = (fence.node, fence.visit) if self.alone else ()
        return (self.was.last_seq, self.was.updated_at, *held, *extra)


def state_txn(conn: sqlite3.Connection, record: ExecutionRecord) -> str:
    """The execution's whole current state (:mod:`.snapshots`)."""
    if record.state:
        return record.state
    return fold(*_snapshot_txn(conn, record.id, record.snapshot_seq, record.state_seq))


def _snapshot_txn(
    conn: sqlite3.Connection, execution_id: str, since: int, until: int
) -> tuple[dict[str, Any], list[str | None]]:
    """The base at ``since`` and the patches (event data) up to ``until``."""
    row = conn.execute(STMTS.snapshot_of, (execution_id, since)).fetchone()
    started = None
    if row is None and since == 0:
        started = conn.execute(INPUT_OF, (execution_id,)).fetchone()
    base = base_of(row[0] if row else None, started[0] if started else None)
    patches = [r[0] for r in conn.execute(PATCHES_OF, (execution_id, since, until))]
    return base, patches


def flush_txn(conn: sqlite3.Connection, txn: Txn) -> Notices:
    """Write what ``txn`` changed (folding a snapshot if one is due); the
    notices to publish once the job committed."""
    return _write(conn, txn, _statements(conn, txn))


def flush_gated_txn(conn: sqlite3.Connection, txn: Txn, gate: Gate) -> Notices | None:
    """:func:`flush_txn` behind ``gate``: the execution's UPDATE first, the
    gate in its WHERE; nothing written, and None, when the gate is closed."""
    statements = _statements(conn, txn)
    sql, rows = statements.pop()  # the execution's UPDATE: last, as a held txn is not new
    if conn.execute(sql + _GATES[gate.alone], (*rows[0], *gate.params())).rowcount != 1:
        return None
    return _write(conn, txn, statements)


def flush_new_txn(conn: sqlite3.Connection, txn: Txn) -> Notices | None:
    """:func:`flush_txn` of a new execution: nothing written, and None, when
    its id is taken (its ``INSERT … ON CONFLICT DO NOTHING`` goes first and
    inserts nothing), so that no read has to ask first."""
    statements = _statements(conn, txn)
    _, rows = statements.pop(0)  # the execution's INSERT: first, as txn is new
    num = conn.execute(NEXT_NUM).fetchone()[0]
    if conn.execute(_INSERT_EXECUTION, (*rows[0], num)).rowcount != 1:
        return None
    txn.execution.num = num  # its events', and the record's the runner goes on with
    return _write(conn, txn, statements)


def _statements(conn: sqlite3.Connection, txn: Txn) -> list[tuple[str, list[tuple[Any, ...]]]]:
    due = settle(txn)
    if due is not None:
        finish_fold(txn, *_snapshot_txn(conn, txn.execution.id, due.snapshot_seq, due.until))
    if not txn.is_new:  # as the row will say (what the next gate compares)
        txn.execution.updated_at = txn.now
    return flush_statements(txn, STMTS, own=True)


def _write(
    conn: sqlite3.Connection, txn: Txn, statements: list[tuple[str, list[tuple[Any, ...]]]]
) -> Notices:
    """``txn``'s writes but a new or gated execution's own, run first; its
    events find the execution's number through its row, there by then."""
    if txn.work_put or txn.work_del:
        write_work_txn(conn, txn)
    if txn.events or txn.log_from is not None:
        write_log_txn(conn, txn)
    for sql, rows in statements:
        if len(rows) == 1:
            conn.execute(sql, rows[0])
        else:
            conn.executemany(sql, rows)
    for delegation, expected in txn.delegations_set:
        changed = conn.execute(STMTS.update_delegation, delegation_update_row(delegation, expected))
        if changed.rowcount != 1:
            raise StoreError(f"delegation {delegation.key} changed under a transaction")
    notices: Notices = [(kind, txn.execution.id) for kind in txn.notices]
    notices.append(txn)  # for the commit's observers (cheaper than asking whether any)
    return notices


def start_claims_txn(
    conn: sqlite3.Connection, items: list[WorkItem], plan: ClaimPlan, now: float
) -> tuple[list[Claim], Notices]:
    """Run ``plan`` on the execution of each group of just leased ``items``
    and write what it changed: the claims, and the notices of the writes."""
    by_execution: dict[str, list[WorkItem]] = {}
    for item in items:
        by_execution.setdefault(item.execution_id, []).append(item)
    claims: list[Claim] = []
    notices: Notices = []
    for execution_id, leased in by_execution.items():
        row = conn.execute(LOCK_EXECUTION, (execution_id,)).fetchone()
        txn = Txn(execution_from_row(row), now)
        plan(txn, leased)
        notices.extend(flush_txn(conn, txn))
        claims.extend(Claim(item, txn.execution) for item in leased)
    return claims, notices

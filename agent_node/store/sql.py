"""SQL text and row mapping shared by the SQLite and PostgreSQL stores.

Statements are written once with ``?`` placeholders; :func:`numbered` turns
them into PostgreSQL's ``$1, $2, …``. A transaction's write set becomes a
short list of ``(statement, rows)`` pairs (:func:`flush_statements`) that each
driver runs with ``executemany``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from agent_node.store.base import Txn
from agent_node.store.records import EventRecord, ExecutionRecord, WaitRecord, WorkItem

__all__ = [
    "EXECUTION_COLUMNS",
    "Statements",
    "event_from_row",
    "execution_from_row",
    "flush_statements",
    "numbered",
    "wait_from_row",
    "work_from_row",
]

EXECUTION_COLUMNS = (
    "id, workflow_id, workflow_version, workflow_ref, status, state, cursor, last_seq,"
    " error, context_id, metadata, created_at, updated_at"
)
EVENT_COLUMNS = "execution_id, seq, kind, node, visit, attempt, at, data"
WORK_COLUMNS = (
    "execution_id, node, visit, attempt, available_at, lease_owner, lease_expires_at, fence"
)
WAIT_COLUMNS = "execution_id, node, visit, kind, event, deadline"


def numbered(sql: str) -> str:
    """``?`` placeholders → ``$1, $2, …`` (our SQL never has ``?`` elsewhere)."""
    counter = iter(range(1, 10_000))
    return re.sub(r"\?", lambda _: f"${next(counter)}", sql)


class Statements:
    """Every statement the SQL stores run, for one placeholder style."""

    def __init__(self, postgres: bool) -> None:
        q = numbered if postgres else (lambda s: s)
        lock = " FOR UPDATE" if postgres else ""
        self.insert_execution = q(
            f"INSERT INTO executions ({EXECUTION_COLUMNS})"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING"
        )
        self.update_execution = q(
            "UPDATE executions SET status = ?, state = ?, cursor = ?, last_seq = ?, error = ?,"
            " context_id = ?, metadata = ?, updated_at = ? WHERE id = ?"
        )
        self.lock_execution = q(f"SELECT {EXECUTION_COLUMNS} FROM executions WHERE id = ?{lock}")
        self.get_execution = q(f"SELECT {EXECUTION_COLUMNS} FROM executions WHERE id = ?")
        self.check_fence = q(
            "SELECT fence FROM work WHERE execution_id = ? AND node = ? AND visit = ?"
            f" AND fence = ? AND lease_owner = ?{lock}"
        )
        self.insert_events = q(
            f"INSERT INTO events ({EVENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        )
        self.put_work = q(
            f"INSERT INTO work ({WORK_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (execution_id, node, visit) DO UPDATE SET attempt = excluded.attempt,"
            " available_at = excluded.available_at, lease_owner = excluded.lease_owner,"
            " lease_expires_at = excluded.lease_expires_at, fence = excluded.fence"
        )
        self.delete_work = q("DELETE FROM work WHERE execution_id = ? AND node = ? AND visit = ?")
        self.put_wait = q(
            f"INSERT INTO waits ({WAIT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (execution_id, node, visit) DO UPDATE SET kind = excluded.kind,"
            " event = excluded.event, deadline = excluded.deadline"
        )
        self.delete_wait = q("DELETE FROM waits WHERE execution_id = ? AND node = ? AND visit = ?")
        self.work_of = q(f"SELECT {WORK_COLUMNS} FROM work WHERE execution_id = ?")
        self.waits_of = q(f"SELECT {WAIT_COLUMNS} FROM waits WHERE execution_id = ?")
        self.events_of = q(
            f"SELECT {EVENT_COLUMNS} FROM events WHERE execution_id = ? AND seq > ? ORDER BY seq"
        )
        self.extend_leases = q(
            "UPDATE work SET lease_expires_at = ? WHERE lease_owner = ?"
            " RETURNING execution_id, node, visit"
        )
        self.lease_owners = "SELECT DISTINCT lease_owner FROM work WHERE lease_owner IS NOT NULL"
        self.due_waits = q(
            f"SELECT {WAIT_COLUMNS} FROM waits WHERE deadline IS NOT NULL AND deadline <= ?"
            " ORDER BY deadline LIMIT ?"
        )
        self.next_work = (
            "SELECT MIN(CASE WHEN lease_owner IS NULL THEN available_at"
            " ELSE lease_expires_at END) FROM work"
        )
        self.next_wait = "SELECT MIN(deadline) FROM waits WHERE deadline IS NOT NULL"


def flush_statements(txn: Txn, stmts: Statements) -> list[tuple[str, list[tuple[Any, ...]]]]:
    """The write set of ``txn`` as ``(statement, rows)`` pairs, in lock-safe order."""
    record = txn.execution
    eid = record.id
    out: list[tuple[str, list[tuple[Any, ...]]]] = []
    if txn.is_new:
        out.append((stmts.insert_execution, [execution_row(record)]))
    if txn.work_del:
        out.append((stmts.delete_work, [(eid, n, v) for n, v in txn.work_del]))
    if txn.work_put:
        out.append((stmts.put_work, [work_row(w) for w in txn.work_put]))
    if txn.waits_del:
        out.append((stmts.delete_wait, [(eid, n, v) for n, v in txn.waits_del]))
    if txn.waits_put:
        out.append((stmts.put_wait, [wait_row(w) for w in txn.waits_put]))
    if txn.events:
        out.append((stmts.insert_events, [event_row(e) for e in txn.events]))
    if not txn.is_new:
        out.append(
            (
                stmts.update_execution,
                [
                    (
                        record.status,
                        record.state,
                        record.cursor,
                        record.last_seq,
                        record.error,
                        record.context_id,
                        record.metadata,
                        txn.now,
                        eid,
                    )
                ],
            )
        )
    return out


def execution_row(r: ExecutionRecord) -> tuple[Any, ...]:
    return (
        r.id,
        r.workflow_id,
        r.workflow_version,
        r.workflow_ref,
        r.status,
        r.state,
        r.cursor,
        r.last_seq,
        r.error,
        r.context_id,
        r.metadata,
        r.created_at,
        r.updated_at,
    )


def event_row(e: EventRecord) -> tuple[Any, ...]:
    return (e.execution_id, e.seq, e.kind, e.node, e.visit, e.attempt, e.at, e.data)


def work_row(w: WorkItem) -> tuple[Any, ...]:
    return (
        w.execution_id,
        w.node,
        w.visit,
        w.attempt,
        w.available_at,
        w.lease_owner,
        w.lease_expires_at,
        w.fence,
    )


def wait_row(w: WaitRecord) -> tuple[Any, ...]:
    return (w.execution_id, w.node, w.visit, w.kind, w.event, w.deadline)


def execution_from_row(row: Sequence[Any]) -> ExecutionRecord:
    return ExecutionRecord(*row)


def event_from_row(row: Sequence[Any]) -> EventRecord:
    return EventRecord(*row)


def work_from_row(row: Sequence[Any]) -> WorkItem:
    return WorkItem(*row)


def wait_from_row(row: Sequence[Any]) -> WaitRecord:
    return WaitRecord(*row)


def in_list(count: int) -> str:
    """``(?, ?, …)`` for an ``IN`` clause of ``count`` values."""
    return "(" + ", ".join("?" * count) + ")"


def chunks(values: Iterable[str], size: int = 500) -> Iterable[list[str]]:
    batch: list[str] = []
    for value in values:
        batch.append(value)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch

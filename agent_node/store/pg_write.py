"""PostgreSQL: the write sets of many transactions as one statement.

A node's commit on PostgreSQL is one statement, sent in one round trip and
committed on its own (no ``BEGIN``/``COMMIT`` around it): a data-modifying
CTE over arrays (``unnest``), one element per row to write, for any number
of executions at once. Per execution it

1. checks the **gate**: the execution row is still the version the plan ran
   on (its ``last_seq`` and ``updated_at``: every transaction that changes
   an execution writes both), the lease the writer relies on is still held
   (its work row, locked ``FOR UPDATE`` first — work rows, then the
   execution row, the lock order of every writer), and, when the plan
   assumed it, the execution has no other work rows, no waits and no
   delegations (``alone``);
2. only for the executions that passed: updates the execution row, deletes
   and upserts work and wait rows, appends the events, and sends the
   notifications (``pg_notify``, delivered at the commit);
3. returns the ids that passed. A new execution's gate is its insert
   (``ON CONFLICT DO NOTHING``): one that exists already writes nothing.

An execution whose gate fails writes nothing and does not disturb the
others: that is how a batch isolates a fenced-out item, with no savepoint
and no error (see :mod:`.pg_group`). Why a CTE and not a server-side
function: it needs nothing installed in the database (no function to
version and migrate with the schema), asyncpg prepares it once per
connection, and PostgreSQL plans it like any statement.

Why the gate holds under ``READ COMMITTED``: a concurrent writer of the
execution holds its row lock until it commits; our ``UPDATE`` then waits
and re-checks its ``WHERE`` on the row as that writer left it, whose
``last_seq``/``updated_at`` differ, so it skips the row. Every writer that
adds a work, wait or delegation row of an execution updates the execution
row in the same transaction (plans always end with it), so ``alone`` read
in an older snapshot is caught by the same re-check. Rows are never updated
twice in one statement: a batch holds one transaction per execution, and a
write set that deletes and upserts one row (or upserts it twice) is not
compact (:func:`compact`; it takes the statement-per-row flush).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from agent_node.store.sql import EVENT_COLUMNS, EXECUTION_COLUMNS, WAIT_COLUMNS, WORK_COLUMNS
from agent_node.store.sql_rows import execution_row
from agent_node.store.txn import Fence, Txn

__all__ = ["CHANNEL", "Gate", "compact", "write_sets"]

#: The channel of the store's notifications (``kind:execution_id``).
CHANNEL = "agent_node"


@dataclass(frozen=True, slots=True)
class Gate:
    """When an existing execution's writes may happen (module doc): its row
    is still at ``last_seq``/``updated_at``; ``fence`` (if any) is still
    held; with ``alone``, the fence's work row is its only related row."""

    last_seq: int
    updated_at: float
    fence: Fence | None = None
    alone: bool = False


#: ``(column, type)`` of each array, per part of the statement.
_GATES = (
    ("id", "text"),
    ("was_seq", "int"),
    ("was_at", "float8"),
    ("node", "text"),
    ("visit", "int"),
    ("fence", "int"),
    ("owner", "text"),
    ("alone", "bool"),
    ("status", "text"),
    ("cursor", "text"),
    ("last_seq", "int"),
    ("error", "text"),
    ("updated_at", "float8"),
    ("state_seq", "int"),
    ("snapshot_seq", "int"),
    ("patch_room", "int"),
    ("state", "text"),
)
_NEW_TYPES = (
    *("text", "text", "text", "text", "text", "text", "text", "int", "text", "text", "text"),
    *("float8", "float8", "int", "int", "int", "text"),
)
_NEW = tuple(
    zip([*EXECUTION_COLUMNS.replace(" ", "").split(","), "caller"], _NEW_TYPES, strict=True)
)
_WORK_DEL = (("execution_id", "text"), ("node", "text"), ("visit", "int"))
_WORK = tuple(
    zip(
        WORK_COLUMNS.replace(" ", "").split(","),
        ("text", "text", "int", "int", "float8", "text", "float8", "int"),
        strict=True,
    )
)
_EVENTS = tuple(
    zip(
        EVENT_COLUMNS.replace(" ", "").split(","),
        ("text", "int", "text", "text", "int", "int", "float8", "text"),
        strict=True,
    )
)
_WAIT_DEL = _WORK_DEL
_WAITS = tuple(
    zip(
        WAIT_COLUMNS.replace(" ", "").split(","),
        ("text", "text", "int", "text", "text", "float8"),
        strict=True,
    )
)
_NOTICES = (("id", "text"), ("msg", "text"))
_PARTS = (_GATES, _NEW, _WORK_DEL, _WORK, _WAIT_DEL, _WAITS, _EVENTS, _NOTICES)


def _arrays(columns: Sequence[tuple[str, str]], alias: str, first: int) -> str:
    """``unnest($first::t[], …) AS alias(columns)``."""
    params = ", ".join(f"${first + i}::{kind}[]" for i, (_, kind) in enumerate(columns))
    return f"unnest({params}) AS {alias}({', '.join(name for name, _ in columns)})"


_UPDATED = ", ".join(f"{name} = g.{name}" for name, _ in _GATES[8:-1])
_WORK_SET = ", ".join(f"{name} = excluded.{name}" for name, _ in _WORK[3:])
_WAIT_SET = ", ".join(f"{name} = excluded.{name}" for name, _ in _WAITS[3:])
#: Each part's CTEs, given its ``unnest(…)``, in the order of :data:`_PARTS`.
_CTES: tuple[Callable[[str], str], ...] = (
    lambda rows: (
        f"g AS (SELECT * FROM {rows}),"
        " f AS (SELECT w.execution_id FROM work w JOIN g ON w.execution_id = g.id"
        " AND w.node = g.node AND w.visit = g.visit"
        " WHERE w.fence = g.fence AND w.lease_owner = g.owner"
        # Locked in key order, as the heartbeat locks them: no deadlock.
        " ORDER BY w.execution_id, w.node, w.visit FOR UPDATE OF w),"
        f" u AS (UPDATE executions e SET {_UPDATED}, state = COALESCE(g.state, e.state) FROM g"
        " WHERE e.id = g.id AND e.last_seq = g.was_seq AND e.updated_at = g.was_at"
        " AND (g.node IS NULL OR e.id IN (SELECT execution_id FROM f))"
        " AND (NOT g.alone OR (NOT EXISTS (SELECT 1 FROM work o WHERE o.execution_id = g.id"
        " AND (o.node, o.visit) <> (g.node, g.visit))"
        " AND NOT EXISTS (SELECT 1 FROM waits o WHERE o.execution_id = g.id)"
        " AND NOT EXISTS (SELECT 1 FROM delegations o WHERE o.execution_id = g.id)))"
        " RETURNING e.id)"
    ),
    lambda rows: (
        f"n AS (INSERT INTO executions ({', '.join(name for name, _ in _NEW)})"
        f" SELECT * FROM {rows} ON CONFLICT (id) DO NOTHING RETURNING id)"
    ),
    lambda rows: (
        f"d AS (DELETE FROM work w USING {rows} WHERE w.execution_id = d.execution_id"
        " AND w.node = d.node AND w.visit = d.visit AND d.execution_id IN (SELECT id FROM ok))"
    ),
    lambda rows: (
        f"p AS (INSERT INTO work ({WORK_COLUMNS}) SELECT * FROM {rows}"
        " WHERE p.execution_id IN (SELECT id FROM ok)"
        f" ON CONFLICT (execution_id, node, visit) DO UPDATE SET {_WORK_SET})"
    ),
    lambda rows: (
        f"x AS (DELETE FROM waits w USING {rows} WHERE w.execution_id = x.execution_id"
        " AND w.node = x.node AND w.visit = x.visit AND x.execution_id IN (SELECT id FROM ok))"
    ),
    lambda rows: (
        f"y AS (INSERT INTO waits ({WAIT_COLUMNS}) SELECT * FROM {rows}"
        " WHERE y.execution_id IN (SELECT id FROM ok)"
        f" ON CONFLICT (execution_id, node, visit) DO UPDATE SET {_WAIT_SET})"
    ),
    lambda rows: (
        f"v AS (INSERT INTO events ({EVENT_COLUMNS}) SELECT * FROM {rows}"
        " WHERE v.execution_id IN (SELECT id FROM ok))"
    ),
    lambda rows: (
        f"z AS (SELECT pg_notify('{CHANNEL}', m.msg) FROM {rows} WHERE m.id IN (SELECT id FROM ok))"
    ),
)


@functools.cache
def _statement(present: tuple[bool, ...]) -> str:
    """The statement for a batch with rows in the parts ``present`` (one
    flag per part of :data:`_PARTS`): the parts without rows are left out,
    which PostgreSQL would otherwise still plan and start. A handful of
    shapes occur (a step, a new execution, a park…): asyncpg prepares each
    once per connection."""
    ctes: list[str] = []
    first = 1
    for part, alias, cte, here in zip(_PARTS, "gndpxyvm", _CTES, present, strict=True):
        if here:
            ctes.append(cte(_arrays(part, alias, first)))
            first += len(part)
    gated = [
        f"SELECT id FROM {source}" for source, here in zip("un", present[:2], strict=True) if here
    ]
    ctes.insert(2 if present[0] and present[1] else 1, f"ok AS ({' UNION ALL '.join(gated)})")
    # z is read so that its notifications are sent (a CTE without side
    # effects on tables runs only as far as it is read).
    last = " WHERE (SELECT count(*) FROM z) >= 0" if present[-1] else ""
    return f"WITH {', '.join(ctes)} SELECT id FROM ok{last}"


def compact(txn: Txn) -> bool:
    """Whether the write set of ``txn`` fits the statement: execution, work
    and wait rows, events and notifications (no delegations, no snapshot
    rows, no log cut short by a run continued as new, no new context or
    metadata), and no row both deleted and upserted, or upserted twice."""
    write = txn.state_write
    if write is not None and (write.table is not None or write.drop):
        return False
    record = txn.execution
    if txn.log_from is not None or (record.context_id, record.metadata) != txn.labels_was:
        return False
    if txn.delegations_put or txn.delegations_set or txn.delegations_del:
        return False
    work = {(w.node, w.visit) for w in txn.work_put}
    waits = {(w.node, w.visit) for w in txn.waits_put}
    return (
        len(work) == len(txn.work_put)
        and len(waits) == len(txn.waits_put)
        and not work.intersection(txn.work_del)
        and not waits.intersection(txn.waits_del)
    )


async def write_sets(
    conn: asyncpg.Connection, batch: Sequence[tuple[Txn, Gate | None]]
) -> set[str]:
    """Write the compact transactions of ``batch`` (one per execution; gate
    None: a new execution) in one statement; the ids whose gate passed.
    Outside a transaction, the statement commits by itself."""
    columns: list[list[Any]] = [[] for _ in range(sum(len(part) for part in _PARTS))]
    offsets = [0]
    for part in _PARTS[:-1]:
        offsets.append(offsets[-1] + len(part))
    gates, new, work_del, work, wait_del, waits, events, notices = offsets

    def add(first: int, row: Sequence[Any]) -> None:
        for i, value in enumerate(row):
            columns[first + i].append(value)

    for txn, gate in batch:
        record = txn.execution
        record.updated_at = txn.now
        eid = record.id
        if gate is None:
            add(new, execution_row(record))
        else:
            add(gates, _gate_row(txn, gate))
        for node, visit in txn.work_del:
            add(work_del, (eid, node, visit))
        for w in txn.work_put:
            add(work, (eid, w.node, w.visit, w.attempt, w.available_at, w.lease_owner))
            add(work + 6, (w.lease_expires_at, w.fence))
        for node, visit in txn.waits_del:
            add(wait_del, (eid, node, visit))
        for wait in txn.waits_put:
            add(waits, (eid, wait.node, wait.visit, wait.kind, wait.event, wait.deadline))
        for e in txn.events:
            add(events, (eid, e.seq, e.kind, e.node, e.visit, e.attempt, e.at, e.data))
        for kind in sorted(txn.notices):
            add(notices, (eid, f"{kind}:{eid}"))
    present = tuple(bool(columns[first]) for first in offsets)
    params = [
        column
        for first, part, here in zip(offsets, _PARTS, present, strict=True)
        if here
        for column in columns[first : first + len(part)]
    ]
    rows = await conn.fetch(_statement(present), *params)
    return {row[0] for row in rows}


def _gate_row(txn: Txn, gate: Gate) -> tuple[Any, ...]:
    r = txn.execution
    fence = gate.fence
    write = txn.state_write
    return (
        r.id,
        gate.last_seq,
        gate.updated_at,
        fence.node if fence else None,
        fence.visit if fence else None,
        fence.fence if fence else None,
        fence.owner if fence else None,
        gate.alone,
        r.status,
        r.cursor,
        r.last_seq,
        r.error,
        txn.now,
        r.state_seq,
        r.snapshot_seq,
        r.patch_room,
        write.row if write is not None else None,
    )

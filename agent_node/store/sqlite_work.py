"""SQLite: the work table's rows, each in a slot of its execution.

On SQLite the ``work`` table is keyed by ``(execution_id, slot)``, not by the
visit (schema version 10; PostgreSQL keeps ``(execution_id, node, visit)``).
A node's commit that ends one visit and leases the next one — the hot path,
a sequential step — *moves* the row: one ``UPDATE`` of its node, visit,
attempt, lease and fence in place. Nothing the table's key or its index on
``available_at`` holds changes, so the commit writes the row's one page, where
a ``DELETE`` and an ``INSERT`` of the visit's key also rewrote both entries of
the index (a page more per step, and the instructions of two index edits).

A moved row keeps its ``available_at``: the visit leased on has been ready
since the one before it was, and that is the order its lane is claimed in
again if its worker dies. A visit is still written once: a put that is not a
move updates the visit's row, or inserts one in a new slot when there is none.
The gate of a held commit and the fence checks find a visit by
``(execution_id, node, visit)``: a search of the execution's few slots.
"""

from __future__ import annotations

import sqlite3

from agent_node.store.records import WorkItem
from agent_node.store.sql_rows import work_row
from agent_node.store.txn import Txn

__all__ = ["columns", "copy_v9", "set_aside_v9", "write_work_txn"]

#: The row of the visit ``(?8, ?9)`` ended, moved to the new visit, unless
#: that one has a row already. A leased visit keeps the row's place in the
#: queue (``available_at``); one made ready for anyone takes its own.
_MOVE = (
    "UPDATE work SET node = ?1, visit = ?2, attempt = ?3, lease_owner = ?4,"
    " lease_expires_at = ?5, fence = ?6{} WHERE execution_id = ?7 AND node = ?8 AND visit = ?9"
    " AND NOT EXISTS (SELECT 1 FROM work o WHERE o.execution_id = ?7 AND o.node = ?1"
    " AND o.visit = ?2)"
)
_MOVE_LEASED = _MOVE.format("")
_MOVE_READY = _MOVE.format(", available_at = ?10")
_UPDATE = (
    "UPDATE work SET attempt = ?4, available_at = ?5, lease_owner = ?6, lease_expires_at = ?7,"
    " fence = ?8 WHERE execution_id = ?1 AND node = ?2 AND visit = ?3"
)
_INSERT = (
    "INSERT INTO work (execution_id, slot, node, visit, attempt, available_at, lease_owner,"
    " lease_expires_at, fence) VALUES (?1, {}, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
)
#: A visit in the execution's next slot (one after its last).
_INSERT_NEXT = _INSERT.format(
    "(SELECT coalesce(max(slot), 0) + 1 FROM work WHERE execution_id = ?1)"
)
#: A new execution's visits, in the slots given (it has none yet).
_INSERT_AT = _INSERT.format("?9")
_DELETE = "DELETE FROM work WHERE execution_id = ? AND node = ? AND visit = ?"

#: Upgrading a version 9 file: its rows, numbered in slots per execution.
_COPY_V9 = (
    "INSERT INTO work (execution_id, slot, node, visit, attempt, available_at, lease_owner,"
    " lease_expires_at, fence) SELECT execution_id,"
    " row_number() OVER (PARTITION BY execution_id ORDER BY node, visit), node, visit, attempt,"
    " available_at, lease_owner, lease_expires_at, fence FROM work_v9"
)


def set_aside_v9(conn: sqlite3.Connection) -> None:
    """Upgrading to version 10, before the schema's DDL makes the new table:
    a table keyed by the visit (no ``slot``) is put aside as ``work_v9``."""
    if "slot" not in columns(conn, "work"):
        conn.execute("DROP INDEX IF EXISTS ix_work_available")
        conn.execute("ALTER TABLE work RENAME TO work_v9")


def copy_v9(conn: sqlite3.Connection) -> None:
    """… and after it: the rows put aside, copied into slots."""
    if columns(conn, "work_v9"):
        conn.execute(_COPY_V9)
        conn.execute("DROP TABLE work_v9")


def columns(conn: sqlite3.Connection, table: str) -> set[str]:
    """The names of ``table``'s columns (none when there is no such table)."""
    return {c[1] for c in conn.execute(f"PRAGMA table_info({table})").fetchall()}


def write_work_txn(conn: sqlite3.Connection, txn: Txn) -> None:
    """Write ``txn``'s work: the visits it ended and those it made ready,
    moving a row from an ended visit to a new one where it can."""
    if txn.is_new:  # no row yet: each visit in a slot of its own
        for slot, item in enumerate(txn.work_put, 1):
            conn.execute(_INSERT_AT, (*work_row(item), slot))
        return
    ended = list(txn.work_del)
    put: list[WorkItem] = []
    for item in txn.work_put:
        key = (item.node, item.visit)
        if key in ended:  # ended and made ready again: its row, updated
            ended.remove(key)
            put.append(item)
        elif ended and _moved(conn, item, *ended[-1]):
            ended.pop()
        else:
            put.append(item)
    eid = txn.execution.id
    for node, visit in ended:
        conn.execute(_DELETE, (eid, node, visit))
    for item in put:
        row = work_row(item)
        if conn.execute(_UPDATE, row).rowcount == 0:
            conn.execute(_INSERT_NEXT, row)


def _moved(conn: sqlite3.Connection, item: WorkItem, node: str, visit: int) -> bool:
    """Whether the row of the ended visit ``(node, visit)`` now holds ``item``."""
    params: tuple[object, ...] = (
        item.node,
        item.visit,
        item.attempt,
        item.lease_owner,
        item.lease_expires_at,
        item.fence,
        item.execution_id,
        node,
        visit,
    )
    if item.lease_owner is None:
        return conn.execute(_MOVE_READY, (*params, item.available_at)).rowcount == 1
    return conn.execute(_MOVE_LEASED, params).rowcount == 1

"""SQLite: the event log, one rowid table keyed by execution number and seq.

On SQLite (schema version 10) each execution has a number (``executions.num``,
one more than the last, unique) and its event ``seq`` is the row
``num << 32 | seq`` of the ``events`` table, a rowid table: an execution's
events are one range of it, read in order, and the events of the newest
execution are appended at the table's right edge.

Why not the ``WITHOUT ROWID`` table keyed by ``(execution_id, seq)`` of
version 9 (PostgreSQL keeps its own): SQLite splits the last page of a rowid
table by starting a new one (``balance_quick``), while an index b-tree's split
spreads the cells evenly over three pages, so appends at its right edge left
the last leaf nearly full and split it again a commit or two later — 2.6 of a
sequential step's 4.8 pages written (1 MB state, WAL parsed frame by frame).
Each row also repeated its execution's 36-character id. A step now writes
the log's page, and the parent's now and then.

A commit's events take their execution's number from its record
(``ExecutionRecord.num``: read with the row it locked, or taken when it
inserted the row, and carried by the copies a runner holds from step to
step): a lookup in the INSERT (the id's index, then the row) cost ~3 µs of
an event's ~12. A record that does not know it (0) has the
INSERT look it up. Reads find it through the execution's row. (``RETURNING
num`` from the commit's write of the row cost more: SQLite runs a RETURNING
clause as a trigger program.)
"""

from __future__ import annotations

import logging
import sqlite3
import time

from agent_node.store.sql_rows import event_row
from agent_node.store.sqlite_work import columns
from agent_node.store.txn import Txn

__all__ = [
    "EVENTS_OF",
    "EVENTS_OF_KINDS",
    "INPUT_OF",
    "NEXT_NUM",
    "PATCHES_OF",
    "PRUNE_EVENTS",
    "copy_v9",
    "set_aside_v9",
    "write_log_txn",
]

log = logging.getLogger(__name__)

_SEQ = 4294967295  # the low 32 bits of a row id: its seq
#: Copies of at least this many events are logged (a few seconds a million).
_LOUD_COPY = 100_000
#: The events of execution ``x`` (an alias of ``executions``) with seq in the
#: range the query gives: ``e.id`` between ``x.num << 32`` and the next one.
_RANGE = "FROM executions x JOIN events e ON e.id > (x.num << 32) | {low} AND e.id {op} {high}"
_FIELDS = f"e.id & {_SEQ}, e.kind, e.node, e.visit, e.attempt, e.at, e.data"
_COLUMNS = f"x.id, {_FIELDS}"
#: Params: execution id, after seq. An event's fields but its execution's id,
#: which the caller knows (a string made per row: ~10 % of the read).
EVENTS_OF = (
    f"SELECT {_FIELDS} "
    + _RANGE.format(low="?2", op="<", high="(x.num + 1) << 32")
    + " WHERE x.id = ?1 ORDER BY e.id"
)
#: Format ``ids`` and ``kinds`` (``IN`` lists); params: the ids, the kinds.
EVENTS_OF_KINDS = (
    f"SELECT {_COLUMNS} "
    + _RANGE.format(low="0", op="<", high="(x.num + 1) << 32")
    + " WHERE x.id IN {ids} AND e.kind IN {kinds} ORDER BY x.id, e.id"
)
#: The input of a state that never had a snapshot (seq 1). Params: id.
INPUT_OF = (
    "SELECT e.data FROM executions x JOIN events e ON e.id = (x.num << 32) | 1"
    " WHERE x.id = ? AND e.kind = 'execution_started'"
)
#: A snapshot's patches. Params: id, after seq, up to seq.
PATCHES_OF = (
    "SELECT e.data "
    + _RANGE.format(low="?2", op="<=", high="(x.num << 32) | ?3")
    + " WHERE x.id = ?1 AND e.kind = 'node_completed' ORDER BY e.id"
)
#: Pruning: the events of the executions ``{ids}``, before their rows go.
PRUNE_EVENTS = (
    "DELETE FROM events WHERE id IN (SELECT e.id "
    + _RANGE.format(low="0", op="<", high="(x.num + 1) << 32")
    + " WHERE x.id IN {ids})"
)
#: A new execution's number (the writer holds the file's write lock).
NEXT_NUM = "SELECT coalesce(max(num), 0) + 1 FROM executions"
_NUM_OF = "(SELECT num FROM executions WHERE id = ?1)"
_INSERT_AS = (
    "INSERT INTO events (id, kind, node, visit, attempt, at, data)"
    " VALUES ({}, ?3, ?4, ?5, ?6, ?7, ?8)"
)
#: Params: an event's row (:func:`event_row`), its execution's number looked up.
_INSERT = _INSERT_AS.format(f"({_NUM_OF} << 32) | ?2")
#: … and with ``num << 32`` in place of the execution's id.
_INSERT_NUMBERED = _INSERT_AS.format("?1 | ?2")
_DELETE_BEFORE = f"DELETE FROM events WHERE id >= {_NUM_OF} << 32 AND id < ({_NUM_OF} << 32) | ?2"

#: Upgrading a version 9 file: its events, under their execution's number.
_COPY_V9 = (
    "INSERT INTO events (id, kind, node, visit, attempt, at, data)"
    " SELECT (x.num << 32) | v.seq, v.kind, v.node, v.visit, v.attempt, v.at, v.data"
    " FROM events_v9 v JOIN executions x ON x.id = v.execution_id"
)


def set_aside_v9(conn: sqlite3.Connection) -> None:
    """Upgrading to version 10, before the schema's DDL: the executions
    numbered (in the order of their rows), and a log keyed by execution id
    put aside as ``events_v9``."""
    if "num" not in columns(conn, "executions"):
        conn.execute("ALTER TABLE executions ADD COLUMN num INTEGER")
        conn.execute("UPDATE executions SET num = rowid")
    if "execution_id" in columns(conn, "events"):
        conn.execute("ALTER TABLE events RENAME TO events_v9")


def copy_v9(conn: sqlite3.Connection) -> None:
    """… and after it: the events put aside, copied into the new log (said
    in the log when there are many: the file's other processes wait)."""
    if not columns(conn, "events_v9"):
        return
    count = conn.execute("SELECT count(*) FROM events_v9").fetchall()[0][0]
    loud = count >= _LOUD_COPY
    if loud:
        log.warning("upgrading the store to schema 10: copying its %d events", count)
    started = time.monotonic()
    conn.execute(_COPY_V9)
    conn.execute("DROP TABLE events_v9")
    if loud:
        log.warning("store upgraded: %d events copied in %.1f s", count, time.monotonic() - started)


def write_log_txn(conn: sqlite3.Connection, txn: Txn) -> None:
    """Append ``txn``'s events to its execution's log (once its row is
    written), and drop the events before where the log starts over
    (``continue_as_new``)."""
    events = txn.events
    if events:
        high = txn.execution.num << 32
        if high:
            sql = _INSERT_NUMBERED
            rows = [(high, e.seq, e.kind, e.node, e.visit, e.attempt, e.at, e.data) for e in events]
        else:
            sql, rows = _INSERT, [event_row(e) for e in events]
        if len(rows) == 1:
            conn.execute(sql, rows[0])
        else:
            conn.executemany(sql, rows)
    if txn.log_from is not None:  # after: this commit's events before it go too
        conn.execute(_DELETE_BEFORE, (txn.execution.id, txn.log_from))

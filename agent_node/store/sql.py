"""SQL text and row mapping shared by the SQLite and PostgreSQL stores.

Statements are written once with ``?`` placeholders; :func:`numbered` turns
them into PostgreSQL's ``$1, $2, …``. A transaction's write set becomes a
short list of ``(statement, rows)`` pairs (:func:`flush_statements`) that each
driver runs with ``executemany``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from typing import Any

from agent_node.store.records import TERMINAL
from agent_node.store.sql_rows import (
    delegation_row,
    event_row,
    execution_row,
    wait_row,
    work_row,
)
from agent_node.store.txn import Txn

__all__ = [
    "ASKING",
    "DELEGATION_COLUMNS",
    "EXECUTION_COLUMNS",
    "LIVE",
    "LIVE_IN",
    "OPEN_INDEX",
    "OPEN_WHERE",
    "PENDING_PUSHES",
    "PUSH_COLUMNS",
    "STATELESS_COLUMNS",
    "TERMINAL_IN",
    "Statements",
    "dues_from_rows",
    "flush_statements",
    "numbered",
]

EXECUTION_COLUMNS = (
    "id, workflow_id, workflow_version, workflow_ref, status, state, cursor, last_seq,"
    " error, context_id, metadata, created_at, updated_at, state_seq, snapshot_seq, patch_room"
)
#: The same, the state read as "" (a listing that shows no state reads none).
STATELESS_COLUMNS = EXECUTION_COLUMNS.replace(" state,", " '' AS state,")
#: Finished and live statuses as SQL lists (``status IN …``).
TERMINAL_IN = "(" + ", ".join(f"'{s}'" for s in sorted(TERMINAL)) + ")"
LIVE = frozenset({"pending", "running", "waiting"})
LIVE_IN = "(" + ", ".join(f"'{s}'" for s in sorted(LIVE)) + ")"
#: The index of the unfinished executions that have a caller (schema 12),
#: and the condition of a count on it: the index's own, word for word
#: (SQLite reads a partial index only for a query that repeats its terms).
OPEN_INDEX = "ix_executions_open"
OPEN_WHERE = f"status IN {LIVE_IN}"
#: What every commit writes of an execution's row; a commit that changes the
#: state adds where it is (``_STATE_AT``), and its value when the row holds it;
#: one that changes the status, the status (``_STATUS``: only then do the
#: triggers that watch it run — SQLite runs a trigger's program for every
#: row of an UPDATE that SETs a column it watches, whatever its WHEN).
#: ``context_id`` and ``metadata`` only when a plan changed them
#: (``update_labels``, rare): SQLite rewrites the entry of every index on a
#: column an UPDATE SETs, changed or not, and each step of an A2A task
#: (which has a context) rewrote its ``ix_executions_context`` entry — a
#: page more in the log: 4,192 bytes written a step against 3,144
#: (tests/integration/test_sqlite_pages.py).
_EXECUTION_SET = "cursor = ?, last_seq = ?, error = ?, updated_at = ?"
_STATUS = "status = ?, finished_at = ?, "
_STATE_AT = ", state_seq = ?, snapshot_seq = ?, patch_room = ?"
EVENT_COLUMNS = "execution_id, seq, kind, node, visit, attempt, at, data"
WORK_COLUMNS = (
    "execution_id, node, visit, attempt, available_at, lease_owner, lease_expires_at, fence"
)
WAIT_COLUMNS = "execution_id, node, visit, kind, event, deadline"
DELEGATION_COLUMNS = (
    "execution_id, node, visit, peer, remote_task_id, endpoint, version, identity, sent_at,"
    " next_poll_at, polls, relay, state, turn, request, question, last_error, claimed_at"
)
#: The columns a delegation's content update writes (all but the key); news
#: applied to the row ends the try in flight, if any (``claimed_at``).
_DELEGATION_SET = (
    "peer = ?, remote_task_id = ?, endpoint = ?, version = ?, identity = ?, sent_at = ?,"
    " next_poll_at = ?, polls = ?, relay = ?, state = ?, turn = ?, request = ?, question = ?,"
    " last_error = ?, claimed_at = NULL"
)
_DELEGATION_KEY = "execution_id = ? AND node = ? AND visit = ?"

_ASKS = "EXISTS (SELECT 1 FROM waits w WHERE w.execution_id = executions.id AND w.kind IN ({}))"
#: What an execution asks (:func:`~agent_node.store.records.asking_of`), as a
#: WHERE condition.
ASKING: dict[str, str] = {
    "auth": "(status = 'waiting' AND " + _ASKS.format("'auth'") + ")",
    "input": "(status = 'waiting' AND "
    + _ASKS.format("'input'")
    + " AND NOT "
    + _ASKS.format("'auth'")
    + ")",
    "none": "NOT (status = 'waiting' AND " + _ASKS.format("'input', 'auth'") + ")",
}
PUSH_COLUMNS = (
    "task_id, id, config, version, caller, created_at, pushed_seq, settled, attempts,"
    " next_attempt_at, last_error, lease_owner, lease_expires_at"
)
#: Configs with a change to push (params: now, now, limit); ``c`` and ``e`` are
#: the config and its task. Parked or terminal tasks only: a running task's
#: changes are pushed when it next stops.
PENDING_PUSHES = (
    "FROM push_configs c JOIN executions e ON e.id = c.task_id"
    " WHERE c.settled = 0 AND c.next_attempt_at <= ?"
    " AND (c.lease_owner IS NULL OR c.lease_expires_at < ?)"
    " AND e.last_seq > c.pushed_seq AND e.status IN ('waiting', 'completed', 'failed', 'canceled')"
    " ORDER BY c.next_attempt_at LIMIT ?"
)


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
            # caller: metadata's, in a column of its own so that listing one
            # caller's tasks reads an index (it never changes after this).
            f"INSERT INTO executions ({EXECUTION_COLUMNS}, caller, finished_at)"
            f" VALUES {in_list(18)} ON CONFLICT (id) DO NOTHING"
        )
        # Three forms, so that a step that leaves the state alone (or whose
        # state is kept as patches) never writes the state's column: an
        # UPDATE that SETs it rewrites it (PostgreSQL would copy it, TOASTed
        # or not; SQLite rewrites the whole record whatever it SETs).
        # Each keyed by whether the status moved (it is SET, first, or not).
        self.update_labels = q("UPDATE executions SET context_id = ?, metadata = ? WHERE id = ?")
        self.update_execution = {
            moved: q(f"UPDATE executions SET {_STATUS * moved}{_EXECUTION_SET} WHERE id = ?")
            for moved in (False, True)
        }
        self.update_execution_at = {
            moved: q(
                f"UPDATE executions SET {_STATUS * moved}{_EXECUTION_SET}{_STATE_AT} WHERE id = ?"
            )
            for moved in (False, True)
        }
        self.update_execution_state = {
            moved: q(
                f"UPDATE executions SET {_STATUS * moved}{_EXECUTION_SET}{_STATE_AT}, state = ?"
                " WHERE id = ?"
            )
            for moved in (False, True)
        }
        self.put_snapshot = q(
            "INSERT INTO snapshots (execution_id, seq, state) VALUES (?, ?, ?)"
            " ON CONFLICT (execution_id) DO UPDATE SET seq = excluded.seq, state = excluded.state"
        )
        self.delete_snapshot = q("DELETE FROM snapshots WHERE execution_id = ?")
        self.delete_events_before = q("DELETE FROM events WHERE execution_id = ? AND seq < ?")
        self.snapshot_of = q("SELECT state FROM snapshots WHERE execution_id = ? AND seq = ?")
        # The base of a state that never had a snapshot: its input (seq 1).
        self.input_of = q(
            "SELECT data FROM events WHERE execution_id = ? AND seq = 1"
            " AND kind = 'execution_started'"
        )
        # The patches of a snapshot's range: state_seq is always an event of
        # this kind (or 0), so the range holds no event after the last change.
        self.patches_of = q(
            "SELECT data FROM events WHERE execution_id = ? AND seq > ? AND seq <= ?"
            " AND kind = 'node_completed' ORDER BY seq"
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
        self.lease_owners = (
            "SELECT lease_owner FROM work WHERE lease_owner IS NOT NULL"
            " UNION SELECT claimed_by FROM delegations WHERE claimed_by IS NOT NULL"
            " UNION SELECT lease_owner FROM push_configs WHERE lease_owner IS NOT NULL"
        )
        self.due_waits = q(
            f"SELECT {WAIT_COLUMNS} FROM waits WHERE deadline IS NOT NULL AND deadline <= ?"
            " ORDER BY deadline LIMIT ?"
        )
        self.next_work = (
            "SELECT MIN(CASE WHEN lease_owner IS NULL THEN available_at"
            " ELSE lease_expires_at END) FROM work"
        )
        self.next_wait = "SELECT MIN(deadline) FROM waits WHERE deadline IS NOT NULL"
        # One statement, so one snapshot: an execution moving from a wait to
        # work (a signal) meanwhile is never read as having neither.
        among = "= ANY(?::text[])" if postgres else "IN (SELECT value FROM json_each(?))"
        self.next_due_of = q(
            "SELECT execution_id, MIN(CASE WHEN lease_owner IS NULL THEN available_at"
            f" ELSE lease_expires_at END) FROM work WHERE execution_id {among}"
            " GROUP BY execution_id UNION ALL SELECT execution_id, MIN(deadline) FROM waits"
            f" WHERE execution_id {among} GROUP BY execution_id"
        )
        self.put_push = q(
            f"INSERT INTO push_configs ({PUSH_COLUMNS})"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (task_id, id) DO UPDATE"
            " SET config = excluded.config, version = excluded.version, caller = excluded.caller,"
            " created_at = excluded.created_at, pushed_seq = excluded.pushed_seq,"
            " settled = excluded.settled, attempts = excluded.attempts,"
            " next_attempt_at = excluded.next_attempt_at, last_error = excluded.last_error,"
            " lease_owner = excluded.lease_owner, lease_expires_at = excluded.lease_expires_at"
        )
        self.push_configs_of = q(
            f"SELECT {PUSH_COLUMNS} FROM push_configs WHERE task_id = ? ORDER BY created_at, id"
        )
        self.delete_push = q("DELETE FROM push_configs WHERE task_id = ? AND id = ?")
        self.take_back_push = q(
            "DELETE FROM push_configs WHERE task_id = ? AND id = ? AND created_at = ?"
            " AND config = ?"
        )
        self.other_pushes = q("SELECT COUNT(*) FROM push_configs WHERE task_id = ? AND id <> ?")
        # A caller's unfinished executions, up to a bound, on their index alone.
        hint = "" if postgres else f" INDEXED BY {OPEN_INDEX}"
        self.count_open = q(
            f"SELECT COUNT(*) FROM (SELECT 1 FROM executions{hint}"
            f" WHERE caller = ? AND {OPEN_WHERE} LIMIT ?) o"
        )
        self.put_delegation = q(
            f"INSERT INTO delegations ({DELEGATION_COLUMNS}) VALUES {in_list(18)}"
        )
        self.update_delegation = q(
            f"UPDATE delegations SET {_DELEGATION_SET} WHERE {_DELEGATION_KEY}"
            " AND state = ? AND turn = ?"
        )
        self.delete_delegation = q(f"DELETE FROM delegations WHERE {_DELEGATION_KEY}")
        self.drop_delegation = q(
            f"DELETE FROM delegations WHERE {_DELEGATION_KEY} AND state = ? AND turn = ?"
        )
        self.delegation = q(f"SELECT {DELEGATION_COLUMNS} FROM delegations WHERE {_DELEGATION_KEY}")
        self.delegations_of_task = q(
            f"SELECT {DELEGATION_COLUMNS} FROM delegations WHERE remote_task_id = ?"
        )
        self.delegations_of = q(
            f"SELECT {DELEGATION_COLUMNS} FROM delegations WHERE execution_id = ? ORDER BY sent_at"
        )
        # Read by a transaction on the execution: locked, so that a watchdog's
        # claim of one of them is seen, or waits (SKIP LOCKED) until the commit.
        self.lock_delegations_of = q(
            f"SELECT {DELEGATION_COLUMNS} FROM delegations WHERE execution_id = ?{lock}"
        )
        self.reschedule_delegation = q(
            "UPDATE delegations SET next_poll_at = ?, last_error = ?, claimed_at = NULL"
            f" WHERE {_DELEGATION_KEY} AND state = ? AND turn = ?"
        )
        self.next_delegation_at = q("SELECT MIN(next_poll_at) FROM delegations WHERE polls = 0")
        # Rows backed off after a failure (a claimed row is leased further).
        self.wake_delegations = q(
            "UPDATE delegations SET next_poll_at = ? WHERE peer = ? AND state = ?"
            " AND next_poll_at > ? AND next_poll_at <= ? AND last_error IS NOT NULL"
        )
        self.release_push = q(
            "UPDATE push_configs SET pushed_seq = ?, settled = ?, attempts = ?,"
            " next_attempt_at = ?, last_error = ?, lease_owner = NULL, lease_expires_at = NULL"
            " WHERE task_id = ? AND id = ? AND lease_owner = ?"
        )


def flush_statements(
    txn: Txn, stmts: Statements, *, own: bool = False
) -> list[tuple[str, list[tuple[Any, ...]]]]:
    """The write set of ``txn`` as ``(statement, rows)`` pairs, in lock-safe
    order; with ``own``, without its work and its events, which SQLite
    writes its own way (:mod:`.sqlite_work`, :mod:`.sqlite_events`)."""
    record = txn.execution
    eid = record.id
    out: list[tuple[str, list[tuple[Any, ...]]]] = []
    if txn.is_new:
        finished = record.updated_at if record.status in TERMINAL else None
        out.append((stmts.insert_execution, [(*execution_row(record), finished)]))
    if not own and txn.work_del:
        out.append((stmts.delete_work, [(eid, n, v) for n, v in txn.work_del]))
    if not own and txn.work_put:
        out.append((stmts.put_work, [work_row(w) for w in txn.work_put]))
    if txn.waits_del:
        out.append((stmts.delete_wait, [(eid, n, v) for n, v in txn.waits_del]))
    if txn.waits_put:
        out.append((stmts.put_wait, [wait_row(w) for w in txn.waits_put]))
    if txn.delegations_del:
        out.append((stmts.delete_delegation, [(eid, n, v) for n, v in txn.delegations_del]))
    if txn.delegations_put:
        out.append((stmts.put_delegation, [delegation_row(d) for d in txn.delegations_put]))
    # Conditional updates (delegations_set) are run one by one by the store:
    # each must change exactly one row (see delegation_update_row).
    if txn.events and not own:
        out.append((stmts.insert_events, [event_row(e) for e in txn.events]))
    if txn.log_from is not None and not own:
        out.append((stmts.delete_events_before, [(eid, txn.log_from)]))
    write = txn.state_write
    if write is not None and write.table is not None:
        out.append((stmts.put_snapshot, [(eid, record.snapshot_seq, write.table)]))
    elif write is not None and write.drop:
        out.append((stmts.delete_snapshot, [(eid,)]))
    if not txn.is_new:
        labels = (record.context_id, record.metadata)
        if labels != txn.labels_was:  # before the row's UPDATE, which a gate checks first
            out.append((stmts.update_labels, [(*labels, eid)]))
        out.append(_update_execution(txn, stmts))
    return out


def _update_execution(txn: Txn, stmts: Statements) -> tuple[str, list[tuple[Any, ...]]]:
    r = txn.execution
    row: tuple[Any, ...] = (r.cursor, r.last_seq, r.error, txn.now)
    moved = r.status != txn.status_was
    if moved:  # and finished_at: updated_at once finished (store/listing.py)
        row = (r.status, txn.now if r.status in TERMINAL else None, *row)
    write = txn.state_write
    if txn.state_change is None and write is None:
        return stmts.update_execution[moved], [(*row, r.id)]
    row += (r.state_seq, r.snapshot_seq, r.patch_room)
    if write is None or write.row is None:
        return stmts.update_execution_at[moved], [(*row, r.id)]
    return stmts.update_execution_state[moved], [(*row, write.row, r.id)]


def dues_from_rows(rows: Iterable[Sequence[Any]]) -> dict[str, float]:
    """The rows of ``next_due_of`` as each execution's next due (``inf``
    for a time that is NULL: a wait for an event)."""
    dues: dict[str, float] = {}
    for execution_id, at in rows:
        due = math.inf if at is None else float(at)
        dues[execution_id] = min(due, dues.get(execution_id, math.inf))
    return dues


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

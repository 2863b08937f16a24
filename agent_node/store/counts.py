"""Counts of executions, kept as they change: a listing's total without a scan.

``ListTasks`` answers with ``totalSize`` and the operator API with
``count=1``. A ``COUNT(*)`` of a million finished executions walks an index
of a million entries (13 to 60 ms on SQLite, 100+ ms on PostgreSQL), the one
cost of a listing that grew with the store. So the stores keep
``execution_counts``: how many executions there are per (caller, workflow,
status), moved by triggers on ``executions`` in the transaction that moves
the row — every writer, the hot path's batched statements, retention and
hand-written SQL alike. A count filtered by those three columns alone (any
of them, or none) is a sum over a few rows of that table (:func:`counts_query`).

* **SQLite** has one writer: its triggers add to the count rows directly.
* **PostgreSQL** has many writers. Rows that every finishing execution adds
  to would serialise them (each holds its row lock until it commits), so
  its triggers append *deltas* (``execution_count_deltas``, no index: an
  append) and a store folds them into the counts every
  :data:`FOLD_EVERY` seconds (:data:`FOLD`, one replica at a time). A count
  reads both in one statement; folding moves rows from one to the other in
  one transaction, so a count never sees a delta twice or not at all.

The caller is keyed as ``''`` (none) or ``'.' + caller``, so "no caller"
and a caller named ``''`` stay apart in a key that is never NULL (a NULL
would make every row unique to an upsert). Counts of other filters
(context, what a waiting execution asks, last change) are counted on their
own index: a context's tasks, the waiting ones — what they match, not the
store. A count row whose executions are gone stays, at zero.

Schema version 8 (:mod:`.schema`) adds the tables, the triggers, and fills
the counts from the rows already there (:data:`FILL`), in the upgrade's
transaction.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

__all__ = [
    "FILL",
    "FOLD",
    "FOLD_EVERY",
    "FOLD_LOCK",
    "counts_query",
    "trigger_ddl",
]

#: Seconds between folds of PostgreSQL's deltas.
FOLD_EVERY = 2.0
#: Advisory lock of the fold: one replica folds at a time.
FOLD_LOCK = 0x636F756E74  # "count"

_COLUMNS = "caller_key, workflow_id, status"


def _key(row: str) -> str:
    return f"CASE WHEN {row}.caller IS NULL THEN '' ELSE '.' || {row}.caller END"


#: Every count again, from the rows (the upgrade to version 8).
FILL = (
    "DELETE FROM execution_counts",
    f"INSERT INTO execution_counts ({_COLUMNS}, n)"
    f" SELECT {_key('e')}, e.workflow_id, e.status, COUNT(*) FROM executions e"
    f" GROUP BY {_key('e')}, e.workflow_id, e.status",
)

#: PostgreSQL: the deltas so far, into the counts (in a transaction holding
#: :data:`FOLD_LOCK`; a delta appended meanwhile waits for the next fold).
FOLD = (
    f"WITH folded AS (DELETE FROM execution_count_deltas RETURNING {_COLUMNS}, n)"
    f" INSERT INTO execution_counts ({_COLUMNS}, n)"
    f" SELECT {_COLUMNS}, SUM(n) FROM folded GROUP BY {_COLUMNS}"
    f" ON CONFLICT ({_COLUMNS}) DO UPDATE SET n = execution_counts.n + EXCLUDED.n"
)

_MOVED = (
    "OLD.status IS DISTINCT FROM NEW.status OR OLD.caller IS DISTINCT FROM NEW.caller"
    " OR OLD.workflow_id IS DISTINCT FROM NEW.workflow_id"
)


def _sqlite_add(row: str, n: int) -> str:
    return (
        f"INSERT INTO execution_counts ({_COLUMNS}, n)"
        f" VALUES ({_key(row)}, {row}.workflow_id, {row}.status, {n})"
        f" ON CONFLICT ({_COLUMNS}) DO UPDATE SET n = n + {n};"
    )


_PG_FUNCTION = f"""CREATE OR REPLACE FUNCTION agent_node_count() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO execution_count_deltas ({_COLUMNS}, n)
    VALUES ({_key("NEW")}, NEW.workflow_id, NEW.status, 1);
  ELSIF TG_OP = 'DELETE' THEN
    INSERT INTO execution_count_deltas ({_COLUMNS}, n)
    VALUES ({_key("OLD")}, OLD.workflow_id, OLD.status, -1);
  ELSE
    INSERT INTO execution_count_deltas ({_COLUMNS}, n)
    VALUES ({_key("OLD")}, OLD.workflow_id, OLD.status, -1),
           ({_key("NEW")}, NEW.workflow_id, NEW.status, 1);
  END IF;
  RETURN NULL;
END $$"""


def trigger_ddl(dialect: str) -> list[str]:
    """The triggers that keep the counts (idempotent: run at every creation
    and upgrade)."""
    if dialect == "sqlite":
        return [
            "CREATE TRIGGER IF NOT EXISTS executions_counted AFTER INSERT ON executions"
            f" BEGIN {_sqlite_add('NEW', 1)} END",
            "CREATE TRIGGER IF NOT EXISTS executions_uncounted AFTER DELETE ON executions"
            f" BEGIN {_sqlite_add('OLD', -1)} END",
            "CREATE TRIGGER IF NOT EXISTS executions_recounted"
            " AFTER UPDATE OF status, caller, workflow_id ON executions"
            f" WHEN {_MOVED.replace('IS DISTINCT FROM', 'IS NOT')}"
            f" BEGIN {_sqlite_add('OLD', -1)} {_sqlite_add('NEW', 1)} END",
        ]
    return [
        _PG_FUNCTION,
        "DROP TRIGGER IF EXISTS executions_counted ON executions",
        "CREATE TRIGGER executions_counted AFTER INSERT OR DELETE ON executions"
        " FOR EACH ROW EXECUTE FUNCTION agent_node_count()",
        "DROP TRIGGER IF EXISTS executions_recounted ON executions",
        "CREATE TRIGGER executions_recounted"
        " AFTER UPDATE OF status, caller, workflow_id ON executions"
        f" FOR EACH ROW WHEN ({_MOVED}) EXECUTE FUNCTION agent_node_count()",
    ]


def counts_query(
    postgres: bool,
    status: Collection[str] | None,
    workflow_id: str | None,
    caller: str | None,
) -> tuple[str, list[Any]]:
    """The statement (``?`` placeholders) and parameters of a kept count."""
    clauses: list[str] = []
    params: list[Any] = []
    if status is not None:
        values = list(status)
        if not values:
            return "SELECT 0", []
        clauses.append(f"status IN ({', '.join('?' * len(values))})")
        params.extend(values)
    if workflow_id is not None:
        clauses.append("workflow_id = ?")
        params.append(workflow_id)
    if caller is not None:
        clauses.append("caller_key = ?")
        params.append("." + caller)
    where = " WHERE " + " AND ".join(clauses) if clauses else ""
    if not postgres:
        return f"SELECT COALESCE(SUM(n), 0) FROM execution_counts{where}", params
    both = (
        f"SELECT {_COLUMNS}, n FROM execution_counts"
        f" UNION ALL SELECT {_COLUMNS}, n FROM execution_count_deltas"
    )
    return f"SELECT COALESCE(SUM(n), 0) FROM ({both}) c{where}", params

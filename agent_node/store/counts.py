"""Counts of executions, kept as they change: a listing's total without a scan.

``ListTasks`` answers with ``totalSize`` and the operator API with
``count=1``. A ``COUNT(*)`` of a million finished executions walks an index
of a million entries (13 to 60 ms on SQLite, 100+ ms on PostgreSQL), the one
cost of a listing that grew with the store. So the stores keep
``execution_counts``: how many *finished* executions there are per (caller,
workflow, status), moved by triggers on ``executions`` in the transaction
that moves the row — every writer, the hot path's batched statements,
retention and hand-written SQL alike. The live ones (pending, running,
waiting) are bounded by the work in hand and counted on the status index
as they are: a trigger then fires once in an execution's life, when it
finishes, not at each of its changes of status. A count filtered by those
three columns alone (any of them, or none) is a sum over a few rows of that
table plus a count of the live rows (``listing.count``).

Each count is split in *shards*, summed when read:

* **SQLite** has one writer: everything is shard 0.
* **PostgreSQL** has many writers. A row that every finishing execution
  adds to would serialise them (each transaction holds its row lock until
  it commits), and two transactions moving executions between the same
  two statuses in opposite directions would deadlock on a pair of them. So
  each server process (backend) adds to rows of its own, shard
  ``pg_backend_pid()``: no two transactions running at once touch the same
  count row. Those rows are small and updated in place (HOT), so the table
  stays a few pages. The rows of backends that are gone (a closed pool's
  connections) are folded into shard 0 by :data:`COMPACT`, every
  :data:`COMPACT_EVERY` seconds, by one replica at a time; a row moves
  whole, under its row lock, so no count is lost or counted twice, even if
  a new backend reuses the pid meanwhile. (An earlier design appended
  deltas to a table folded every few seconds: after a burst of a million,
  that table kept 84 MB of empty pages that every count scanned, 15 ms.)

The caller is keyed as ``''`` (none) or ``'.' + caller``, so "no caller"
and a caller named ``''`` stay apart in a key that is never NULL (a NULL
would make every row unique to an upsert). Counts of other filters are
counted on the rows: a context's tasks and the waiting ones on their own
index (what they match, not the store); the last change (``updated_after``)
has no index of its own, as every step changes it. A count row whose
executions are gone stays, at zero.

Schema version 8 (:mod:`.migrations`) adds the table and the triggers, and
fills the counts from the rows already there (:data:`FILL`), in the
upgrade's transaction.
"""

from __future__ import annotations

from agent_node.store.sql import TERMINAL_IN

__all__ = [
    "COMPACT",
    "COMPACT_EVERY",
    "COMPACT_LOCK",
    "FILL",
    "trigger_ddl",
]

#: Seconds between compactions of PostgreSQL's shards.
COMPACT_EVERY = 60.0
#: Advisory lock of the compaction: one replica compacts at a time.
COMPACT_LOCK = 0x636F756E74  # "count"

_KEYS = "caller_key, workflow_id, status"
#: The counted statuses.
_DONE = TERMINAL_IN
#: Adding to a count row that is there (PostgreSQL's spelling: SQLite's
#: triggers take no table alias, and there an unqualified ``n`` is the row's).
_CONFLICT = f"ON CONFLICT (shard, {_KEYS}) DO UPDATE SET n = c.n + EXCLUDED.n"
_SQLITE_CONFLICT = f"ON CONFLICT (shard, {_KEYS}) DO UPDATE SET n = n + excluded.n"


def _key(row: str) -> str:
    return f"CASE WHEN {row}.caller IS NULL THEN '' ELSE '.' || {row}.caller END"


#: Every count again, from the rows (the upgrade to version 8).
FILL = (
    "DELETE FROM execution_counts",
    f"INSERT INTO execution_counts (shard, {_KEYS}, n)"
    f" SELECT 0, {_key('e')}, e.workflow_id, e.status, COUNT(*) FROM executions e"
    f" WHERE e.status IN {_DONE} GROUP BY {_key('e')}, e.workflow_id, e.status",
)

#: PostgreSQL: the shards of backends that are gone, into shard 0 (in a
#: transaction holding :data:`COMPACT_LOCK`).
COMPACT = (
    "WITH gone AS (DELETE FROM execution_counts c WHERE c.shard <> 0"
    " AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = c.shard)"
    f" RETURNING {_KEYS}, n)"
    f" INSERT INTO execution_counts AS c (shard, {_KEYS}, n)"
    f" SELECT 0, {_KEYS}, SUM(n) FROM gone GROUP BY {_KEYS} {_CONFLICT}"
)

#: An update that moves a finished execution's count: into, out of or
#: between finished statuses, or its caller or workflow (never, by us).
_MOVED = (
    f"(OLD.status IN {_DONE} OR NEW.status IN {_DONE}) AND (OLD.status IS DISTINCT FROM"
    " NEW.status OR OLD.caller IS DISTINCT FROM NEW.caller"
    " OR OLD.workflow_id IS DISTINCT FROM NEW.workflow_id)"
)


def _add(row: str, n: int, *, postgres: bool) -> str:
    """Add ``n`` to ``row``'s count: in the backend's shard on PostgreSQL,
    in shard 0 on SQLite."""
    if postgres:
        return (
            f"INSERT INTO execution_counts AS c (shard, {_KEYS}, n) VALUES (pg_backend_pid(),"
            f" {_key(row)}, {row}.workflow_id, {row}.status, {n}) {_CONFLICT};"
        )
    return (
        f"INSERT INTO execution_counts (shard, {_KEYS}, n)"
        f" VALUES (0, {_key(row)}, {row}.workflow_id, {row}.status, {n}) {_SQLITE_CONFLICT};"
    )


def _sqlite_move(row: str, n: int) -> str:
    """Add ``n`` to ``row``'s count if ``row`` is finished (SQLite: shard 0)."""
    return (
        f"INSERT INTO execution_counts (shard, {_KEYS}, n)"
        f" SELECT 0, {_key(row)}, {row}.workflow_id, {row}.status, {n}"
        f" WHERE {row}.status IN {_DONE} {_SQLITE_CONFLICT};"
    )


_PG_FUNCTION = f"""CREATE OR REPLACE FUNCTION agent_node_count() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP <> 'INSERT' AND OLD.status IN {_DONE} THEN
    {_add("OLD", -1, postgres=True)}
  END IF;
  IF TG_OP <> 'DELETE' AND NEW.status IN {_DONE} THEN
    {_add("NEW", 1, postgres=True)}
  END IF;
  RETURN NULL;
END $$"""


def trigger_ddl(dialect: str) -> list[str]:
    """The triggers that keep the counts (idempotent: run at every creation
    and upgrade)."""
    if dialect == "sqlite":
        moved = _MOVED.replace("IS DISTINCT FROM", "IS NOT")
        return [
            "CREATE TRIGGER IF NOT EXISTS executions_counted AFTER INSERT ON executions"
            f" WHEN NEW.status IN {_DONE} BEGIN {_add('NEW', 1, postgres=False)} END",
            "CREATE TRIGGER IF NOT EXISTS executions_uncounted AFTER DELETE ON executions"
            f" WHEN OLD.status IN {_DONE} BEGIN {_add('OLD', -1, postgres=False)} END",
            # One trigger for an update (each trigger is a program run per
            # row): out of the count it was in, into the one it is in now,
            # each a no-op (its SELECT finds no row) when not finished.
            "CREATE TRIGGER IF NOT EXISTS executions_recounted"
            " AFTER UPDATE OF status, caller, workflow_id ON executions"
            f" WHEN {moved} BEGIN {_sqlite_move('OLD', -1)} {_sqlite_move('NEW', 1)} END",
        ]
    return [
        _PG_FUNCTION,
        # Room on each page for the versions of its rows' updates (HOT), and
        # the dead ones cleared often, whatever the table's (tiny) size.
        "ALTER TABLE execution_counts SET (fillfactor = 10,"
        " autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000,"
        " autovacuum_analyze_scale_factor = 0, autovacuum_analyze_threshold = 1000)",
        "DROP TRIGGER IF EXISTS executions_counted ON executions",
        "CREATE TRIGGER executions_counted AFTER INSERT ON executions"
        f" FOR EACH ROW WHEN (NEW.status IN {_DONE}) EXECUTE FUNCTION agent_node_count()",
        "DROP TRIGGER IF EXISTS executions_uncounted ON executions",
        "CREATE TRIGGER executions_uncounted AFTER DELETE ON executions"
        f" FOR EACH ROW WHEN (OLD.status IN {_DONE}) EXECUTE FUNCTION agent_node_count()",
        "DROP TRIGGER IF EXISTS executions_recounted ON executions",
        "CREATE TRIGGER executions_recounted"
        " AFTER UPDATE OF status, caller, workflow_id ON executions"
        f" FOR EACH ROW WHEN ({_MOVED}) EXECUTE FUNCTION agent_node_count()",
    ]

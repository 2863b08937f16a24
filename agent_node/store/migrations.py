"""What each schema version added to the one before: how a store of an
older version becomes one of :data:`~.schema.SCHEMA_VERSION`.

Apart from :mod:`.schema`, the tables as they are now, because the history
is read only when an older store opens: the upgraders (:mod:`.sqlite_schema`,
:mod:`.pg_schema`) walk it from the store's version, one version at a time.

* 2 adds ``push_configs``, the push outbox.
* 3 adds ``delegations``; 4 makes each of its rows a state machine
  (``state``, ``turn``, ``request``, ``question``, ``last_error``); 5 names
  the watchdog that claimed a row (``claimed_by``, a lease owner), so a node
  that restarts takes up at once the rows its dead process had claimed, and
  indexes the rows not taken up since their last move
  (``ix_delegations_first_poll``).
* 6 gives executions a ``caller`` column (metadata's, backfilled) and
  indexes every way they are listed — newest first, by caller, context or
  workflow — so a page costs the same with a million executions as with ten.
* 7 adds ``snapshots`` and the ``executions`` columns ``state_seq``,
  ``snapshot_seq`` and ``patch_room``: a step writes its patch and not the
  whole state (:mod:`.snapshots`). Version 6 rows hold their whole state and
  read as such: nothing is rewritten on upgrade.
* 8 adds ``execution_counts``, kept by triggers (:mod:`.counts`); the upgrade
  counts the rows already there. It also gives executions ``finished_at``
  (``updated_at`` once finished, kept by triggers) and its index, for
  listings by last change (:mod:`.listing`).
* 9 leaves executions without a caller or a context (those started
  in-process) out of the indexes by caller and by context: a row that no
  listing finds through an index costs no entry in it (fewer pages written
  per new execution, and cached).
* 10 keys SQLite's ``work`` by ``(execution_id, slot)``, so that the commit
  that ends a visit and leases the next moves the row in place
  (:mod:`.sqlite_work`), and makes its ``events`` a rowid table keyed by
  ``executions.num << 32 | seq`` (:mod:`.sqlite_events`); the upgrade
  numbers the executions and copies both tables. PostgreSQL's tables are
  those of version 9.
* 11 gives PostgreSQL's executions an index of their ids in code point
  order (``ix_executions_id``), for a search by the start of an id whatever
  the database's collation; SQLite's are as in 10.
* 12 indexes each caller's unfinished executions (``ix_executions_open``,
  partial: those that have a caller and are pending, running or waiting),
  so the cap on a caller's open tasks counts that caller's few, not the
  store's (``Store.count_open``).
* 13 gives delegations ``claimed_at``: when the watchdog took a row up for
  the try in flight (None when none is), so a view says a try is under way,
  and since when, not the claim's expiry as its next try.

Versions add: :data:`MIGRATIONS` names the tables each version added (or
whose new indexes it creates) and :data:`ADDED_COLUMNS` the columns (with
the DDL that adds them to an existing table, defaults keeping old rows
meaningful); an index a version redefines is dropped first
(:data:`REPLACED_INDEXES`) and made again by the DDL. Opening an older store
creates just those, then runs :data:`FILLS`, what fills the new tables from
the rows already there.

What needs a new version: any change an older release cannot read or
would write wrongly — a table, a column, an index it relies on, and the
JSON a row holds (a delegation's ``request``, a push config) when an older
release could not read it. Readers of JSON payloads ignore keys they do not
know (``Delegation.from_json``), so a key added is not such a change; a key
removed, renamed or given another meaning is. A newer version is what the
running processes of older releases notice and stop on
(:mod:`agent_node.engine.schema_guard`), and what an upgrade refuses to
make while they are attached (:mod:`.attached`).
"""

from __future__ import annotations

from agent_node.store.counts import FILL
from agent_node.store.finished import FINISHED_BACKFILL

__all__ = ["ADDED_COLUMNS", "BACKFILLS", "FILLS", "MIGRATIONS", "REPLACED_INDEXES"]

#: The tables each schema version added to the one before.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    2: ("push_configs",),
    3: ("delegations",),
    4: (),
    5: ("delegations",),  # no new table: its new index (ix_delegations_first_poll)
    6: ("executions",),  # its new indexes
    7: ("snapshots",),
    8: ("execution_counts", "executions"),  # and ix_executions_finished
    9: ("executions",),  # its partial indexes by caller and context
    10: (),  # SQLite: work rebuilt in slots (sqlite_schema); PostgreSQL: nothing
    11: ("executions",),  # PostgreSQL: ix_executions_id; SQLite: nothing
    12: ("executions",),  # ix_executions_open
    13: (),
}
#: The indexes a version redefines: dropped before its DDL makes them again.
REPLACED_INDEXES: dict[int, tuple[str, ...]] = {
    9: ("ix_executions_caller", "ix_executions_context"),
}
#: The columns each schema version added to existing tables: ``(table,
#: column, type and default)``. A v3 delegation row was sent already.
ADDED_COLUMNS: dict[int, tuple[tuple[str, str, str], ...]] = {
    4: (
        ("delegations", "state", "TEXT NOT NULL DEFAULT 'sent'"),
        ("delegations", "turn", "INTEGER NOT NULL DEFAULT 0"),
        ("delegations", "request", "TEXT"),
        ("delegations", "question", "TEXT"),
        ("delegations", "last_error", "TEXT"),
    ),
    5: (("delegations", "claimed_by", "TEXT"),),
    6: (("executions", "caller", "TEXT"),),
    7: (
        ("executions", "state_seq", "INTEGER NOT NULL DEFAULT 0"),
        ("executions", "snapshot_seq", "INTEGER NOT NULL DEFAULT 0"),
        ("executions", "patch_room", "INTEGER NOT NULL DEFAULT 0"),
    ),
    8: (("executions", "finished_at", "DOUBLE PRECISION"),),
    13: (("delegations", "claimed_at", "DOUBLE PRECISION"),),
}
#: Statements that fill a version's new columns in old rows, per dialect.
BACKFILLS: dict[int, dict[str, str]] = {
    6: {
        "sqlite": "UPDATE executions SET caller = json_extract(metadata, '$.caller')"
        " WHERE caller IS NULL AND metadata LIKE '%\"caller\"%'",
        "postgresql": "UPDATE executions SET caller = metadata::jsonb ->> 'caller'"
        " WHERE caller IS NULL AND metadata LIKE '%\"caller\"%'",
    },
    8: {"sqlite": FINISHED_BACKFILL, "postgresql": FINISHED_BACKFILL},
}
#: Statements run once a version's tables exist, when upgrading to it.
FILLS: dict[int, tuple[str, ...]] = {8: FILL}

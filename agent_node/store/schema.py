"""The database schema, as SQLAlchemy Core tables (one place, both dialects).

SQLAlchemy is used for the schema only: its DDL is compiled per dialect and
run by the store's own driver connection. The hot path speaks to the driver
directly (``sqlite3``, ``asyncpg``) with the statements in :mod:`.sql`,
because an ORM or Core round trip costs more than the commit it wraps.

Tables (see DESIGN.md, "Durability"):

* ``executions`` — the projection: status and state snapshot, updated in the
  same transaction as the events that change it; ``caller`` (who created it)
  and an index for every way they are listed — newest first, by caller,
  context or workflow, by last change (``finished_at``), a caller's
  unfinished ones — so a page costs the same with a million executions as
  with ten.
* ``events`` — the append-only log, unique on ``(execution_id, seq)``
  (SQLite: a rowid table keyed by ``executions.num << 32 | seq``,
  :mod:`.sqlite_events`).
* ``work`` — the ready queue with leases and fences (SQLite: keyed by
  ``(execution_id, slot)``, :mod:`.sqlite_work`).
* ``waits`` — parked node visits: events, timers, joins.
* ``push_configs`` — A2A push targets of tasks, each with its delivery
  cursor over the task's events (the push outbox).
* ``delegations`` — tasks sent to peer agents that waits are parked on,
  found by the peer's task id (pushes) and by poll time (the watchdog);
  each row a state machine, named by the watchdog that claimed it.
* ``snapshots`` — the state of an execution whose state is too large for
  its row, as of ``seq`` (:mod:`.snapshots`).
* ``execution_counts`` — how many finished executions per caller, workflow
  and status, kept by triggers (:mod:`.counts`).
* ``schema_info`` — the schema's version.

These are the tables of :data:`SCHEMA_VERSION`; what each version added to
the one before, and so what opening an older store creates and fills, is
:mod:`.migrations`.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING

from agent_node.store.counts import trigger_ddl
from agent_node.store.finished import FINISHED_DDL
from agent_node.store.sql import OPEN_INDEX, OPEN_WHERE

if TYPE_CHECKING:
    from sqlalchemy import MetaData

__all__ = ["EXECUTIONS_STORAGE", "SCHEMA_VERSION", "ddl"]

#: The version of these tables; a new one is a step in :mod:`.migrations`.
SCHEMA_VERSION = 13
#: PostgreSQL: the executions table's pages are filled to 70 % by inserts,
#: the rest kept for the new versions of their rows. A step updates its
#: execution's row (its cursor, ``last_seq``, ``updated_at``: no indexed
#: column), and a new version on the same page is a HOT update, which
#: writes none of the table's eight indexes. Executions created and run at
#: once (an A2A task's, ``bench/ours.py conc200``): on full pages (the
#: default) 4 % of their updates were HOT, at 70 % ~60 %, and a step wrote
#: 15 % less WAL (2,186 → 1,852 bytes); the server's CPU per step did not
#: move measurably (~100 µs). The cost: finished executions take ~1.4 times
#: the pages. An older store gets it when opened
#: (:func:`.pg_schema.ensure_schema`; only new pages follow it).
EXECUTIONS_STORAGE = {"fillfactor": 70}
#: The triggers (counts, finished_at: version 8) are created with this table
#: (an upgrade through older versions creates their tables before the
#: columns the triggers read exist).
_TRIGGERS_WITH = "execution_counts"


def _metadata(dialect_name: str) -> MetaData:
    from sqlalchemy import (
        BigInteger,
        Column,
        Double,
        Index,
        Integer,
        MetaData,
        Table,
        Text,
        collate,
        text,
    )

    metadata = MetaData()
    # SQLite's work and events are keyed by numbers (schema version 10).
    slotted = dialect_name == "sqlite"
    Table(
        "executions",
        metadata,
        Column("id", Text, primary_key=True),
        Column("workflow_id", Text, nullable=False),
        Column("workflow_version", Text, nullable=False),
        Column("workflow_ref", Text),
        Column("status", Text, nullable=False),
        Column("state", Text, nullable=False),
        Column("cursor", Text, nullable=False),
        Column("last_seq", Integer, nullable=False),
        Column("error", Text),
        Column("context_id", Text),
        Column("metadata", Text),
        Column("created_at", Double, nullable=False),
        Column("updated_at", Double, nullable=False),
        #: Who created it (``metadata.caller``), for listing a caller's own.
        Column("caller", Text),
        #: Where the state is (see store/snapshots.py).
        Column("state_seq", Integer, nullable=False, server_default=text("0")),
        Column("snapshot_seq", Integer, nullable=False, server_default=text("0")),
        Column("patch_room", Integer, nullable=False, server_default=text("0")),
        #: ``updated_at`` once finished, else NULL (store/listing.py).
        Column("finished_at", Double),
        #: SQLite: its number, the high half of its events' row ids.
        *([Column("num", Integer)] if slotted else []),
        *([Index("ux_executions_num", "num", unique=True)] if slotted else []),
        Index("ix_executions_status", "status", "created_at"),
        Index("ix_executions_created", "created_at", "id"),
        # Partial: an execution started in-process has neither (only a
        # listing's "= ?" reads them, which implies IS NOT NULL).
        Index(
            "ix_executions_caller",
            "caller",
            "created_at",
            "id",
            sqlite_where=Column("caller").isnot(None),
            postgresql_where=Column("caller").isnot(None),
        ),
        Index(
            "ix_executions_context",
            "context_id",
            "created_at",
            "id",
            sqlite_where=Column("context_id").isnot(None),
            postgresql_where=Column("context_id").isnot(None),
        ),
        Index("ix_executions_workflow", "workflow_id", "created_at", "id"),
        # Partial (version 12): a caller's unfinished executions, counted
        # against limits.max_open_tasks_per_caller at each new task. An entry
        # is written when the status moves, as the status index's is.
        Index(
            OPEN_INDEX,
            "caller",
            sqlite_where=text(f"caller IS NOT NULL AND {OPEN_WHERE}"),
            postgresql_where=text(f"caller IS NOT NULL AND {OPEN_WHERE}"),
        ),
        Index(
            "ix_executions_finished",
            "finished_at",
            sqlite_where=Column("finished_at").isnot(None),
            postgresql_where=Column("finished_at").isnot(None),
        ),
        postgresql_with=EXECUTIONS_STORAGE,
    )
    if not slotted:
        # PostgreSQL (version 11): the ids in code point order, where a start
        # of an id is one range whatever the database's collation (the key's
        # index is in that collation; store/listing.py). SQLite's key is so.
        executions = metadata.tables["executions"]
        Index("ix_executions_id", collate(executions.c.id, "C"))
    # A rowid table in SQLite (not WITHOUT ROWID): its values are large, and
    # large values belong in overflow pages, not in the b-tree's own.
    Table(
        "snapshots",
        metadata,
        Column("execution_id", Text, primary_key=True),
        Column("seq", Integer, nullable=False),
        Column("state", Text, nullable=False),
    )
    # SQLite: a rowid table, the row of an event ``num << 32 | seq`` where
    # num is its execution's (store/sqlite_events.py); PostgreSQL: keyed by
    # the execution's id and seq.
    log_key = (
        [Column("id", Integer, primary_key=True, autoincrement=False)]
        if slotted
        else [
            Column("execution_id", Text, primary_key=True),
            Column("seq", Integer, primary_key=True, autoincrement=False),
        ]
    )
    Table(
        "events",
        metadata,
        *log_key,
        Column("kind", Text, nullable=False),
        Column("node", Text),
        Column("visit", Integer),
        Column("attempt", Integer),
        Column("at", Double, nullable=False),
        Column("data", Text),
        sqlite_with_rowid=slotted,
    )
    # SQLite: each row in a slot of its execution, moved from visit to visit
    # (store/sqlite_work.py); PostgreSQL: keyed by the visit.
    Table(
        "work",
        metadata,
        Column("execution_id", Text, primary_key=True),
        *([Column("slot", Integer, primary_key=True, autoincrement=False)] if slotted else []),
        Column("node", Text, primary_key=not slotted, nullable=False),
        Column("visit", Integer, primary_key=not slotted, nullable=False, autoincrement=False),
        Column("attempt", Integer, nullable=False),
        Column("available_at", Double, nullable=False),
        Column("lease_owner", Text),
        Column("lease_expires_at", Double),
        Column("fence", Integer, nullable=False),
        Index("ix_work_available", "available_at"),
        sqlite_with_rowid=False,
    )
    Table(
        "waits",
        metadata,
        Column("execution_id", Text, primary_key=True),
        Column("node", Text, primary_key=True),
        Column("visit", Integer, primary_key=True, autoincrement=False),
        Column("kind", Text, nullable=False),
        Column("event", Text),
        Column("deadline", Double),
        Index(
            "ix_waits_deadline",
            "deadline",
            sqlite_where=Column("deadline").isnot(None),
            postgresql_where=Column("deadline").isnot(None),
        ),
        sqlite_with_rowid=False,
    )
    Table(
        "push_configs",
        metadata,
        Column("task_id", Text, primary_key=True),
        Column("id", Text, primary_key=True),
        Column("config", Text, nullable=False),
        Column("version", Text, nullable=False),
        Column("caller", Text),
        Column("created_at", Double, nullable=False),
        Column("pushed_seq", Integer, nullable=False),
        Column("settled", Integer, nullable=False),
        Column("attempts", Integer, nullable=False),
        Column("next_attempt_at", Double, nullable=False),
        Column("last_error", Text),
        Column("lease_owner", Text),
        Column("lease_expires_at", Double),
        Index(
            "ix_push_configs_pending",
            "next_attempt_at",
            sqlite_where=Column("settled") == 0,
            postgresql_where=Column("settled") == 0,
        ),
        sqlite_with_rowid=False,
    )
    Table(
        "delegations",
        metadata,
        Column("execution_id", Text, primary_key=True),
        Column("node", Text, primary_key=True),
        Column("visit", Integer, primary_key=True, autoincrement=False),
        Column("peer", Text, nullable=False),
        Column("remote_task_id", Text, nullable=False),
        Column("endpoint", Text, nullable=False),
        Column("version", Text, nullable=False),
        Column("identity", Text),
        Column("sent_at", Double, nullable=False),
        Column("next_poll_at", Double, nullable=False),
        Column("polls", Integer, nullable=False),
        Column("relay", Text),
        Column("state", Text, nullable=False, server_default="sent"),
        Column("turn", Integer, nullable=False, server_default=text("0")),
        Column("request", Text),
        Column("question", Text),
        Column("last_error", Text),
        Column("claimed_by", Text),
        Column("claimed_at", Double),
        Index("ix_delegations_task", "remote_task_id"),
        Index("ix_delegations_poll", "next_poll_at"),
        # Rows not taken up since their last move: the watchdog sleeps until
        # the first of them is due (store.next_delegation_at), on every wake.
        Index(
            "ix_delegations_first_poll",
            "next_poll_at",
            sqlite_where=text("polls = 0"),
            postgresql_where=text("polls = 0"),
        ),
        sqlite_with_rowid=False,
    )
    # Counts (store/counts.py): per shard (a PostgreSQL backend's own, or 0),
    # caller key ('' or '.' + caller), workflow and status.
    Table(
        "execution_counts",
        metadata,
        Column("shard", Integer, primary_key=True, autoincrement=False),
        Column("caller_key", Text, primary_key=True),
        Column("workflow_id", Text, primary_key=True),
        Column("status", Text, primary_key=True),
        Column("n", BigInteger, nullable=False),
        sqlite_with_rowid=False,
    )
    Table(
        "schema_info",
        metadata,
        Column("key", Text, primary_key=True),
        Column("value", Text, nullable=False),
    )
    return metadata


def ddl(dialect_name: str, tables: Collection[str] | None = None) -> list[str]:
    """``CREATE … IF NOT EXISTS`` statements for ``sqlite`` or ``postgresql``:
    every table, or only ``tables``."""
    from sqlalchemy.dialects.postgresql.base import PGDialect
    from sqlalchemy.dialects.sqlite.base import SQLiteDialect
    from sqlalchemy.engine.interfaces import Dialect
    from sqlalchemy.schema import CreateIndex, CreateTable

    dialect: Dialect = (
        SQLiteDialect() if dialect_name == "sqlite" else PGDialect()  # type: ignore[no-untyped-call]
    )
    statements: list[str] = []
    for table in _metadata(dialect_name).sorted_tables:
        if tables is not None and table.name not in tables:
            continue
        statements.append(str(CreateTable(table, if_not_exists=True).compile(dialect=dialect)))
        for index in sorted(table.indexes, key=lambda i: i.name or ""):
            create = CreateIndex(index, if_not_exists=True)
            statements.append(str(create.compile(dialect=dialect)))
    if tables is None or _TRIGGERS_WITH in tables:
        statements.extend(FINISHED_DDL(dialect_name))
        statements.extend(trigger_ddl(dialect_name))
    return statements

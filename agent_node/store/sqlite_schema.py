"""SQLite: creating the schema, or bringing an older one up to date.

Apart from the store because it runs once, when the store opens, and is
the one place that knows how the file's versions differ. It is a job of the
writer (:mod:`.sqlite_writer`), inside its ``BEGIN IMMEDIATE``: processes
opening one file at once create or upgrade it one after another. An
upgrade is refused while processes of an older release have the file open
(:mod:`.attached`), unless forced. PostgreSQL's counterpart is
:mod:`.pg_schema`.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path

from agent_node.errors import StoreError
from agent_node.store import sqlite_events, sqlite_work
from agent_node.store.attached import refusal, sqlite_attached
from agent_node.store.migrations import ADDED_COLUMNS, BACKFILLS, FILLS, REPLACED_INDEXES
from agent_node.store.schema import SCHEMA_VERSION, ddl
from agent_node.store.sqlite_writer import Notices

__all__ = ["create_schema"]

log = logging.getLogger(__name__)

#: The tables a version rebuilds: put aside before the DDL makes them anew,
#: copied into the new ones after.
_SET_ASIDE: dict[int, tuple[Callable[[sqlite3.Connection], None], ...]] = {
    10: (sqlite_work.set_aside_v9, sqlite_events.set_aside_v9)
}
_COPY: dict[int, tuple[Callable[[sqlite3.Connection], None], ...]] = {
    10: (sqlite_work.copy_v9, sqlite_events.copy_v9)
}


def create_schema(
    conn: sqlite3.Connection, *, url: str, path: Path, force: bool
) -> tuple[None, Notices]:
    """Create the schema, or bring an older one up to date (versions add
    tables, columns and indexes — the columns first, which new indexes need
    — and version 10 rebuilds the work and events tables). A store of this
    version is left as it is, as on PostgreSQL: no DDL runs, and opening it
    does not import SQLAlchemy (a fifth of a command's time, ~0.2 s). An
    older one is not upgraded while other processes that it would break have
    ``path`` open (:class:`~agent_node.errors.StoreInUse`), unless ``force``."""
    row = None
    if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'schema_info'").fetchone():
        row = conn.execute("SELECT value FROM schema_info WHERE key = 'version'").fetchone()
    if row is not None and int(row[0]) >= SCHEMA_VERSION:
        if int(row[0]) > SCHEMA_VERSION:
            raise StoreError(
                f"store schema version {row[0]} is newer than this agent-node's"
                f" {SCHEMA_VERSION}; upgrade agent-node"
            )
        return None, []
    if row is not None:
        _may_upgrade(url, path, int(row[0]), force)
    older = range(int(row[0]) + 1, SCHEMA_VERSION + 1) if row is not None else range(0)
    for version in older:
        _before_ddl(conn, version)
    for statement in ddl("sqlite"):
        conn.execute(statement)
    for version in older:
        for statement in FILLS.get(version, ()):
            conn.execute(statement)
        for copy in _COPY.get(version, ()):
            copy(conn)
    if row is None:
        conn.execute(
            "INSERT INTO schema_info (key, value) VALUES ('version', ?)", (str(SCHEMA_VERSION),)
        )
    else:  # older: its columns were added above; the DDL (IF NOT EXISTS) made the rest
        conn.execute(
            "UPDATE schema_info SET value = ? WHERE key = 'version'", (str(SCHEMA_VERSION),)
        )
        log.warning("upgraded the store schema from version %s to %d", row[0], SCHEMA_VERSION)
    return None, []


def _may_upgrade(url: str, path: Path, version: int, force: bool) -> None:
    """Refuse to upgrade from ``version`` while others have the file open, unless ``force``."""
    attached = sqlite_attached(path)
    if attached and not force:
        raise refusal(url, version, attached)
    if attached:
        log.warning("upgrading %s under other processes (forced): %s", url, "; ".join(attached))


def _before_ddl(conn: sqlite3.Connection, version: int) -> None:
    """What upgrading to ``version`` does before the DDL runs: add its
    columns, fill them, drop the indexes it redefines, set aside the tables
    it rebuilds."""
    for table, column, declaration in ADDED_COLUMNS.get(version, ()):
        present = sqlite_work.columns(conn, table)
        if present and column not in present:  # a table not there yet comes whole
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
    if version in BACKFILLS:
        conn.execute(BACKFILLS[version]["sqlite"])
    for index in REPLACED_INDEXES.get(version, ()):
        conn.execute(f"DROP INDEX IF EXISTS {index}")
    for set_aside in _SET_ASIDE.get(version, ()):
        set_aside(conn)

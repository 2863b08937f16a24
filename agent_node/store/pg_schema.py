"""PostgreSQL: creating the schema, or upgrading an older one, once.

An existing schema of the current version is only read: its DDL would take
SHARE locks on the tables that live workers write, in an order that can
deadlock with them. Concurrent openers of a new or older database are
serialised by a session advisory lock taken before the transaction: the
transaction then starts after the one that held it committed, and sees its
tables. (Taken inside, the catalog lookups of the transaction that waited
may still miss tables created meanwhile, and it would create the schema a
second time.) An upgrade is refused while agent-node processes of an older
release are connected to the database (:mod:`.attached`), unless forced.
"""

from __future__ import annotations

import logging

import asyncpg

from agent_node.errors import StoreError
from agent_node.store.attached import pg_attached, refusal
from agent_node.store.files import MissingStore
from agent_node.store.migrations import (
    ADDED_COLUMNS,
    BACKFILLS,
    FILLS,
    MIGRATIONS,
    REPLACED_INDEXES,
)
from agent_node.store.schema import EXECUTIONS_STORAGE, SCHEMA_VERSION, ddl

__all__ = ["ensure_schema"]

log = logging.getLogger(__name__)

_SCHEMA_LOCK = 0x6167656E74  # "agent": serialises concurrent schema creation
#: How long setting a table's storage waits for its lock (another opener's
#: ALTER, a VACUUM) before leaving it to the next open.
_STORAGE_WAIT = "1s"


async def ensure_schema(
    conn: asyncpg.Connection, url: str, *, create: bool, force: bool = False
) -> None:
    """Create or upgrade the schema of ``url`` unless it is current, and
    give its executions table its storage parameters (:func:`_storage`);
    ``create=False``: a database without one is a :class:`MissingStore`;
    an older one is upgraded while older agent-nodes are connected only
    with ``force`` (else :class:`~agent_node.errors.StoreInUse`)."""
    version = await _schema_version(conn)
    if version != SCHEMA_VERSION:
        if version is None and not create:
            raise MissingStore(url, f"no store in {url}: it has no agent-node tables")
        await conn.execute("SELECT pg_advisory_lock($1)", _SCHEMA_LOCK)
        try:
            await _create_schema(conn, url, force)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _SCHEMA_LOCK)
    await _storage(conn)


async def _storage(conn: asyncpg.Connection) -> None:
    """The executions table's storage parameters
    (:data:`~agent_node.store.schema.EXECUTIONS_STORAGE`), set on a store
    made before them — no schema version for it, so that an older
    agent-node still opens the store. A catalog read; once, an ``ALTER
    TABLE … SET``, whose lock (SHARE UPDATE EXCLUSIVE) lets the table's
    reads and writes go on; when it would wait longer than
    :data:`_STORAGE_WAIT` (a VACUUM in its way), the next open sets it. A
    role that does not own the table is told, and carries on without."""
    wanted = [f"{name}={value}" for name, value in EXECUTIONS_STORAGE.items()]
    found = await conn.fetchval(
        "SELECT reloptions FROM pg_class WHERE oid = 'executions'::regclass"
    )
    if all(option in (found or ()) for option in wanted):
        return
    settings = ", ".join(f"{name} = {value}" for name, value in EXECUTIONS_STORAGE.items())
    try:
        async with conn.transaction():
            await conn.execute(f"SET LOCAL lock_timeout = '{_STORAGE_WAIT}'")
            await conn.execute(f"ALTER TABLE executions SET ({settings})")
    except asyncpg.exceptions.LockNotAvailableError:
        log.info("the executions table's storage (%s) is left to the next open", settings)
    except asyncpg.exceptions.InsufficientPrivilegeError:  # a role that does not own it
        log.warning(
            "the executions table is not this role's to alter: its owner may set"
            " ALTER TABLE executions SET (%s), which makes steps cheaper (HOT updates)",
            settings,
        )


async def _create_schema(conn: asyncpg.Connection, url: str, force: bool) -> None:
    """Create or upgrade the schema (the caller holds the schema lock)."""
    async with conn.transaction():
        version = await _schema_version(conn)
        if version is None:
            for statement in ddl("postgresql"):
                await conn.execute(statement)
            await conn.execute(
                "INSERT INTO schema_info (key, value) VALUES ('version', $1)",
                str(SCHEMA_VERSION),
            )
        elif version > SCHEMA_VERSION:
            raise StoreError(
                f"store schema version {version} is newer than this agent-node's"
                f" {SCHEMA_VERSION}; upgrade agent-node"
            )
        elif version < SCHEMA_VERSION:
            attached = await pg_attached(conn)
            if attached and not force:
                raise refusal(url, version, attached)
            if attached:
                log.warning(
                    "upgrading %s under other processes (forced): %s", url, "; ".join(attached)
                )
            await _upgrade(conn, version)
            log.warning("upgraded the store schema from version %d to %d", version, SCHEMA_VERSION)


async def _upgrade(conn: asyncpg.Connection, version: int) -> None:
    """Only what newer versions added: new tables, and columns (with
    defaults; ALTER TABLE holds its table's lock a moment)."""
    # Every version's columns first: a version's DDL creates its tables'
    # indexes as they are now, which may be on a later version's column. A
    # table not there yet comes whole, with its columns, from its version.
    for newer in range(version + 1, SCHEMA_VERSION + 1):
        for table, column, declaration in ADDED_COLUMNS.get(newer, ()):
            if await conn.fetchval("SELECT to_regclass($1)", table) is None:
                continue
            await conn.execute(
                f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} {declaration}"
            )
    for newer in range(version + 1, SCHEMA_VERSION + 1):
        if newer in BACKFILLS:
            await conn.execute(BACKFILLS[newer]["postgresql"])
        for index in REPLACED_INDEXES.get(newer, ()):
            await conn.execute(f"DROP INDEX IF EXISTS {index}")
        for statement in ddl("postgresql", MIGRATIONS[newer]):
            await conn.execute(statement)
        for statement in FILLS.get(newer, ()):
            await conn.execute(statement)
    await conn.execute(
        "UPDATE schema_info SET value = $1 WHERE key = 'version'", str(SCHEMA_VERSION)
    )


async def _schema_version(conn: asyncpg.Connection) -> int | None:
    if await conn.fetchval("SELECT to_regclass('schema_info')") is None:
        return None
    value = await conn.fetchval("SELECT value FROM schema_info WHERE key = 'version'")
    return None if value is None else int(value)

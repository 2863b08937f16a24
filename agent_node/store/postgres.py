"""The PostgreSQL store: many worker processes (and nodes) share one database.

* Claiming uses ``FOR UPDATE SKIP LOCKED``, so workers never wait on each
  other's rows and never claim the same item.
* Notifications travel with ``NOTIFY agent_node, 'kind:execution_id'`` sent
  inside the writing transaction (delivered only if it commits); every store
  ``LISTEN``\\ s on one dedicated connection. The live channel's chunks
  travel on ``agent_node_live`` (:mod:`.pg_live`), sent on another.
* Deadlocks and serialization failures (possible only around zombie leases)
  are retried a few times; the transaction is all-or-nothing, so a retry is
  safe.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import asyncpg

from agent_node.errors import Fenced, StoreError, StoreFull, UnknownExecution
from agent_node.store.base import ClaimPlan, CommitObserver, Fence, Listener, Plan, Txn
from agent_node.store.files import MissingStore
from agent_node.store.gauges import GAUGE_QUERIES, StoreGauges, fold_gauges
from agent_node.store.notify import Notifier
from agent_node.store.patches import fold
from agent_node.store.pg_live import LIVE_CHANNEL, PgLive
from agent_node.store.records import (
    Asking,
    Claim,
    DelegationRecord,
    EventRecord,
    ExecutionRecord,
    PushClaim,
    PushConfigRecord,
    WaitRecord,
    WorkItem,
)
from agent_node.store.retention import PRUNE_CANDIDATES, PRUNE_DELETES
from agent_node.store.schema import ADDED_COLUMNS, BACKFILLS, MIGRATIONS, SCHEMA_VERSION, ddl
from agent_node.store.slots import PgSlots, SharedSlots
from agent_node.store.snapshots import base_of, finish_fold, settle
from agent_node.store.sql import (
    ASKING,
    DELEGATION_COLUMNS,
    EVENT_COLUMNS,
    EXECUTION_COLUMNS,
    PENDING_PUSHES,
    PUSH_COLUMNS,
    WORK_COLUMNS,
    Statements,
    delegation_from_row,
    delegation_update_row,
    event_from_row,
    execution_from_row,
    flush_statements,
    numbered,
    push_claim_from_row,
    push_from_row,
    push_row,
    release_row,
    wait_from_row,
    work_from_row,
)

__all__ = ["PostgresStore"]

log = logging.getLogger(__name__)
T = TypeVar("T")
_STMTS = Statements(postgres=True)
_CHANNEL = "agent_node"
_RETRIES = 5
_SCHEMA_LOCK = 0x6167656E74  # "agent": serialises concurrent schema creation
_PRUNE_LOCK = 0x7072756E65  # "prune": one replica prunes at a time

_CLAIM = (
    "UPDATE work w SET lease_owner = $1, lease_expires_at = $2, fence = w.fence + 1,"
    " attempt = w.attempt + 1 FROM (SELECT execution_id, node, visit FROM work"
    " WHERE available_at <= $3 AND (lease_owner IS NULL OR lease_expires_at < $3){scope}"
    " ORDER BY available_at LIMIT $4 FOR UPDATE SKIP LOCKED) s"
    " WHERE w.execution_id = s.execution_id AND w.node = s.node AND w.visit = s.visit"
    " RETURNING " + ", ".join(f"w.{c.strip()}" for c in WORK_COLUMNS.split(","))
)
_CLAIM_PUSHES = numbered(
    "UPDATE push_configs p SET lease_owner = ?, lease_expires_at = ?"
    " FROM (SELECT c.task_id, c.id, e.last_seq, e.status "
    + PENDING_PUSHES
    + " FOR UPDATE OF c SKIP LOCKED) s WHERE p.task_id = s.task_id AND p.id = s.id RETURNING "
    + ", ".join(f"p.{c.strip()}" for c in PUSH_COLUMNS.split(","))
    + ", s.last_seq, s.status"
)

_CLAIM_DELEGATIONS = (
    "UPDATE delegations d SET next_poll_at = $1, polls = d.polls + 1, claimed_by = $4"
    " FROM (SELECT execution_id, node, visit"
    " FROM delegations WHERE next_poll_at <= $2 ORDER BY next_poll_at LIMIT $3"
    " FOR UPDATE SKIP LOCKED) s WHERE d.execution_id = s.execution_id AND d.node = s.node"
    " AND d.visit = s.visit RETURNING "
    + ", ".join(f"d.{c.strip()}" for c in DELEGATION_COLUMNS.split(","))
)


class PostgresStore:
    def __init__(self, url: str, dsn: str, *, pool_size: int = 10, create: bool = True) -> None:
        self.url = url
        self.dsn = dsn
        #: False: a database without our schema is a MissingStore, not created.
        self._create_missing = create
        self.pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        self._listen: asyncpg.Connection | None = None
        self._notifier = Notifier()
        #: Chunks of the text nodes are writing (:mod:`.live`), across the
        #: replicas of the database (:mod:`.pg_live`).
        self.live = PgLive()
        #: Slots shared by the processes of this database (:mod:`.slots`).
        self.slots: SharedSlots | None = PgSlots(dsn)
        self._live_conn: asyncpg.Connection | None = None

    # -- lifecycle -----------------------------------------------------------

    async def open(self) -> None:
        if self._pool is not None:
            return
        try:
            self._pool = await asyncpg.create_pool(
                self.dsn,
                min_size=1,
                max_size=self.pool_size,
                command_timeout=60,
                reset=_keep_session,
            )
            self._listen = await asyncpg.connect(self.dsn)
            await self._listen.add_listener(_CHANNEL, self._on_notify)
            await self._listen.add_listener(LIVE_CHANNEL, self.live.on_notify)
            self._live_conn = await asyncpg.connect(self.dsn)
            self.live.start(self._notify_live)
            await self._ensure_schema(self._pool)
        except BaseException as exc:
            await self.close()
            if isinstance(exc, asyncpg.exceptions.DiskFullError):
                raise _full(self.url, exc) from exc
            if isinstance(exc, OSError | asyncpg.PostgresError):
                raise StoreError(f"cannot open {self.url}: {exc}") from exc
            raise

    async def _ensure_schema(self, pool: asyncpg.Pool) -> None:
        """Create the schema once. An existing schema is only read: its DDL
        would take SHARE locks on the tables that live workers write, in an
        order that can deadlock with them."""
        async with pool.acquire() as conn:
            version = await _schema_version(conn)
            if version == SCHEMA_VERSION:
                return
            if version is None and not self._create_missing:
                raise MissingStore(self.url, f"no store in {self.url}: it has no agent-node tables")
            # A session lock taken before the transaction: the transaction then
            # starts after the one that held it committed, and sees its tables.
            # (Taken inside, the catalog lookups of the transaction that waited
            # may still miss tables created meanwhile, and it would create the
            # schema a second time.)
            await conn.execute("SELECT pg_advisory_lock($1)", _SCHEMA_LOCK)
            try:
                await self._create_schema(conn)
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", _SCHEMA_LOCK)

    async def _create_schema(self, conn: asyncpg.Connection) -> None:
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
                # Only what newer versions added: new tables, and columns
                # (with defaults; ALTER TABLE holds its table's lock a moment).
                for newer in range(version + 1, SCHEMA_VERSION + 1):
                    # Columns first: the version's new indexes may need them.
                    for table, column, declaration in ADDED_COLUMNS.get(newer, ()):
                        await conn.execute(
                            f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} {declaration}"
                        )
                    if newer in BACKFILLS:
                        await conn.execute(BACKFILLS[newer]["postgresql"])
                    for statement in ddl("postgresql", MIGRATIONS[newer]):
                        await conn.execute(statement)
                await conn.execute(
                    "UPDATE schema_info SET value = $1 WHERE key = 'version'",
                    str(SCHEMA_VERSION),
                )

    async def close(self) -> None:
        await self.live.stop()
        live, self._live_conn = self._live_conn, None
        if live is not None:
            await live.close()
        listen, self._listen = self._listen, None
        pool, self._pool = self._pool, None
        if listen is not None:
            await listen.close()
        if pool is not None:
            await pool.close()

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        return self._notifier.subscribe(listener)

    def observe(
        self, observer: CommitObserver, commit_timer: Callable[[float], None] | None = None
    ) -> Callable[[], None]:
        return self._notifier.observe(observer, commit_timer)

    async def _notify_live(self, payload: str) -> None:
        if self._live_conn is not None:
            await self._live_conn.execute("SELECT pg_notify($1, $2)", LIVE_CHANNEL, payload)

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        kind, _, execution_id = payload.partition(":")
        self._notifier.publish(kind, execution_id)

    # -- plumbing ------------------------------------------------------------

    async def _transact(
        self, job: Callable[[asyncpg.Connection], Awaitable[T]], written: list[Txn] | None = None
    ) -> T:
        """Run ``job`` in a transaction, again on a deadlock or serialization
        failure; the transactions ``job`` appends to ``written`` go to the
        commit's observers once it committed."""
        pool = self._require()
        began = time.perf_counter()
        for attempt in range(1, _RETRIES + 1):
            try:
                async with pool.acquire() as conn, conn.transaction():
                    result = await job(conn)
                if self._notifier.observed:
                    self._notifier.took(time.perf_counter() - began)
                    if written:
                        self._notifier.committed(written)
                return result
            except (
                asyncpg.exceptions.DeadlockDetectedError,
                asyncpg.exceptions.SerializationError,
            ):
                if attempt == _RETRIES:
                    raise
                await asyncio.sleep(0.01 * attempt)
            except (OSError, asyncpg.exceptions.ConnectionDoesNotExistError) as exc:
                raise StoreError(f"PostgreSQL {self.url}: {exc}") from exc
            except asyncpg.exceptions.DiskFullError as exc:
                raise _full(self.url, exc) from exc
        raise StoreError("unreachable")  # pragma: no cover - the loop returns or raises

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection; a full disk met on it is a :class:`StoreFull`."""
        try:
            async with self._require().acquire() as conn:
                yield conn
        except asyncpg.exceptions.DiskFullError as exc:
            raise _full(self.url, exc) from exc

    def _require(self) -> asyncpg.Pool:
        if self._pool is None:
            raise StoreError(f"the store {self.url} is not open")
        return self._pool

    async def _fetch(self, sql: str, *params: Any) -> list[Any]:
        async with self._connection() as conn:
            return list(await conn.fetch(sql, *params))

    # -- writes --------------------------------------------------------------

    async def create(self, execution: ExecutionRecord, plan: Plan[T]) -> T | None:
        written: list[Txn] = []

        async def job(conn: asyncpg.Connection) -> T | None:
            written.clear()
            exists = await conn.fetchval("SELECT 1 FROM executions WHERE id = $1", execution.id)
            if exists:
                return None
            txn = Txn(
                execution, execution.created_at, is_new=True, work=[], waits=[], delegations=[]
            )
            result = plan(txn)
            await _flush(conn, txn)
            written.append(txn)
            return result

        return await self._transact(job, written)

    async def apply(
        self,
        execution_id: str,
        plan: Plan[T],
        *,
        fence: Fence | None = None,
        related: bool = False,
        state: bool = False,
    ) -> T:
        written: list[Txn] = []

        async def job(conn: asyncpg.Connection) -> T:
            written.clear()
            if fence is not None:
                await _check_fence(conn, execution_id, fence)
            row = await conn.fetchrow(_STMTS.lock_execution, execution_id)
            if row is None:
                raise UnknownExecution(execution_id)
            txn = Txn(execution_from_row(tuple(row)), time.time())
            if related:
                txn.work = [
                    work_from_row(tuple(r)) for r in await conn.fetch(_STMTS.work_of, execution_id)
                ]
                txn.waits = [
                    wait_from_row(tuple(r)) for r in await conn.fetch(_STMTS.waits_of, execution_id)
                ]
                txn.delegations = [
                    delegation_from_row(tuple(r))
                    for r in await conn.fetch(_STMTS.lock_delegations_of, execution_id)
                ]
            if state:
                txn.state = await _state_of(conn, txn.execution)
            result = plan(txn)
            await _flush(conn, txn)
            written.append(txn)
            return result

        return await self._transact(job, written)

    async def claim(
        self,
        owner: str,
        *,
        now: float,
        lease_until: float,
        limit: int,
        plan: ClaimPlan,
        execution_ids: Collection[str] | None = None,
    ) -> list[Claim]:
        ids = list(execution_ids) if execution_ids is not None else None
        if ids is not None and not ids:
            return []
        sql = _CLAIM.format(scope=" AND execution_id = ANY($5::text[])" if ids else "")
        params: list[Any] = [owner, lease_until, now, limit, *([ids] if ids else [])]

        written: list[Txn] = []

        async def job(conn: asyncpg.Connection) -> list[Claim]:
            written.clear()
            items = [work_from_row(tuple(r)) for r in await conn.fetch(sql, *params)]
            by_execution: dict[str, list[WorkItem]] = {}
            for item in items:
                by_execution.setdefault(item.execution_id, []).append(item)
            claims: list[Claim] = []
            for execution_id in sorted(by_execution):
                row = await conn.fetchrow(_STMTS.lock_execution, execution_id)
                txn = Txn(execution_from_row(tuple(row)), now)
                plan(txn, by_execution[execution_id])
                await _flush(conn, txn)
                written.append(txn)
                claims.extend(Claim(item, txn.execution) for item in by_execution[execution_id])
            return claims

        return await self._transact(job, written)

    async def extend_leases(self, owner: str, until: float) -> list[tuple[str, str, int]]:
        rows = await self._fetch(_STMTS.extend_leases, until, owner)
        return [(r[0], r[1], r[2]) for r in rows]

    async def expire_leases(self, owners: Collection[str], now: float) -> int:
        names = list(owners)
        if not names:
            return 0

        async def job(conn: asyncpg.Connection) -> int:
            status = await conn.execute(
                "UPDATE work SET lease_expires_at = $1 WHERE lease_owner = ANY($2::text[])",
                now,
                names,
            )
            count = int(status.split()[-1])
            if count:
                await conn.execute("SELECT pg_notify($1, $2)", _CHANNEL, "work:*")
            status = await conn.execute(
                "UPDATE delegations SET next_poll_at = LEAST(next_poll_at, $1), claimed_by = NULL"
                " WHERE claimed_by = ANY($2::text[])",
                now,
                names,
            )
            freed = int(status.split()[-1])
            if freed:
                await conn.execute("SELECT pg_notify($1, $2)", _CHANNEL, "delegation:*")
            status = await conn.execute(
                "UPDATE push_configs SET lease_expires_at = $1 WHERE lease_owner = ANY($2::text[])",
                now,
                names,
            )
            return count + freed + int(status.split()[-1])

        return await self._transact(job)

    # -- push configs --------------------------------------------------------

    async def put_push_config(self, config: PushConfigRecord) -> None:
        async with self._connection() as conn:
            await conn.execute(_STMTS.put_push, *push_row(config))

    async def push_configs(self, task_id: str) -> list[PushConfigRecord]:
        rows = await self._fetch(_STMTS.push_configs_of, task_id)
        return [push_from_row(tuple(r)) for r in rows]

    async def delete_push_config(self, task_id: str, config_id: str) -> bool:
        async with self._connection() as conn:
            status = await conn.execute(_STMTS.delete_push, task_id, config_id)
        return int(status.split()[-1]) > 0

    async def claim_pushes(
        self, owner: str, *, now: float, lease_until: float, limit: int
    ) -> list[PushClaim]:
        async def job(conn: asyncpg.Connection) -> list[PushClaim]:
            rows = await conn.fetch(_CLAIM_PUSHES, owner, lease_until, now, now, limit)
            return [push_claim_from_row(tuple(r)) for r in rows]

        return await self._transact(job)

    async def release_push(self, owner: str, config: PushConfigRecord) -> bool:
        async with self._connection() as conn:
            status = await conn.execute(_STMTS.release_push, *release_row(owner, config))
        return int(status.split()[-1]) > 0

    # -- delegations ---------------------------------------------------------

    async def delegations_of_task(self, remote_task_id: str) -> list[DelegationRecord]:
        rows = await self._fetch(_STMTS.delegations_of_task, remote_task_id)
        return [delegation_from_row(tuple(r)) for r in rows]

    async def delegations(self, execution_id: str) -> list[DelegationRecord]:
        rows = await self._fetch(_STMTS.delegations_of, execution_id)
        return [delegation_from_row(tuple(r)) for r in rows]

    async def delegation(self, execution_id: str, node: str, visit: int) -> DelegationRecord | None:
        rows = await self._fetch(_STMTS.delegation, execution_id, node, visit)
        return delegation_from_row(tuple(rows[0])) if rows else None

    async def claim_delegations(
        self, *, now: float, lease_until: float, limit: int, owner: str | None = None
    ) -> list[DelegationRecord]:
        async def job(conn: asyncpg.Connection) -> list[DelegationRecord]:
            rows = await conn.fetch(_CLAIM_DELEGATIONS, lease_until, now, limit, owner)
            return [delegation_from_row(tuple(r)) for r in rows]

        return await self._transact(job)

    async def reschedule_delegation(
        self, delegation: DelegationRecord, next_poll_at: float, error: str | None = None
    ) -> bool:
        d = delegation
        return await self._count(
            _STMTS.reschedule_delegation,
            next_poll_at,
            error,
            d.execution_id,
            d.node,
            d.visit,
            d.state,
            d.turn,
        )

    async def next_delegation_at(self) -> float | None:
        rows = await self._fetch(_STMTS.next_delegation_at)
        return float(rows[0][0]) if rows and rows[0][0] is not None else None

    async def wake_delegations(self, peer: str, state: str, now: float, within: float) -> int:
        async with self._connection() as conn:
            status = await conn.execute(_STMTS.wake_delegations, now, peer, state, now, within)
        return int(status.split()[-1])

    async def drop_delegation(self, delegation: DelegationRecord) -> bool:
        d = delegation
        return await self._count(
            _STMTS.drop_delegation, d.execution_id, d.node, d.visit, d.state, d.turn
        )

    async def _count(self, sql: str, *params: Any) -> bool:
        """Run one write; whether it changed a row."""
        async with self._connection() as conn:
            status = await conn.execute(sql, *params)
        return int(status.split()[-1]) > 0

    # -- reads ---------------------------------------------------------------

    async def lease_owners(self) -> list[str]:
        return [r[0] for r in await self._fetch(_STMTS.lease_owners)]

    async def due_waits(
        self, now: float, limit: int, execution_ids: Collection[str] | None = None
    ) -> list[WaitRecord]:
        if execution_ids is None:
            rows = await self._fetch(_STMTS.due_waits, now, limit)
        else:
            sql = numbered(
                "SELECT execution_id, node, visit, kind, event, deadline FROM waits"
                " WHERE deadline IS NOT NULL AND deadline <= ? AND execution_id = ANY(?::text[])"
                " ORDER BY deadline LIMIT ?"
            )
            rows = await self._fetch(sql, now, list(execution_ids), limit)
        return [wait_from_row(tuple(r)) for r in rows]

    async def next_due(self, execution_ids: Collection[str] | None = None) -> float | None:
        if execution_ids is None:
            work = await self._fetch(_STMTS.next_work)
            wait = await self._fetch(_STMTS.next_wait)
        else:
            ids = list(execution_ids)
            work = await self._fetch(
                _STMTS.next_work + " WHERE execution_id = ANY($1::text[])", ids
            )
            wait = await self._fetch(_STMTS.next_wait + " AND execution_id = ANY($1::text[])", ids)
        times = [t for t in (work[0][0], wait[0][0]) if t is not None]
        return min(times, default=None)

    async def get(self, execution_id: str) -> ExecutionRecord | None:
        rows = await self._fetch(_STMTS.get_execution, execution_id)
        if not rows:
            return None
        (record,) = await self._with_state([execution_from_row(tuple(rows[0]))])
        return record

    async def list_executions(
        self,
        *,
        status: Collection[str] | None = None,
        workflow_id: str | None = None,
        context_id: str | None = None,
        asking: Asking | None = None,
        caller: str | None = None,
        updated_after: float | None = None,
        limit: int = 100,
        offset: int = 0,
        before: tuple[float, str] | None = None,
    ) -> list[ExecutionRecord]:
        where, params = _filters(status, workflow_id, context_id, asking, caller, updated_after)
        if before is not None:
            n = len(params)
            where += (" AND " if where else " WHERE ") + f"(created_at, id) < (${n + 1}, ${n + 2})"
            params.extend(before)
        n = len(params)
        sql = (
            f"SELECT {EXECUTION_COLUMNS} FROM executions{where}"
            f" ORDER BY created_at DESC, id DESC LIMIT ${n + 1} OFFSET ${n + 2}"
        )
        rows = await self._fetch(sql, *params, limit, offset)
        return await self._with_state([execution_from_row(tuple(r)) for r in rows])

    async def _with_state(self, records: list[ExecutionRecord]) -> list[ExecutionRecord]:
        """``records`` with their whole state: the rows of those whose state
        is not in their row are read again, with their snapshot and patches,
        in one repeatable-read transaction (one view of the database)."""
        if all(record.state for record in records):
            return records
        async with self._connection() as conn:
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                for i, record in enumerate(records):
                    if record.state:
                        continue
                    row = await conn.fetchrow(_STMTS.get_execution, record.id)
                    if row is not None:
                        records[i] = execution_from_row(tuple(row))
                        records[i].state = await _state_of(conn, records[i])
        return records

    async def count_executions(
        self,
        *,
        status: Collection[str] | None = None,
        workflow_id: str | None = None,
        context_id: str | None = None,
        asking: Asking | None = None,
        caller: str | None = None,
        updated_after: float | None = None,
    ) -> int:
        where, params = _filters(status, workflow_id, context_id, asking, caller, updated_after)
        rows = await self._fetch(f"SELECT COUNT(*) FROM executions{where}", *params)
        return int(rows[0][0])

    async def prune(self, before: float, limit: int) -> int:
        async def job(conn: asyncpg.Connection) -> int:
            if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", _PRUNE_LOCK):
                return 0  # another replica prunes this round
            rows = await conn.fetch(numbered(PRUNE_CANDIDATES), before, limit)
            ids = [row[0] for row in rows]
            if ids:
                for statement in PRUNE_DELETES:
                    await conn.execute(statement.format(ids="(SELECT unnest($1::text[]))"), ids)
            return len(ids)

        return await self._transact(job)

    async def gauges(self, now: float) -> StoreGauges:
        async with self._connection() as conn:
            results = []
            for name, sql in GAUGE_QUERIES:
                params = (now,) if "{now}" in sql else ()
                results.append((name, await conn.fetch(sql.format(now="$1"), *params)))
        return fold_gauges(results)

    async def events(self, execution_id: str, after: int = 0) -> list[EventRecord]:
        rows = await self._fetch(_STMTS.events_of, execution_id, after)
        return [event_from_row(tuple(r)) for r in rows]

    async def events_of(
        self, execution_ids: Sequence[str], kinds: Collection[str]
    ) -> dict[str, list[EventRecord]]:
        found: dict[str, list[EventRecord]] = {execution_id: [] for execution_id in execution_ids}
        if not found:
            return found
        sql = (
            f"SELECT {EVENT_COLUMNS} FROM events WHERE execution_id = ANY($1::text[])"
            " AND kind = ANY($2::text[]) ORDER BY execution_id, seq"
        )
        for row in await self._fetch(sql, list(found), list(kinds)):
            event = event_from_row(tuple(row))
            found[event.execution_id].append(event)
        return found

    async def work(self, execution_id: str) -> list[WorkItem]:
        return [work_from_row(tuple(r)) for r in await self._fetch(_STMTS.work_of, execution_id)]

    async def waits(self, execution_id: str) -> list[WaitRecord]:
        return [wait_from_row(tuple(r)) for r in await self._fetch(_STMTS.waits_of, execution_id)]


async def _check_fence(conn: asyncpg.Connection, execution_id: str, fence: Fence) -> None:
    row = await conn.fetchrow(
        _STMTS.check_fence, execution_id, fence.node, fence.visit, fence.fence, fence.owner
    )
    if row is None:
        raise Fenced(f"lease on {execution_id}/{fence.node}/{fence.visit} was taken over")


async def _state_of(conn: asyncpg.Connection, record: ExecutionRecord) -> str:
    """The execution's whole current state (:mod:`.snapshots`)."""
    if record.state:
        return record.state
    return fold(*await _snapshot(conn, record.id, record.snapshot_seq, record.state_seq))


async def _snapshot(
    conn: asyncpg.Connection, execution_id: str, since: int, until: int
) -> tuple[dict[str, Any], list[str | None]]:
    """The base at ``since`` and the patches (event data) up to ``until``."""
    text = await conn.fetchval(_STMTS.snapshot_of, execution_id, since)
    started = None
    if text is None and since == 0:
        started = await conn.fetchval(_STMTS.input_of, execution_id)
    patches = [r[0] for r in await conn.fetch(_STMTS.patches_of, execution_id, since, until)]
    return base_of(text, started), patches


async def _flush(conn: asyncpg.Connection, txn: Txn) -> None:
    due = settle(txn)
    if due is not None:
        finish_fold(txn, *await _snapshot(conn, txn.execution.id, due.snapshot_seq, due.until))
    for sql, rows in flush_statements(txn, _STMTS):
        if len(rows) == 1:
            await conn.execute(sql, *rows[0])
        else:
            await conn.executemany(sql, rows)
    for delegation, expected in txn.delegations_set:
        status = await conn.execute(
            _STMTS.update_delegation, *delegation_update_row(delegation, expected)
        )
        if status != "UPDATE 1":
            raise StoreError(f"delegation {delegation.key} changed under a transaction")
    for kind in txn.notices:
        await conn.execute("SELECT pg_notify($1, $2)", _CHANNEL, f"{kind}:{txn.execution.id}")


def _full(url: str, exc: asyncpg.exceptions.DiskFullError) -> StoreFull:
    """PostgreSQL's "could not extend file …: No space left on device" (53100)."""
    return StoreFull(f"the store could not write, its disk is full: PostgreSQL {url}: {exc}")


async def _schema_version(conn: asyncpg.Connection) -> int | None:
    if await conn.fetchval("SELECT to_regclass('schema_info')") is None:
        return None
    value = await conn.fetchval("SELECT value FROM schema_info WHERE key = 'version'")
    return None if value is None else int(value)


async def _keep_session(_conn: asyncpg.Connection) -> None:
    """Skip the pool's reset query on release (a round trip per transaction):
    pooled connections never change session state — no SET, no LISTEN (that
    has its own connection), only transaction-scoped advisory locks."""


def _filters(
    status: Collection[str] | None,
    workflow_id: str | None,
    context_id: str | None,
    asking: Asking | None,
    caller: str | None,
    updated_after: float | None = None,
) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if status is not None:
        params.append(list(status))
        clauses.append(f"status = ANY(${len(params)}::text[])")
    if workflow_id is not None:
        params.append(workflow_id)
        clauses.append(f"workflow_id = ${len(params)}")
    if context_id is not None:
        params.append(context_id)
        clauses.append(f"context_id = ${len(params)}")
    if asking is not None:
        clauses.append(ASKING[asking])
    if caller is not None:
        params.append(caller)
        clauses.append(f"caller = ${len(params)}")
    if updated_after is not None:
        params.append(updated_after)
        clauses.append(f"updated_at >= ${len(params)}")
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params

"""The PostgreSQL store: many worker processes (and nodes) share one database.

* The hot path is one statement per commit, batched across executions
  (group commit): a node's result, the lease of the next node and the
  check of the fence are written by one statement that commits by itself
  (:mod:`.pg_write`), shared by every commit the process makes at that
  moment (:mod:`.pg_group`). A writer that names what it holds
  (``Store.apply(held=…)``: the claim as it last committed it) has its plan
  run on that, without reading the row; the statement writes only if the
  row is still that version and the lease is still held. Otherwise — the
  row moved on (another writer), or the plan needs what the writer does
  not hold (its state, other rows) — the plan runs the classic way: in a
  transaction that locks the lease and the execution row in one statement
  (:mod:`.pg_txn`). The writes are in :mod:`.pg_writes`.
* Claiming uses ``FOR UPDATE SKIP LOCKED``, so workers never wait on each
  other's rows and never claim the same item; a claim of many items is a
  handful of statements whatever their number.
* Notifications travel with ``NOTIFY agent_node, 'kind:execution_id'`` sent
  inside the writing transaction (delivered only if it commits); every store
  ``LISTEN``\\ s on one dedicated connection. The live channel's chunks
  travel on ``agent_node_live`` (:mod:`.pg_live`), sent on another.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Any, TypeVar

import asyncpg

from agent_node.errors import StoreError
from agent_node.store.attached import named
from agent_node.store.counts import COMPACT, COMPACT_EVERY, COMPACT_LOCK
from agent_node.store.gauges import GAUGE_QUERIES, StoreGauges, fold_gauges
from agent_node.store.listing import Fetch, Filters, count, page
from agent_node.store.notify import Notifying
from agent_node.store.outage import quiet_pool_outages
from agent_node.store.pg_conn import full, keep_session
from agent_node.store.pg_listen import Listening, Sending
from agent_node.store.pg_live import LIVE_CHANNEL, PgLive
from agent_node.store.pg_schema import ensure_schema
from agent_node.store.pg_txn import STMTS, state_txn
from agent_node.store.pg_write import CHANNEL
from agent_node.store.pg_writes import PgWrites
from agent_node.store.records import (
    Asking,
    EventRecord,
    ExecutionRecord,
    VisitKey,
    WaitRecord,
    WorkItem,
)
from agent_node.store.retention import PRUNE_CANDIDATES, PRUNE_DELETES
from agent_node.store.slots import PgSlots, SharedSlots
from agent_node.store.sql import EVENT_COLUMNS, dues_from_rows, numbered
from agent_node.store.sql_rows import (
    event_from_row,
    execution_from_row,
    wait_from_row,
    work_from_row,
)
from agent_node.store.store_id import READ_STORE_ID, TAKE_STORE_ID_PG, new_store_id
from agent_node.store.stranded import Key, StrandedPage, stranded_page

__all__ = ["PostgresStore"]

log = logging.getLogger(__name__)
T = TypeVar("T")
#: Connections for listings and counts at most.
_READS = 4
_PRUNE_LOCK = 0x7072756E65  # "prune": one replica prunes at a time


#: Every lease of an owner, extended; its rows are locked in key order, as
#: the group commit locks the rows it checks (:mod:`.pg_write`): two
#: statements that lock some of the same rows in another order could
#: deadlock (PostgreSQL would abort one after a second's wait).
_EXTEND_LEASES = (
    "UPDATE work w SET lease_expires_at = $1 FROM (SELECT execution_id, node, visit FROM work"
    " WHERE lease_owner = $2 ORDER BY execution_id, node, visit FOR UPDATE) s"
    " WHERE w.execution_id = s.execution_id AND w.node = s.node AND w.visit = s.visit"
    " RETURNING w.execution_id, w.node, w.visit"
)


class PostgresStore(PgWrites, Notifying):
    def __init__(
        self,
        url: str,
        dsn: str,
        *,
        pool_size: int = 10,
        create: bool = True,
        force_upgrade: bool = False,
    ) -> None:
        dsn = named(dsn)  # every connection names this process and its schema (attached.py)
        super().__init__(url, dsn, pool_size)
        #: False: a database without our schema is a MissingStore, not created.
        self._create_missing = create
        #: Upgrade an older schema even while older agent-nodes are connected.
        self._force_upgrade = force_upgrade
        #: Chunks of the text nodes are writing (:mod:`.live`), across the
        #: replicas of the database (:mod:`.pg_live`).
        self.live = PgLive()
        #: LISTENs for the engine's notices and the replicas' live text;
        #: opened again when the database comes back (:mod:`.pg_listen`).
        self._listen = Listening(
            dsn,
            [(CHANNEL, self._on_notify), (LIVE_CHANNEL, self.live.on_notify)],
            self._heard_again,
        )
        #: Slots shared by the processes of this database (:mod:`.slots`).
        self.slots: SharedSlots | None = PgSlots(dsn)
        self._live_conn = Sending(dsn)
        #: Compacts the counts' shards (store/counts.py) while the store is open.
        self._compactions: asyncio.Task[None] | None = None
        #: Connections for listings and counts, each statement planned for its
        #: parameters (:meth:`_listing`); opened as they are needed.
        self._reads: asyncpg.Pool | None = None
        #: The store's id, once read (:mod:`.store_id`).
        self._store_id: str | None = None

    # -- lifecycle -----------------------------------------------------------

    async def open(self) -> None:
        if self._pool is not None:
            return
        quiet_pool_outages()
        try:
            self._pool = await asyncpg.create_pool(
                self.dsn,
                min_size=1,
                max_size=self.pool_size,
                command_timeout=60,
                reset=keep_session,
            )
            self._reads = await asyncpg.create_pool(
                self.dsn,
                min_size=0,
                max_size=_READS,
                command_timeout=60,
                reset=keep_session,
                server_settings={"plan_cache_mode": "force_custom_plan"},
            )
            await self._open_writes()
            await self._listen.open()
            await self._live_conn.open()
            self.live.start(self._notify_live)
            async with self._pool.acquire() as conn:
                await ensure_schema(
                    conn, self.url, create=self._create_missing, force=self._force_upgrade
                )
            self._compactions = asyncio.create_task(
                self._keep_compacting(), name="agent-node count compactions"
            )
        except BaseException as exc:
            await self.close()
            if isinstance(exc, asyncpg.exceptions.DiskFullError):
                raise full(self.url, exc) from exc
            if isinstance(exc, OSError | asyncpg.PostgresError):
                raise StoreError(f"cannot open {self.url}: {exc}") from exc
            raise

    async def close(self) -> None:
        compactions, self._compactions = self._compactions, None
        if compactions is not None:
            compactions.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await compactions
        await self._close_writes()
        await self.live.stop()
        await self._live_conn.close()
        pool, self._pool = self._pool, None
        reads, self._reads = self._reads, None
        await self._listen.close()
        if pool is not None:
            await pool.close()
        if reads is not None:
            await reads.close()

    async def compact_counts(self) -> None:
        """Fold the count shards of server processes that are gone into shard
        0, unless another replica is at it this moment (store/counts.py)."""

        async def job(conn: asyncpg.Connection) -> None:
            if await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", COMPACT_LOCK):
                await conn.execute(COMPACT)

        await self._transact(job)

    async def _keep_compacting(self) -> None:
        while True:
            await asyncio.sleep(COMPACT_EVERY)
            try:
                await self.compact_counts()
            except Exception as exc:  # the database is away: the next round will do
                log.debug("counts: compacting failed: %s", exc)

    async def _notify_live(self, payload: str) -> None:
        await self._live_conn.notify(LIVE_CHANNEL, payload)

    def _heard_again(self) -> None:
        """Listening again after the database was away: what was notified
        meanwhile is lost, so every engine of this process looks for work."""
        self._notifier.publish("work", "*")

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        kind, _, execution_id = payload.partition(":")
        self._notifier.publish(kind, execution_id)

    async def schema_version(self) -> int | None:
        rows = await self._fetch("SELECT value FROM schema_info WHERE key = 'version'")
        return int(rows[0][0]) if rows else None

    async def store_id(self) -> str:
        if self._store_id is None:
            rows = await self._fetch(READ_STORE_ID)
            if not rows:
                await self._count(TAKE_STORE_ID_PG, new_store_id())
                rows = await self._fetch(READ_STORE_ID)
            self._store_id = str(rows[0][0])
        return self._store_id

    async def extend_leases(self, owner: str, until: float) -> list[VisitKey]:
        rows = await self._fetch(_EXTEND_LEASES, until, owner)
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
                await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, "work:*")
            status = await conn.execute(
                "UPDATE delegations SET next_poll_at = LEAST(next_poll_at, $1), claimed_by = NULL,"
                " claimed_at = NULL"
                " WHERE claimed_by = ANY($2::text[])",
                now,
                names,
            )
            freed = int(status.split()[-1])
            if freed:
                await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, "delegation:*")
            status = await conn.execute(
                "UPDATE push_configs SET lease_expires_at = $1 WHERE lease_owner = ANY($2::text[])",
                now,
                names,
            )
            return count + freed + int(status.split()[-1])

        return await self._transact(job)

    async def lease_owners(self) -> list[str]:
        return [r[0] for r in await self._fetch(STMTS.lease_owners)]

    async def due_waits(
        self, now: float, limit: int, execution_ids: Collection[str] | None = None
    ) -> list[WaitRecord]:
        if execution_ids is None:
            rows = await self._fetch(STMTS.due_waits, now, limit)
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
            work = await self._fetch(STMTS.next_work)
            wait = await self._fetch(STMTS.next_wait)
        else:
            ids = list(execution_ids)
            work = await self._fetch(STMTS.next_work + " WHERE execution_id = ANY($1::text[])", ids)
            wait = await self._fetch(STMTS.next_wait + " AND execution_id = ANY($1::text[])", ids)
        times = [t for t in (work[0][0], wait[0][0]) if t is not None]
        return min(times, default=None)

    async def next_due_of(self, execution_ids: Collection[str]) -> dict[str, float]:
        ids = list(execution_ids)
        return dues_from_rows(await self._fetch(STMTS.next_due_of, ids, ids))

    async def get(self, execution_id: str) -> ExecutionRecord | None:
        rows = await self._fetch(STMTS.get_execution, execution_id)
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
        id_prefix: str | None = None,
        limit: int = 100,
        offset: int = 0,
        before: tuple[float, str] | None = None,
        state: bool = True,
    ) -> list[ExecutionRecord]:
        filters = Filters(status, workflow_id, context_id, asking, caller, updated_after, id_prefix)
        rows = await self._listing(
            lambda fetch: page(
                fetch, filters, limit=limit, offset=offset, before=before, sqlite=False, state=state
            )
        )
        records = [execution_from_row(tuple(r)) for r in rows]
        return await self._with_state(records) if state else records

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
                    row = await conn.fetchrow(STMTS.get_execution, record.id)
                    if row is not None:
                        records[i] = execution_from_row(tuple(row))
                        records[i].state = await state_txn(conn, records[i])
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
        id_prefix: str | None = None,
    ) -> int:
        filters = Filters(status, workflow_id, context_id, asking, caller, updated_after, id_prefix)
        return await self._listing(lambda fetch: count(fetch, filters, sqlite=False))

    async def count_open(self, caller: str, limit: int) -> int:
        return int((await self._fetch(STMTS.count_open, caller, limit))[0][0])

    async def _listing(self, run: Callable[[Fetch], Awaitable[T]]) -> T:
        """``run`` a listing's or a count's statements (:mod:`.listing`, ``?``
        placeholders), each planned for its parameters. asyncpg prepares
        every statement, and PostgreSQL plans a prepared statement once for
        any parameters after its fifth run; a listing's best plan depends on
        how many rows its filters match (a status no execution has walks the
        newest-first index through every row under that plan: 0.2-0.5 s with
        a million), and its statements are few and read many rows, so
        planning each run costs little beside it. Their connections are
        opened so (``plan_cache_mode``): a transaction setting it for each
        listing cost 0.4 ms of round trips, doubling a listing's time."""
        reads = self._reads
        if reads is None:
            raise StoreError(f"the store {self.url} is not open")
        async with reads.acquire() as conn:

            async def fetch(sql: str, params: Sequence[Any]) -> Sequence[Sequence[Any]]:
                return list(await conn.fetch(numbered(sql), *params))

            return await run(fetch)

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
        rows = await self._fetch(STMTS.events_of, execution_id, after)
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
        return [work_from_row(tuple(r)) for r in await self._fetch(STMTS.work_of, execution_id)]

    async def waits(self, execution_id: str) -> list[WaitRecord]:
        return [wait_from_row(tuple(r)) for r in await self._fetch(STMTS.waits_of, execution_id)]

    async def stranded(self, status: str, after: Key | None, limit: int) -> StrandedPage:
        # Planned for its status, as a listing is: a generic plan could walk
        # the index by creation, through every finished execution.
        return await self._listing(lambda fetch: stranded_page(fetch, status, after, limit))

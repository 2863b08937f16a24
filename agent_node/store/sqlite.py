"""The SQLite store: one file, one writer thread, group commit.

* Every write is a job for the writer thread (:mod:`.sqlite_writer`), which
  runs all the jobs waiting in one transaction, each job's outcome its own
  (:mod:`.sqlite_batch`), and returns a job's result only after its commit. Reads do not hop: they
  run on the calling thread, on a read-only connection of its own
  (:mod:`.sqlite_conn`).
* The writes of executions, work and leases are in :mod:`.sqlite_writes`,
  those of push configs and delegations in :mod:`.sqlite_outbox`, the
  transaction-scoped steps they share in :mod:`.sqlite_txn`, the schema in
  :mod:`.sqlite_schema`. This module opens and closes the store and holds
  the reads of executions, events, work and waits.

``synchronous=NORMAL`` (the default, WAL) survives a killed process; pass
``?synchronous=full`` in the URL to survive power loss as well. The page
cache is 512 KiB (``?cache_kib=N`` to change; :mod:`.sqlite_conn` says why).
"""

from __future__ import annotations

import functools
import json
import logging
import sqlite3
from collections.abc import Collection, Sequence
from pathlib import Path

from agent_node.store.attached import Marker
from agent_node.store.files import create_private, require_file
from agent_node.store.gauges import GAUGE_QUERIES, StoreGauges, fold_gauges
from agent_node.store.listing import Filters, count, page
from agent_node.store.live import Live
from agent_node.store.notify import Notifying
from agent_node.store.records import (
    Asking,
    EventRecord,
    ExecutionRecord,
    WaitRecord,
    WorkItem,
)
from agent_node.store.retention import PRUNE_CANDIDATES, PRUNE_DELETES
from agent_node.store.slots import FileSlots, SharedSlots
from agent_node.store.sql import dues_from_rows, in_list
from agent_node.store.sql_rows import (
    event_from_row,
    execution_from_row,
    wait_from_row,
    work_from_row,
)
from agent_node.store.sqlite_events import EVENTS_OF, EVENTS_OF_KINDS, PRUNE_EVENTS
from agent_node.store.sqlite_schema import create_schema
from agent_node.store.sqlite_txn import IDS, STMTS
from agent_node.store.sqlite_writer import Notices
from agent_node.store.sqlite_writes import SqliteWrites
from agent_node.store.store_id import READ_STORE_ID, TAKE_STORE_ID_SQLITE, new_store_id
from agent_node.store.stranded import Key, StrandedPage, stranded_page

__all__ = ["SqliteStore"]

log = logging.getLogger(__name__)


class SqliteStore(SqliteWrites, Notifying):
    def __init__(
        self,
        url: str,
        path: Path,
        *,
        synchronous: str = "NORMAL",
        cache_kib: int = 512,
        wal_limit: int = 64 * 1024 * 1024,
        create: bool = True,
        force_upgrade: bool = False,
    ) -> None:
        super().__init__(
            url, path, synchronous=synchronous, cache_kib=cache_kib, wal_limit=wal_limit
        )
        #: False: opening a missing file is a :class:`MissingStore` (see files.py).
        self._create_missing = create
        #: Upgrade an older schema even while other processes have the file open.
        self._force_upgrade = force_upgrade
        #: This process's mark on the file while it is open (:mod:`.attached`).
        self._marker = Marker(path)
        #: Chunks of the text nodes are writing (:mod:`.live`), in this process.
        self.live = Live()
        #: Slots shared by the processes of this file (:mod:`.slots`).
        self.slots: SharedSlots | None = FileSlots(path.with_name(path.name + ".slots"))
        #: The store's id, once read (:mod:`.store_id`).
        self._store_id: str | None = None

    # -- lifecycle -----------------------------------------------------------

    async def open(self) -> None:
        if self._writer.running:
            return
        if self._create_missing:
            create_private(self.path)
        else:
            require_file(self.url, self.path)
        self._marker.take()
        self._writer.start()
        schema = functools.partial(
            create_schema, url=self.url, path=self.path, force=self._force_upgrade
        )
        try:
            await self._writer.submit(schema)
        except BaseException:
            await self.close()
            raise
        self._writer.start_checkpoints()

    async def close(self) -> None:
        if not self._writer.running:
            return
        await self._writer.stop()
        self._close_readers()
        self._marker.release()

    async def schema_version(self) -> int | None:
        rows = await self._fetch("SELECT value FROM schema_info WHERE key = 'version'", ())
        return int(rows[0][0]) if rows else None

    async def store_id(self) -> str:
        if self._store_id is None:
            rows = await self._fetch(READ_STORE_ID, ())
            if not rows:
                await self._write(TAKE_STORE_ID_SQLITE, (new_store_id(),))
                rows = await self._fetch(READ_STORE_ID, ())
            self._store_id = str(rows[0][0])
        return self._store_id

    # -- reads ---------------------------------------------------------------

    async def lease_owners(self) -> list[str]:
        return [r[0] for r in await self._fetch(STMTS.lease_owners, ())]

    async def due_waits(
        self, now: float, limit: int, execution_ids: Collection[str] | None = None
    ) -> list[WaitRecord]:
        if execution_ids is None:
            rows = await self._fetch(STMTS.due_waits, (now, limit))
        else:
            ids = list(execution_ids)
            if not ids:
                return []
            sql = STMTS.due_waits.replace("ORDER BY", f"AND execution_id IN {IDS} ORDER BY")
            rows = await self._fetch(sql, (now, json.dumps(ids), limit))
        return [wait_from_row(r) for r in rows]

    async def next_due(self, execution_ids: Collection[str] | None = None) -> float | None:
        ids = list(execution_ids) if execution_ids is not None else None
        if ids is not None and not ids:
            return None
        scope_work = f" WHERE execution_id IN {IDS}" if ids else ""
        scope_wait = f" AND execution_id IN {IDS}" if ids else ""
        params = (json.dumps(ids),) if ids else ()
        work = await self._fetch(STMTS.next_work + scope_work, params)
        wait = await self._fetch(STMTS.next_wait + scope_wait, params)
        times = [t for t in (work[0][0], wait[0][0]) if t is not None]
        return min(times, default=None)

    async def next_due_of(self, execution_ids: Collection[str]) -> dict[str, float]:
        ids = json.dumps(list(execution_ids))
        return dues_from_rows(await self._fetch(STMTS.next_due_of, (ids, ids)))

    async def get(self, execution_id: str) -> ExecutionRecord | None:
        rows = await self._fetch(STMTS.get_execution, (execution_id,))
        if not rows:
            return None
        (record,) = self._with_state([execution_from_row(rows[0])])
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
        rows = await page(
            self._fetch,
            filters,
            limit=limit,
            offset=offset,
            before=before,
            sqlite=True,
            state=state,
        )
        records = [execution_from_row(r) for r in rows]
        return self._with_state(records) if state else records

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
        return await count(self._fetch, filters, sqlite=True)

    async def count_open(self, caller: str, limit: int) -> int:
        return int((await self._fetch(STMTS.count_open, (caller, limit)))[0][0])

    async def prune(self, before: float, limit: int) -> int:
        def job(conn: sqlite3.Connection) -> tuple[int, Notices]:
            ids = [row[0] for row in conn.execute(PRUNE_CANDIDATES, (before, limit))]
            if ids:
                # the log first: its rows are found through the executions'
                for statement in (PRUNE_EVENTS, *PRUNE_DELETES[1:]):
                    conn.execute(statement.format(ids=in_list(len(ids))), ids)
            return len(ids), []

        pruned: int = await self._writer.submit(job)
        return pruned

    async def gauges(self, now: float) -> StoreGauges:
        results = []
        for name, sql in GAUGE_QUERIES:
            params = (now,) * sql.count("{now}")
            results.append((name, await self._fetch(sql.format(now="?"), params)))
        return fold_gauges(results)

    async def events(self, execution_id: str, after: int = 0) -> list[EventRecord]:
        rows = await self._fetch(EVENTS_OF, (execution_id, after))
        return [EventRecord(execution_id, *r) for r in rows]

    async def events_of(
        self, execution_ids: Sequence[str], kinds: Collection[str]
    ) -> dict[str, list[EventRecord]]:
        found: dict[str, list[EventRecord]] = {execution_id: [] for execution_id in execution_ids}
        if not found:
            return found
        kinds = list(kinds)
        sql = EVENTS_OF_KINDS.format(ids=in_list(len(found)), kinds=in_list(len(kinds)))
        for row in await self._fetch(sql, (*found, *kinds)):
            event = event_from_row(row)
            found[event.execution_id].append(event)
        return found

    async def work(self, execution_id: str) -> list[WorkItem]:
        return [work_from_row(r) for r in await self._fetch(STMTS.work_of, (execution_id,))]

    async def waits(self, execution_id: str) -> list[WaitRecord]:
        return [wait_from_row(r) for r in await self._fetch(STMTS.waits_of, (execution_id,))]

    async def stranded(self, status: str, after: Key | None, limit: int) -> StrandedPage:
        return await stranded_page(self._fetch, status, after, limit)

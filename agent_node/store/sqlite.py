"""The SQLite store: one file, one writer thread, group commit.

Every write is a job for the writer thread (:mod:`.sqlite_writer`), which
runs all the jobs waiting in one transaction, each in its own savepoint, and
returns a job's result only after its commit.

Reads do not hop: they run on the calling thread, on a read-only connection
of that thread's own (WAL readers never wait for the writer). A read sees
every write whose result was returned before it, because results are
returned only after their commit. The reads are point lookups on primary
keys and indexes, so running them on the event loop costs less than the
thread hand-off they replace (about ten per A2A request before).

``synchronous=NORMAL`` (the default, WAL) survives a killed process; pass
``?synchronous=full`` in the URL to survive power loss as well.

The page cache is 512 KiB (``?cache_kib=N`` to change), not SQLite's 2 MiB:
the hot path touches few pages, and a cache that fills with every row just
written makes a process that parks thousands of executions look as if each
one cost memory.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any, TypeVar

from agent_node.errors import ConfigError, Fenced, StoreError, UnknownExecution
from agent_node.store.base import ClaimPlan, CommitObserver, Fence, Listener, Plan, Txn
from agent_node.store.files import create_private, require_file
from agent_node.store.gauges import GAUGE_QUERIES, StoreGauges, fold_gauges
from agent_node.store.live import Live
from agent_node.store.notify import Notifier
from agent_node.store.patches import fold
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
from agent_node.store.schema import ADDED_COLUMNS, BACKFILLS, SCHEMA_VERSION, ddl
from agent_node.store.slots import FileSlots, SharedSlots
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
    in_list,
    push_claim_from_row,
    push_from_row,
    push_row,
    release_row,
    wait_from_row,
    work_from_row,
)
from agent_node.store.sqlite_writer import BUSY_MS, Job, Notices, Writer, store_error

__all__ = ["SqliteStore"]

log = logging.getLogger(__name__)

T = TypeVar("T")
_STMTS = Statements(postgres=False)
# A set of ids as one JSON parameter: one statement text whatever the set's
# size, so the driver's statement cache does not fill with IN-list variants.
_IDS = "(SELECT value FROM json_each(?))"


class SqliteStore:
    def __init__(
        self,
        url: str,
        path: Path,
        *,
        synchronous: str = "NORMAL",
        cache_kib: int = 512,
        wal_limit: int = 64 * 1024 * 1024,
        create: bool = True,
    ) -> None:
        self.url = url
        self.path = path
        #: False: opening a missing file is a :class:`MissingStore` (see files.py).
        self._create_missing = create
        self.cache_kib = cache_kib
        self.synchronous = synchronous.upper()
        if self.synchronous not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
            raise ConfigError(
                f"synchronous must be off, normal, full or extra, not {synchronous!r}"
            )
        self._notifier = Notifier()
        #: Chunks of the text nodes are writing (:mod:`.live`), in this process.
        self.live = Live()
        #: Slots shared by the processes of this file (:mod:`.slots`).
        self.slots: SharedSlots | None = FileSlots(path.with_name(path.name + ".slots"))
        self._writer = Writer(
            url,
            path,
            self._notifier,
            synchronous=self.synchronous,
            cache_kib=cache_kib,
            wal_limit=wal_limit,
        )
        #: Each reading thread's connection (see the module doc).
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []

    # -- lifecycle -----------------------------------------------------------

    async def open(self) -> None:
        if self._writer.running:
            return
        if self._create_missing:
            create_private(self.path)
        else:
            require_file(self.url, self.path)
        self._writer.start()
        try:
            await self._submit(_create_schema)
        except BaseException:
            await self.close()
            raise
        self._writer.start_checkpoints()

    async def close(self) -> None:
        if not self._writer.running:
            return
        await self._writer.stop()
        readers, self._readers = self._readers, []
        for conn in readers:
            conn.close()
        self._local = threading.local()

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        return self._notifier.subscribe(listener)

    def observe(
        self, observer: CommitObserver, commit_timer: Callable[[float], None] | None = None
    ) -> Callable[[], None]:
        return self._notifier.observe(observer, commit_timer)

    async def _submit(self, job: Job) -> Any:
        if not self._notifier.observed:
            return await self._writer.submit(job)
        began = time.perf_counter()
        try:
            return await self._writer.submit(job)
        finally:
            self._notifier.took(time.perf_counter() - began)

    # -- writes --------------------------------------------------------------

    async def create(self, execution: ExecutionRecord, plan: Plan[T]) -> T | None:
        def job(conn: sqlite3.Connection) -> tuple[T | None, Notices]:
            if conn.execute(_STMTS.get_execution, (execution.id,)).fetchone() is not None:
                return None, []
            txn = Txn(
                execution, execution.created_at, is_new=True, work=[], waits=[], delegations=[]
            )
            result = plan(txn)
            return result, _flush(conn, txn)

        result: T | None = await self._submit(job)
        return result

    async def apply(
        self,
        execution_id: str,
        plan: Plan[T],
        *,
        fence: Fence | None = None,
        related: bool = False,
        state: bool = False,
        held: Claim | None = None,
    ) -> T:
        def job(conn: sqlite3.Connection) -> tuple[T, Notices]:
            if fence is not None:
                _check_fence(conn, execution_id, fence)
            row = conn.execute(_STMTS.lock_execution, (execution_id,)).fetchone()
            if row is None:
                raise UnknownExecution(execution_id)
            txn = Txn(execution_from_row(row), time.time())
            if related:
                txn.work = [work_from_row(r) for r in conn.execute(_STMTS.work_of, (execution_id,))]
                txn.waits = [
                    wait_from_row(r) for r in conn.execute(_STMTS.waits_of, (execution_id,))
                ]
                txn.delegations = [
                    delegation_from_row(r)
                    for r in conn.execute(_STMTS.lock_delegations_of, (execution_id,))
                ]
            if state:
                txn.state = _state_of(conn, txn.execution)
            result = plan(txn)
            return result, _flush(conn, txn)

        result: T = await self._submit(job)
        return result

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
        scope = f" AND execution_id IN {_IDS}" if ids else ""
        sql = (
            "UPDATE work SET lease_owner = ?, lease_expires_at = ?, fence = fence + 1,"
            " attempt = attempt + 1 WHERE (execution_id, node, visit) IN"
            " (SELECT execution_id, node, visit FROM work WHERE available_at <= ?"
            f" AND (lease_owner IS NULL OR lease_expires_at < ?){scope}"
            f" ORDER BY available_at LIMIT ?) RETURNING {WORK_COLUMNS}"
        )

        def job(conn: sqlite3.Connection) -> tuple[list[Claim], Notices]:
            params = [owner, lease_until, now, now, *([json.dumps(ids)] if ids else []), limit]
            items = [work_from_row(r) for r in conn.execute(sql, params).fetchall()]
            return _start_claims(conn, items, plan, now)

        claims: list[Claim] = await self._submit(job)
        return claims

    async def extend_leases(self, owner: str, until: float) -> list[tuple[str, str, int]]:
        def job(conn: sqlite3.Connection) -> tuple[list[tuple[str, str, int]], Notices]:
            return [tuple(r) for r in conn.execute(_STMTS.extend_leases, (until, owner))], []

        held: list[tuple[str, str, int]] = await self._submit(job)
        return held

    async def expire_leases(self, owners: Collection[str], now: float) -> int:
        names = list(owners)
        if not names:
            return 0
        sql = f"UPDATE work SET lease_expires_at = ? WHERE lease_owner IN {in_list(len(names))}"
        claims = (
            "UPDATE delegations SET next_poll_at = MIN(next_poll_at, ?), claimed_by = NULL"
            f" WHERE claimed_by IN {in_list(len(names))}"
        )

        pushes = (
            "UPDATE push_configs SET lease_expires_at = ?"
            f" WHERE lease_owner IN {in_list(len(names))}"
        )

        def job(conn: sqlite3.Connection) -> tuple[int, Notices]:
            count = conn.execute(sql, [now, *names]).rowcount
            freed = conn.execute(claims, [now, *names]).rowcount
            owed = conn.execute(pushes, [now, *names]).rowcount
            notices: Notices = [("work", "*")] if count else []
            return count + freed + owed, [*notices, ("delegation", "*")] if freed else notices

        count: int = await self._submit(job)
        return count

    # -- push configs --------------------------------------------------------

    async def put_push_config(self, config: PushConfigRecord) -> None:
        await self._write(_STMTS.put_push, push_row(config))

    async def push_configs(self, task_id: str) -> list[PushConfigRecord]:
        return [push_from_row(r) for r in await self._fetch(_STMTS.push_configs_of, (task_id,))]

    async def delete_push_config(self, task_id: str, config_id: str) -> bool:
        return await self._write(_STMTS.delete_push, (task_id, config_id)) > 0

    async def claim_pushes(
        self, owner: str, *, now: float, lease_until: float, limit: int
    ) -> list[PushClaim]:
        select = f"SELECT {', '.join('c.' + c.strip() for c in PUSH_COLUMNS.split(','))},"
        select += f" e.last_seq, e.status {PENDING_PUSHES}"
        lease = (
            "UPDATE push_configs SET lease_owner = ?, lease_expires_at = ?"
            " WHERE task_id = ? AND id = ?"
        )

        def job(conn: sqlite3.Connection) -> tuple[list[PushClaim], Notices]:
            claims = [push_claim_from_row(r) for r in conn.execute(select, (now, now, limit))]
            for claim in claims:
                claim.config.lease_owner, claim.config.lease_expires_at = owner, lease_until
            rows = [(owner, lease_until, c.config.task_id, c.config.id) for c in claims]
            conn.executemany(lease, rows)
            return claims, []

        claims: list[PushClaim] = await self._submit(job)
        return claims

    async def release_push(self, owner: str, config: PushConfigRecord) -> bool:
        return await self._write(_STMTS.release_push, release_row(owner, config)) > 0

    # -- delegations ---------------------------------------------------------

    async def delegations_of_task(self, remote_task_id: str) -> list[DelegationRecord]:
        rows = await self._fetch(_STMTS.delegations_of_task, (remote_task_id,))
        return [delegation_from_row(r) for r in rows]

    async def delegations(self, execution_id: str) -> list[DelegationRecord]:
        rows = await self._fetch(_STMTS.delegations_of, (execution_id,))
        return [delegation_from_row(r) for r in rows]

    async def delegation(self, execution_id: str, node: str, visit: int) -> DelegationRecord | None:
        rows = await self._fetch(_STMTS.delegation, (execution_id, node, visit))
        return delegation_from_row(rows[0]) if rows else None

    async def claim_delegations(
        self, *, now: float, lease_until: float, limit: int, owner: str | None = None
    ) -> list[DelegationRecord]:
        sql = (
            "UPDATE delegations SET next_poll_at = ?, polls = polls + 1, claimed_by = ?"
            " WHERE (execution_id, node, visit) IN (SELECT execution_id, node, visit"
            " FROM delegations WHERE next_poll_at <= ? ORDER BY next_poll_at LIMIT ?)"
            f" RETURNING {DELEGATION_COLUMNS}"
        )

        def job(conn: sqlite3.Connection) -> tuple[list[DelegationRecord], Notices]:
            rows = conn.execute(sql, (lease_until, owner, now, limit)).fetchall()
            return [delegation_from_row(r) for r in rows], []

        claimed: list[DelegationRecord] = await self._submit(job)
        return claimed

    async def reschedule_delegation(
        self, delegation: DelegationRecord, next_poll_at: float, error: str | None = None
    ) -> bool:
        d = delegation
        params = (next_poll_at, error, d.execution_id, d.node, d.visit, d.state, d.turn)
        return await self._write(_STMTS.reschedule_delegation, params) > 0

    async def next_delegation_at(self) -> float | None:
        rows = await self._fetch(_STMTS.next_delegation_at, ())
        return float(rows[0][0]) if rows and rows[0][0] is not None else None

    async def wake_delegations(self, peer: str, state: str, now: float, within: float) -> int:
        return await self._write(_STMTS.wake_delegations, (now, peer, state, now, within))

    async def drop_delegation(self, delegation: DelegationRecord) -> bool:
        d = delegation
        params = (d.execution_id, d.node, d.visit, d.state, d.turn)
        return await self._write(_STMTS.drop_delegation, params) > 0

    async def _write(self, sql: str, params: Sequence[Any]) -> int:
        def job(conn: sqlite3.Connection) -> tuple[int, Notices]:
            return conn.execute(sql, params).rowcount, []

        count: int = await self._submit(job)
        return count

    # -- reads ---------------------------------------------------------------

    async def lease_owners(self) -> list[str]:
        return [r[0] for r in await self._fetch(_STMTS.lease_owners, ())]

    async def due_waits(
        self, now: float, limit: int, execution_ids: Collection[str] | None = None
    ) -> list[WaitRecord]:
        if execution_ids is None:
            rows = await self._fetch(_STMTS.due_waits, (now, limit))
        else:
            ids = list(execution_ids)
            if not ids:
                return []
            sql = _STMTS.due_waits.replace("ORDER BY", f"AND execution_id IN {_IDS} ORDER BY")
            rows = await self._fetch(sql, (now, json.dumps(ids), limit))
        return [wait_from_row(r) for r in rows]

    async def next_due(self, execution_ids: Collection[str] | None = None) -> float | None:
        ids = list(execution_ids) if execution_ids is not None else None
        if ids is not None and not ids:
            return None
        scope_work = f" WHERE execution_id IN {_IDS}" if ids else ""
        scope_wait = f" AND execution_id IN {_IDS}" if ids else ""
        params = (json.dumps(ids),) if ids else ()
        work = await self._fetch(_STMTS.next_work + scope_work, params)
        wait = await self._fetch(_STMTS.next_wait + scope_wait, params)
        times = [t for t in (work[0][0], wait[0][0]) if t is not None]
        return min(times, default=None)

    async def get(self, execution_id: str) -> ExecutionRecord | None:
        rows = await self._fetch(_STMTS.get_execution, (execution_id,))
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
        limit: int = 100,
        offset: int = 0,
        before: tuple[float, str] | None = None,
    ) -> list[ExecutionRecord]:
        where, params = _filters(status, workflow_id, context_id, asking, caller, updated_after)
        if before is not None:
            where += (" AND " if where else " WHERE ") + "(created_at, id) < (?, ?)"
            params.extend(before)
        sql = (
            f"SELECT {EXECUTION_COLUMNS} FROM executions{where}"
            " ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?"
        )
        rows = await self._fetch(sql, (*params, limit, offset))
        return self._with_state([execution_from_row(r) for r in rows])

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
        rows = await self._fetch(f"SELECT COUNT(*) FROM executions{where}", params)
        return int(rows[0][0])

    async def prune(self, before: float, limit: int) -> int:
        def job(conn: sqlite3.Connection) -> tuple[int, Notices]:
            ids = [row[0] for row in conn.execute(PRUNE_CANDIDATES, (before, limit))]
            if ids:
                for statement in PRUNE_DELETES:
                    conn.execute(statement.format(ids=in_list(len(ids))), ids)
            return len(ids), []

        pruned: int = await self._writer.submit(job)
        return pruned

    async def gauges(self, now: float) -> StoreGauges:
        results = []
        for name, sql in GAUGE_QUERIES:
            params = (now,) if "{now}" in sql else ()
            results.append((name, await self._fetch(sql.format(now="?"), params)))
        return fold_gauges(results)

    async def events(self, execution_id: str, after: int = 0) -> list[EventRecord]:
        rows = await self._fetch(_STMTS.events_of, (execution_id, after))
        return [event_from_row(r) for r in rows]

    async def events_of(
        self, execution_ids: Sequence[str], kinds: Collection[str]
    ) -> dict[str, list[EventRecord]]:
        found: dict[str, list[EventRecord]] = {execution_id: [] for execution_id in execution_ids}
        if not found:
            return found
        kinds = list(kinds)
        sql = (
            f"SELECT {EVENT_COLUMNS} FROM events WHERE execution_id IN {in_list(len(found))}"
            f" AND kind IN {in_list(len(kinds))} ORDER BY execution_id, seq"
        )
        for row in await self._fetch(sql, (*found, *kinds)):
            event = event_from_row(row)
            found[event.execution_id].append(event)
        return found

    async def work(self, execution_id: str) -> list[WorkItem]:
        return [work_from_row(r) for r in await self._fetch(_STMTS.work_of, (execution_id,))]

    async def waits(self, execution_id: str) -> list[WaitRecord]:
        return [wait_from_row(r) for r in await self._fetch(_STMTS.waits_of, (execution_id,))]

    async def _fetch(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        if not self._writer.running:
            raise StoreError(f"the store {self.url} is not open")
        try:
            return self._reader().execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise store_error(self.path, exc) from exc

    def _with_state(self, records: list[ExecutionRecord]) -> list[ExecutionRecord]:
        """``records`` with their whole state: the rows of those whose state
        is not in their row are read again, with their snapshot and patches,
        in one read transaction (one view of the file: a snapshot taken
        meanwhile cannot meet the row read before it)."""
        if all(record.state for record in records):
            return records
        conn = self._reader()
        try:
            conn.execute("BEGIN")
            try:
                for i, record in enumerate(records):
                    if record.state:
                        continue
                    row = conn.execute(_STMTS.get_execution, (record.id,)).fetchone()
                    if row is not None:
                        records[i] = execution_from_row(row)
                        records[i].state = _state_of(conn, records[i])
            finally:
                conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise store_error(self.path, exc) from exc
        return records

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA query_only=1")
            conn.execute(f"PRAGMA busy_timeout={BUSY_MS}")
            # Small: hot pages are in the OS cache anyway (see the module doc).
            conn.execute(f"PRAGMA cache_size=-{max(64, self.cache_kib // 4)}")
            self._local.conn = conn
            self._readers.append(conn)
        return conn


def _create_schema(conn: sqlite3.Connection) -> tuple[None, Notices]:
    """Create the schema, or bring an older one up to date (versions only add
    tables, columns and indexes: the columns first, which new indexes need)."""
    row = None
    if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'schema_info'").fetchone():
        row = conn.execute("SELECT value FROM schema_info WHERE key = 'version'").fetchone()
    if row is not None and int(row[0]) < SCHEMA_VERSION:
        for version in range(int(row[0]) + 1, SCHEMA_VERSION + 1):
            for table, column, declaration in ADDED_COLUMNS.get(version, ()):
                present = {c[1] for c in conn.execute(f"PRAGMA table_info({table})")}
                if present and column not in present:  # a table not there yet comes whole
                    conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
            if version in BACKFILLS:
                conn.execute(BACKFILLS[version]["sqlite"])
    for statement in ddl("sqlite"):
        conn.execute(statement)
    if row is None:
        conn.execute(
            "INSERT INTO schema_info (key, value) VALUES ('version', ?)", (str(SCHEMA_VERSION),)
        )
    elif int(row[0]) > SCHEMA_VERSION:
        raise StoreError(
            f"store schema version {row[0]} is newer than this agent-node's {SCHEMA_VERSION};"
            " upgrade agent-node"
        )
    elif int(row[0]) < SCHEMA_VERSION:
        # Columns were added above; the DDL (IF NOT EXISTS) made the rest.
        conn.execute(
            "UPDATE schema_info SET value = ? WHERE key = 'version'", (str(SCHEMA_VERSION),)
        )
    return None, []


def _check_fence(conn: sqlite3.Connection, execution_id: str, fence: Fence) -> None:
    params = (execution_id, fence.node, fence.visit, fence.fence, fence.owner)
    if conn.execute(_STMTS.check_fence, params).fetchone() is None:
        raise Fenced(f"lease on {execution_id}/{fence.node}/{fence.visit} was taken over")


def _state_of(conn: sqlite3.Connection, record: ExecutionRecord) -> str:
    """The execution's whole current state (:mod:`.snapshots`)."""
    if record.state:
        return record.state
    return fold(*_snapshot(conn, record.id, record.snapshot_seq, record.state_seq))


def _snapshot(
    conn: sqlite3.Connection, execution_id: str, since: int, until: int
) -> tuple[dict[str, Any], list[str | None]]:
    """The base at ``since`` and the patches (event data) up to ``until``."""
    row = conn.execute(_STMTS.snapshot_of, (execution_id, since)).fetchone()
    started = None
    if row is None and since == 0:
        started = conn.execute(_STMTS.input_of, (execution_id,)).fetchone()
    base = base_of(row[0] if row else None, started[0] if started else None)
    patches = [r[0] for r in conn.execute(_STMTS.patches_of, (execution_id, since, until))]
    return base, patches


def _flush(conn: sqlite3.Connection, txn: Txn) -> Notices:
    due = settle(txn)
    if due is not None:
        finish_fold(txn, *_snapshot(conn, txn.execution.id, due.snapshot_seq, due.until))
    for sql, rows in flush_statements(txn, _STMTS):
        if len(rows) == 1:
            conn.execute(sql, rows[0])
        else:
            conn.executemany(sql, rows)
    for delegation, expected in txn.delegations_set:
        changed = conn.execute(
            _STMTS.update_delegation, delegation_update_row(delegation, expected)
        )
        if changed.rowcount != 1:
            raise StoreError(f"delegation {delegation.key} changed under a transaction")
    notices: Notices = [(kind, txn.execution.id) for kind in txn.notices]
    notices.append(txn)  # for the commit's observers (cheaper than asking whether any)
    return notices


def _start_claims(
    conn: sqlite3.Connection, items: list[WorkItem], plan: ClaimPlan, now: float
) -> tuple[list[Claim], Notices]:
    by_execution: dict[str, list[WorkItem]] = {}
    for item in items:
        by_execution.setdefault(item.execution_id, []).append(item)
    claims: list[Claim] = []
    notices: Notices = []
    for execution_id, leased in by_execution.items():
        row = conn.execute(_STMTS.lock_execution, (execution_id,)).fetchone()
        txn = Txn(execution_from_row(row), now)
        plan(txn, leased)
        notices.extend(_flush(conn, txn))
        claims.extend(Claim(item, txn.execution) for item in leased)
    return claims, notices


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
        values = list(status)
        clauses.append(f"status IN {in_list(len(values))}")
        params.extend(values)
    if workflow_id is not None:
        clauses.append("workflow_id = ?")
        params.append(workflow_id)
    if context_id is not None:
        clauses.append("context_id = ?")
        params.append(context_id)
    if asking is not None:
        clauses.append(ASKING[asking])
    if caller is not None:
        clauses.append("caller = ?")
        params.append(caller)
    if updated_after is not None:
        clauses.append("updated_at >= ?")
        params.append(updated_after)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params

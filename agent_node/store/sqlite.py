"""The SQLite store: one file, one writer thread, group commit.

SQLite allows one writer per file, so this store owns one connection on one
thread and feeds it a queue of jobs. The thread takes every job waiting in
the queue and runs them in a single ``BEGIN IMMEDIATE … COMMIT``, each inside
its own savepoint: a job that raises rolls back alone, the others commit
together. Under load this turns hundreds of concurrent node completions into
one commit (group commit); a lone job pays one thread hop and one commit.

Jobs are handed over once per event-loop iteration, not one by one: every
job submitted while the loop runs its ready callbacks goes to the thread as
one batch. Handed over singly, the thread woke for the first job and
committed it alone — on a busy core nine batches in ten held one job, and a
commit (its WAL writes) costs more than the rest of a job.

Why not aiosqlite: it hops threads per statement and commits per call, which
caps a step at the cost of several hops. The durability contract is the same
— a job's result is returned only after its transaction committed.

Checkpoints (copying the WAL into the database file, with an fsync) run on
a thread of their own, a quarter second after commits, never in a commit:
SQLite's automatic checkpoint would stall the writer — and every request
waiting on it — for the length of an fsync every thousand pages.

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

import asyncio
import json
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any, TypeVar

from agent_node.errors import ConfigError, Fenced, StoreError, StoreFull, UnknownExecution
from agent_node.store.base import ClaimPlan, Fence, Listener, Plan, Txn
from agent_node.store.files import create_private, require_file
from agent_node.store.notify import Notifier
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
from agent_node.store.schema import ADDED_COLUMNS, SCHEMA_VERSION, ddl
from agent_node.store.sql import (
    ASKING,
    DELEGATION_COLUMNS,
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

__all__ = ["SqliteStore"]

log = logging.getLogger(__name__)

T = TypeVar("T")
_Notices = list[tuple[str, str]]
_Job = Callable[[sqlite3.Connection], tuple[Any, _Notices]]
_Entry = tuple[_Job, "asyncio.Future[Any]", asyncio.AbstractEventLoop]
_STMTS = Statements(postgres=False)
_MAX_BATCH = 512
#: How long commits accumulate before the checkpoint thread runs (seconds).
_CHECKPOINT_DELAY = 0.25
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
        self._jobs: queue.SimpleQueue[list[_Entry] | None] = queue.SimpleQueue()
        #: Jobs submitted in the current iteration of each event loop.
        self._pending: dict[asyncio.AbstractEventLoop, list[_Entry]] = {}
        self._thread: threading.Thread | None = None
        self._checkpointer: threading.Thread | None = None
        #: Set after each commit, and to stop the checkpoint thread.
        self._committed = threading.Event()
        self._closing = False
        self._notifier = Notifier()
        #: Each reading thread's connection (see the module doc).
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []

    # -- lifecycle -----------------------------------------------------------

    async def open(self) -> None:
        if self._thread is not None:
            return
        if self._create_missing:
            create_private(self.path)
        else:
            require_file(self.url, self.path)
        self._thread = threading.Thread(target=self._serve, name=f"sqlite:{self.path}", daemon=True)
        self._thread.start()
        try:
            await self._submit(_create_schema)
        except BaseException:
            await self.close()
            raise
        self._closing = False
        self._checkpointer = threading.Thread(
            target=self._checkpoints, name=f"sqlite checkpoints:{self.path}", daemon=True
        )
        self._checkpointer.start()

    async def close(self) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        for batch in self._pending.values():  # submitted but not yet handed over
            self._jobs.put(batch)
        self._pending.clear()
        self._jobs.put(None)
        await asyncio.to_thread(thread.join)
        checkpointer, self._checkpointer = self._checkpointer, None
        if checkpointer is not None:
            self._closing = True
            self._committed.set()
            await asyncio.to_thread(checkpointer.join)
        readers, self._readers = self._readers, []
        for conn in readers:
            conn.close()
        self._local = threading.local()

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        return self._notifier.subscribe(listener)

    # -- the writer thread ---------------------------------------------------

    def _serve(self) -> None:
        try:
            conn = self._writer()
        except sqlite3.Error as exc:  # a full disk, a directory we may not write
            # Fail every job (open()'s schema job first) until close().
            error = _store_error(self.path, exc)
            while (batch := self._jobs.get()) is not None:
                self._settle(batch, [(False, error)] * len(batch), [])
            return
        try:
            while (first := self._jobs.get()) is not None:
                batch = list(first)
                while len(batch) < _MAX_BATCH:
                    try:
                        more = self._jobs.get_nowait()
                    except queue.Empty:
                        break
                    if more is None:
                        self._jobs.put(None)
                        break
                    batch.extend(more)
                self._run_batch(conn, batch)
                self._committed.set()
        finally:
            conn.close()

    def _writer(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
            conn.execute("PRAGMA busy_timeout=30000")
            conn.execute(f"PRAGMA cache_size=-{self.cache_kib}")
            conn.execute("PRAGMA wal_autocheckpoint=0")  # the checkpoint thread does it
        except BaseException:
            conn.close()
            raise
        return conn

    def _checkpoints(self) -> None:
        """Checkpoint the WAL a moment after commits (PASSIVE: never blocks the writer)."""
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        failing = False
        try:
            while True:
                self._committed.wait()
                time.sleep(_CHECKPOINT_DELAY)
                # Clear, then look: close() sets the flag before the event, so
                # a close at any point is seen now or wakes the next wait.
                self._committed.clear()
                if self._closing:
                    return
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as exc:  # busy, I/O, disk full: the next round tries again
                    if not failing:  # once, not four times a second while the disk is full
                        log.warning("SQLite %s: checkpoint failed: %s", self.path, exc)
                    failing = True
                else:
                    failing = False
        finally:
            conn.close()

    def _run_batch(self, conn: sqlite3.Connection, batch: list[_Entry]) -> None:
        outcomes: list[tuple[bool, Any]] = []
        notices: _Notices = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for job, _, _ in batch:
                conn.execute("SAVEPOINT job")
                try:
                    result, job_notices = job(conn)
                except BaseException as exc:
                    conn.execute("ROLLBACK TO job")
                    conn.execute("RELEASE job")
                    if isinstance(exc, sqlite3.Error):
                        exc = _store_error(self.path, exc)
                    outcomes.append((False, exc))
                else:
                    conn.execute("RELEASE job")
                    outcomes.append((True, result))
                    notices.extend(job_notices)
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            outcomes = [(False, _store_error(self.path, exc))] * len(batch)
            notices = []
        self._settle(batch, outcomes, notices)

    def _settle(
        self, batch: list[_Entry], outcomes: list[tuple[bool, Any]], notices: _Notices
    ) -> None:
        """Hand each job's outcome to the event loop that awaits it."""
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], bool, Any]]] = {}
        for (_, future, loop), (ok, value) in zip(batch, outcomes, strict=True):
            by_loop.setdefault(loop, []).append((future, ok, value))
        for loop, results in by_loop.items():
            try:
                loop.call_soon_threadsafe(self._deliver, results, notices)
            except RuntimeError:
                pass  # that loop is closed: nobody awaits these results any more

    def _deliver(
        self, results: list[tuple[asyncio.Future[Any], bool, Any]], notices: _Notices
    ) -> None:
        for future, ok, value in results:
            if future.done():
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)
        for kind, execution_id in notices:
            self._notifier.publish(kind, execution_id)

    async def _submit(self, job: _Job) -> Any:
        if self._thread is None:
            raise StoreError(f"the store {self.url} is not open")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        pending = self._pending.get(loop)
        if pending is None:
            pending = self._pending[loop] = []
            loop.call_soon(self._hand_over, loop)
        pending.append((job, future, loop))
        return await future

    def _hand_over(self, loop: asyncio.AbstractEventLoop) -> None:
        """Give the writer thread this loop iteration's jobs, as one batch."""
        batch = self._pending.pop(loop, None)
        if batch:
            self._jobs.put(batch)

    # -- writes --------------------------------------------------------------

    async def create(self, execution: ExecutionRecord, plan: Plan[T]) -> T | None:
        def job(conn: sqlite3.Connection) -> tuple[T | None, _Notices]:
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
    ) -> T:
        def job(conn: sqlite3.Connection) -> tuple[T, _Notices]:
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

        def job(conn: sqlite3.Connection) -> tuple[list[Claim], _Notices]:
            params = [owner, lease_until, now, now, *([json.dumps(ids)] if ids else []), limit]
            items = [work_from_row(r) for r in conn.execute(sql, params).fetchall()]
            return _start_claims(conn, items, plan, now)

        claims: list[Claim] = await self._submit(job)
        return claims

    async def extend_leases(self, owner: str, until: float) -> list[tuple[str, str, int]]:
        def job(conn: sqlite3.Connection) -> tuple[list[tuple[str, str, int]], _Notices]:
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

        def job(conn: sqlite3.Connection) -> tuple[int, _Notices]:
            count = conn.execute(sql, [now, *names]).rowcount
            freed = conn.execute(claims, [now, *names]).rowcount
            owed = conn.execute(pushes, [now, *names]).rowcount
            notices: _Notices = [("work", "*")] if count else []
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

        def job(conn: sqlite3.Connection) -> tuple[list[PushClaim], _Notices]:
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

        def job(conn: sqlite3.Connection) -> tuple[list[DelegationRecord], _Notices]:
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
        def job(conn: sqlite3.Connection) -> tuple[int, _Notices]:
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
        return execution_from_row(rows[0]) if rows else None

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
    ) -> list[ExecutionRecord]:
        where, params = _filters(status, workflow_id, context_id, asking, caller, updated_after)
        sql = (
            f"SELECT {EXECUTION_COLUMNS} FROM executions{where}"
            " ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?"
        )
        rows = await self._fetch(sql, (*params, limit, offset))
        return [execution_from_row(r) for r in rows]

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

    async def events(self, execution_id: str, after: int = 0) -> list[EventRecord]:
        rows = await self._fetch(_STMTS.events_of, (execution_id, after))
        return [event_from_row(r) for r in rows]

    async def work(self, execution_id: str) -> list[WorkItem]:
        return [work_from_row(r) for r in await self._fetch(_STMTS.work_of, (execution_id,))]

    async def waits(self, execution_id: str) -> list[WaitRecord]:
        return [wait_from_row(r) for r in await self._fetch(_STMTS.waits_of, (execution_id,))]

    async def _fetch(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        if self._thread is None:
            raise StoreError(f"the store {self.url} is not open")
        try:
            return self._reader().execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise _store_error(self.path, exc) from exc

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA query_only=1")
            conn.execute("PRAGMA busy_timeout=30000")
            # Small: hot pages are in the OS cache anyway (see the module doc).
            conn.execute(f"PRAGMA cache_size=-{max(64, self.cache_kib // 4)}")
            self._local.conn = conn
            self._readers.append(conn)
        return conn


def _store_error(path: Path, exc: sqlite3.Error) -> StoreError:
    """``exc`` as a StoreError; a full disk as :class:`StoreFull`. SQLite says
    SQLITE_FULL when a write finds no space, but a bare "disk I/O error" when
    the ``-shm`` file cannot grow (SQLITE_IOERR_SHMSIZE) — on a full disk,
    the usual error of the first write after a restart."""
    code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
    if code == sqlite3.SQLITE_FULL or (code == sqlite3.SQLITE_IOERR and _disk_full(path)):
        return StoreFull(f"the store could not write, its disk is full: SQLite {path}: {exc}")
    return StoreError(f"SQLite {path}: {exc}")


def _disk_full(path: Path) -> bool:
    try:
        return os.statvfs(path.absolute().parent).f_bavail == 0
    except OSError:
        return False


def _create_schema(conn: sqlite3.Connection) -> tuple[None, _Notices]:
    """Create the schema, or bring an older one up to date (versions only add tables)."""
    for statement in ddl("sqlite"):
        conn.execute(statement)
    row = conn.execute("SELECT value FROM schema_info WHERE key = 'version'").fetchone()
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
        # The DDL above (IF NOT EXISTS) created the tables newer versions
        # added; the columns they added to older tables are added here.
        for version in range(int(row[0]) + 1, SCHEMA_VERSION + 1):
            for table, column, declaration in ADDED_COLUMNS.get(version, ()):
                present = {c[1] for c in conn.execute(f"PRAGMA table_info({table})")}
                if column not in present:
                    conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
        conn.execute(
            "UPDATE schema_info SET value = ? WHERE key = 'version'", (str(SCHEMA_VERSION),)
        )
    return None, []


def _check_fence(conn: sqlite3.Connection, execution_id: str, fence: Fence) -> None:
    params = (execution_id, fence.node, fence.visit, fence.fence, fence.owner)
    if conn.execute(_STMTS.check_fence, params).fetchone() is None:
        raise Fenced(f"lease on {execution_id}/{fence.node}/{fence.visit} was taken over")


def _flush(conn: sqlite3.Connection, txn: Txn) -> _Notices:
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
    return [(kind, txn.execution.id) for kind in txn.notices]


def _start_claims(
    conn: sqlite3.Connection, items: list[WorkItem], plan: ClaimPlan, now: float
) -> tuple[list[Claim], _Notices]:
    by_execution: dict[str, list[WorkItem]] = {}
    for item in items:
        by_execution.setdefault(item.execution_id, []).append(item)
    claims: list[Claim] = []
    notices: _Notices = []
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
        clauses.append("json_extract(metadata, '$.caller') = ?")
        params.append(caller)
    if updated_after is not None:
        clauses.append("updated_at >= ?")
        params.append(updated_after)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params

"""SQLite: the connections of a store — one writer, a reader per thread.

Every write is a job for the writer thread (:mod:`.sqlite_writer`), which
runs all the jobs waiting in one transaction, each job's outcome its own
(:mod:`.sqlite_batch`), and returns a job's result only after its commit.

Reads do not hop: they run on the calling thread, on a read-only connection
of that thread's own (WAL readers never wait for the writer). A read sees
every write whose result was returned before it, because results are
returned only after their commit. The reads are point lookups on primary
keys and indexes, so running them on the event loop costs less than the
thread hand-off they replace (about ten per A2A request before).

The writer's page cache is 256 KiB (``?cache_kib=N`` to change; each
reader's a quarter of it, at least 64), not SQLite's 2 MiB: the hot path
touches few pages — the right edges of the indexes, as ids sort by time —
and a cache that fills with every row just written makes a process that
parks thousands of executions look as if each one cost memory. 512 KiB and
256 KiB ran the same (``bench/ours.py`` seq200 and conc200,
``bench/state_bench.py`` big, append and long, 2026-12-05); the pages a
step misses are in the operating system's cache.

Apart from the store because how a job or a read reaches the file is one
concern, what the store's methods write and read another; the store's
classes are built on this one (:mod:`.sqlite`), as :mod:`.pg_conn` is for
PostgreSQL.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agent_node.errors import ConfigError, StoreError
from agent_node.store.notify import Notifier
from agent_node.store.records import ExecutionRecord
from agent_node.store.sql_rows import execution_from_row
from agent_node.store.sqlite_errors import store_error
from agent_node.store.sqlite_open import BUSY_MS
from agent_node.store.sqlite_txn import STMTS, state_txn
from agent_node.store.sqlite_writer import Notices, Writer

__all__ = ["SqliteConnections"]


def _null(value: None) -> None:
    return value


# Python's sqlite3 binds an int, a float or a str as it is, but asks the
# adapters for anything else, None included, and with none registered it
# looks for ``__adapt__`` on its protocol type, which raises (and clears) an
# AttributeError for each None it binds: ~0.3 µs each, and several a step
# (an event's node or data, an execution's error, a new row's empty
# columns). An adapter found in the registry is called instead; this one
# gives None back, bound as NULL as before. (Process-wide, and the same
# value for whoever else binds None.)
sqlite3.register_adapter(type(None), _null)


class SqliteConnections:
    """The writer and the readers of the SQLite file at ``path``; the store
    opens and closes them (:class:`~.sqlite.SqliteStore`)."""

    def __init__(
        self, url: str, path: Path, *, synchronous: str, cache_kib: int, wal_limit: int
    ) -> None:
        self.url = url
        self.path = path
        self.cache_kib = cache_kib
        self.synchronous = synchronous.upper()
        if self.synchronous not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
            raise ConfigError(
                f"synchronous must be off, normal, full or extra, not {synchronous!r}"
            )
        self._notifier = Notifier()
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

    async def _write(self, sql: str, params: Sequence[Any]) -> int:
        def job(conn: sqlite3.Connection) -> tuple[int, Notices]:
            return conn.execute(sql, params).rowcount, []

        count: int = await self._writer.submit(job)
        return count

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
                    row = conn.execute(STMTS.get_execution, (record.id,)).fetchone()
                    if row is not None:
                        records[i] = execution_from_row(row)
                        records[i].state = state_txn(conn, records[i])
            finally:
                conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise store_error(self.path, exc) from exc
        return records

    def _close_readers(self) -> None:
        readers, self._readers = self._readers, []
        for conn in readers:
            conn.close()
        self._local = threading.local()

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

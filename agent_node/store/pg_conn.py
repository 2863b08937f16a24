"""PostgreSQL: the connection pool, and transactions run on it.

Deadlocks and serialization failures (possible only around zombie leases)
are retried a few times; a transaction is all-or-nothing, so a retry is
safe. A lost connection is a :class:`StoreError`, a full disk a
:class:`StoreFull`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import asyncpg

from agent_node.errors import StoreError, StoreFull
from agent_node.store.notify import Notifier
from agent_node.store.txn import Txn

__all__ = ["RETRYABLE", "PgConnections", "full", "keep_session", "retried"]

T = TypeVar("T")
RETRIES = 5
#: Failures after which a transaction (or statement) is run again.
RETRYABLE = (asyncpg.exceptions.DeadlockDetectedError, asyncpg.exceptions.SerializationError)


async def retried(url: str, attempt: Callable[[], Awaitable[T]]) -> T:
    """``attempt()``, run again after a deadlock or a serialization failure
    (it wrote nothing), :data:`RETRIES` times at most; a lost connection or
    a full disk are the store's errors."""
    for tried in range(1, RETRIES + 1):
        try:
            return await attempt()
        except RETRYABLE:
            if tried == RETRIES:
                raise
            await asyncio.sleep(0.01 * tried)
        except (OSError, asyncpg.exceptions.ConnectionDoesNotExistError) as exc:
            raise StoreError(f"PostgreSQL {url}: {exc}") from exc
        except asyncpg.exceptions.DiskFullError as exc:
            raise full(url, exc) from exc
    raise StoreError("unreachable")  # pragma: no cover - the loop returns or raises


class PgConnections:
    """A pool of connections to ``dsn`` (opened by the store) and the
    transactions run on it; commits are told to ``notifier``."""

    def __init__(self, url: str, dsn: str, pool_size: int) -> None:
        self.url = url
        self.dsn = dsn
        self.pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        self._notifier = Notifier()

    async def _transact(
        self, job: Callable[[asyncpg.Connection], Awaitable[T]], written: list[Txn] | None = None
    ) -> T:
        """Run ``job`` in a transaction, again on a deadlock or serialization
        failure; the transactions ``job`` appends to ``written`` go to the
        commit's observers once it committed."""
        pool = self._require()
        began = time.perf_counter()

        async def once() -> T:
            async with pool.acquire() as conn, conn.transaction():
                result = await job(conn)
            if self._notifier.observed:
                self._notifier.took(time.perf_counter() - began, 1)
                if written:
                    self._notifier.committed(written)
            return result

        return await retried(self.url, once)

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection; a full disk met on it is a :class:`StoreFull`."""
        try:
            async with self._require().acquire() as conn:
                yield conn
        except asyncpg.exceptions.DiskFullError as exc:
            raise full(self.url, exc) from exc

    def _require(self) -> asyncpg.Pool:
        if self._pool is None:
            raise StoreError(f"the store {self.url} is not open")
        return self._pool

    async def _fetch(self, sql: str, *params: Any) -> list[Any]:
        async with self._connection() as conn:
            return list(await conn.fetch(sql, *params))

    async def _count(self, sql: str, *params: Any) -> bool:
        """Run one write; whether it changed a row."""
        async with self._connection() as conn:
            status = await conn.execute(sql, *params)
        return int(status.split()[-1]) > 0


def full(url: str, exc: asyncpg.exceptions.DiskFullError) -> StoreFull:
    """PostgreSQL's "could not extend file …: No space left on device" (53100)."""
    return StoreFull(f"the store could not write, its disk is full: PostgreSQL {url}: {exc}")


async def keep_session(_conn: asyncpg.Connection) -> None:
    """Skip the pool's reset query on release (a round trip per transaction):
    pooled connections never change session state — no SET, no LISTEN (that
    has its own connection), only transaction-scoped advisory locks."""

"""Slots shared by every process of one store: at most ``limit`` holders of a key at once.

A model backend that takes one call at a time must not be asked twice at
once by two worker processes (or replicas) of one store any more than by
two nodes of one process (``models.backends`` with ``shared: true``,
:mod:`agent_node.integrations.backends`). The slots are held where the
store is, and let go by the operating system or the database when their
holder dies — a process killed mid-call frees its slot at once, with no
lease to expire:

* SQLite: a lock file per slot beside the database (``<db>.slots/``), held
  with ``flock``; a waiter tries each slot's file, then again a moment later;
* PostgreSQL: a session advisory lock per slot (``pg_try_advisory_lock``)
  on a connection of its own, held for as long as the slot is (closing it,
  or the holder's death, lets go); a waiter holds no connection between tries.

The memory store has none: its executions run in one process, whose own
slots suffice. Waiting is polling (every :data:`POLL` seconds, jittered):
a slot is held for a model call, seconds long, so a few tens of
milliseconds to notice one free costs nothing that matters.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
import random
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, Protocol, TypeVar

__all__ = ["POLL", "FileSlots", "PgSlots", "SharedSlots"]

#: Seconds between two tries for a slot.
POLL = 0.05
T = TypeVar("T")


#: Told once that a holder has to wait (the first try found no slot free).
Waiting = Callable[[], Awaitable[None]]


class SharedSlots(Protocol):
    def hold(
        self, key: str, limit: int, waiting: Waiting | None = None
    ) -> AbstractAsyncContextManager[None]:
        """Wait for one of ``key``'s ``limit`` slots, and hold it while the block runs."""
        ...


async def _taken(take: Callable[[], Awaitable[T | None]], waiting: Waiting | None) -> T:
    """What ``take`` returns once it takes a slot, tried again a moment
    later while none is free (``waiting`` told once, on the first miss)."""
    told = False
    while (held := await take()) is None:
        if waiting is not None and not told:
            told = True
            await waiting()
        await asyncio.sleep(POLL * random.uniform(0.5, 1.5))
    return held


class FileSlots:
    """Slots as ``flock``ed files in ``directory`` (made on first use)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @contextlib.asynccontextmanager
    async def hold(
        self, key: str, limit: int, waiting: Waiting | None = None
    ) -> AsyncIterator[None]:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        name = hashlib.sha256(key.encode()).hexdigest()[:16]

        async def take() -> int | None:
            return self._take(name, limit)

        held = await _taken(take, waiting)
        try:
            yield
        finally:
            os.close(held)  # closing the file lets go of its lock

    def _take(self, name: str, limit: int) -> int | None:
        for slot in range(limit):
            fd = os.open(self.directory / f"{name}-{slot}.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            return fd
        return None


class PgSlots:
    """Slots as PostgreSQL session advisory locks (see the module doc)."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn

    @contextlib.asynccontextmanager
    async def hold(
        self, key: str, limit: int, waiting: Waiting | None = None
    ) -> AsyncIterator[None]:
        import asyncpg

        space = zlib.crc32(key.encode()) - 2**31  # an int4 key space per backend

        async def take() -> Any:
            conn = await asyncpg.connect(self.dsn)
            try:
                for slot in range(limit):
                    if await conn.fetchval("SELECT pg_try_advisory_lock($1, $2)", space, slot):
                        return conn  # held while this session lasts
            except BaseException:
                await conn.close()
                raise
            await conn.close()  # none free: hold no connection while waiting
            return None

        conn = await _taken(take, waiting)
        try:
            yield
        finally:
            await conn.close()  # the session ends: its lock is let go

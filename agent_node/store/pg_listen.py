"""The PostgreSQL store's connections for notifications, kept while the
database comes and goes.

One connection LISTENs: the engine's notices (work, timers, status, cancel)
and the live text of the replicas of the database. One more sends that live
text (``NOTIFY``). Neither is in the pool, and a database that restarts
closes both. The listening one was opened once, at the store's opening: after
a PostgreSQL outage this process heard nothing of the others again — a
cancel asked through another replica, a status changed by a worker — and
lived on its safety polls alone (found by an operator's walk). Now:

* :class:`Listening` notices when its connection is lost and opens another,
  trying again as :class:`~agent_node.failures.Failures` says, and then tells
  the process's subscribers to look again (``on_back``): what was notified
  while it was away is lost.
* :class:`Sending` opens its connection again at its next send once it is
  closed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

import asyncpg

from agent_node.failures import Failures

__all__ = ["Listening", "Sending"]

log = logging.getLogger(__name__)

#: (channel, callback) pairs a listening connection subscribes.
Channels = Sequence[tuple[str, Callable[..., Any]]]


class Listening:
    """A LISTEN connection to ``dsn`` for ``channels``, opened again when lost."""

    def __init__(self, dsn: str, channels: Channels, on_back: Callable[[], None]) -> None:
        self.dsn = dsn
        self.channels = channels
        self.on_back = on_back
        self.connection: asyncpg.Connection | None = None
        self._again: asyncio.Task[None] | None = None
        self._closed = False

    async def open(self) -> None:
        self._closed = False
        self.connection = await self._connect()

    async def close(self) -> None:
        self._closed = True
        again, self._again = self._again, None
        if again is not None:
            again.cancel()
            await asyncio.gather(again, return_exceptions=True)
        connection, self.connection = self.connection, None
        if connection is not None:
            await connection.close()

    async def _connect(self) -> asyncpg.Connection:
        connection = await asyncpg.connect(self.dsn)
        try:
            for channel, callback in self.channels:
                await connection.add_listener(channel, callback)
        except BaseException:
            await connection.close()
            raise
        connection.add_termination_listener(self._lost)
        return connection

    def _lost(self, connection: asyncpg.Connection) -> None:
        if self._closed or connection is not self.connection or self._again is not None:
            return
        self.connection = None
        _let_go(connection)
        log.warning("notifications: the listening connection was lost; opening another")
        self._again = asyncio.get_running_loop().create_task(
            self._reconnect(), name="agent-node listen again"
        )

    async def _reconnect(self) -> None:
        failures = Failures(log, "notifications: listening again", first=0.5, most=5.0)
        try:
            while not self._closed:
                try:
                    self.connection = await self._connect()
                except Exception as exc:  # still away: try again, backing off
                    await asyncio.sleep(failures.failed(exc))
                    continue
                failures.worked()
                log.warning("notifications: listening again")
                self.on_back()
                return
        finally:
            self._again = None


class Sending:
    """A connection to ``dsn`` for ``NOTIFY``, opened again once closed."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.connection: asyncpg.Connection | None = None

    async def open(self) -> None:
        self.connection = await asyncpg.connect(self.dsn)

    async def notify(self, channel: str, payload: str) -> None:
        connection = self.connection
        if connection is None:
            return  # closed with the store
        if connection.is_closed():
            _let_go(connection)
            self.connection = connection = await asyncpg.connect(self.dsn)
        await connection.execute("SELECT pg_notify($1, $2)", channel, payload)

    async def close(self) -> None:
        connection, self.connection = self.connection, None
        if connection is None:
            return
        if connection.is_closed():
            _let_go(connection)
        else:
            await connection.close()


def _let_go(connection: asyncpg.Connection) -> None:
    """Release a connection the database cut: asyncpg may keep its socket
    half open (a transport left for the collector to warn about)."""
    try:
        connection.terminate()
    except Exception as exc:  # already gone: nothing to release
        log.debug("notifications: letting a lost connection go: %s", exc)

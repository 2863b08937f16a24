"""The schema guard: an engine stops once a newer agent-node upgraded its store.

The schema version is checked when a store opens, but a store serves for
weeks, and a newer release may upgrade it meanwhile (``agent-node upgrade
--force``, or a process started while this one was not seen). What this
release writes the new schema may not hold — a found walk had an old node
spin on "table events has no column named …" and answer every request with
an internal error; on PostgreSQL an old replica's steps failed silently. So
while an engine runs, its guard reads the store's version every
:data:`CHECK_EVERY` seconds (one primary-key read), and at once after a
failure of the claim loop, the heartbeat or a commit (:meth:`SchemaGuard.soon`:
such a failure is what a new schema looks like). Found newer, it says so
once at ERROR and hands :class:`~agent_node.errors.StoreOutdated` to the
engine, which stops taking work, interrupts what runs and lets its leases
go, for a process of the newer release to take up; a serving node then
reports not ready and exits with its own status (``agent-node serve``), so
that its supervisor starts it again — with the new release.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from agent_node.errors import StoreOutdated
from agent_node.store.base import Store
from agent_node.store.schema import SCHEMA_VERSION

from .status import wait_event

__all__ = ["CHECK_EVERY", "SchemaGuard"]

log = logging.getLogger("agent_node.engine")
#: Seconds between two reads of the store's schema version.
CHECK_EVERY = 2.0


class SchemaGuard:
    """Watches the schema version of ``store`` while an engine runs."""

    def __init__(self, store: Store, every: float = CHECK_EVERY) -> None:
        self.store = store
        self.every = every
        #: Why this process stopped, once a newer schema was found.
        self.outdated: StoreOutdated | None = None
        self._now = asyncio.Event()

    def soon(self) -> None:
        """Read the version at once: a store write or read failed unexpectedly."""
        self._now.set()

    async def watch(self, stop: Callable[[StoreOutdated], None]) -> None:
        """Read the version until a newer one is found, then tell ``stop``, once."""
        while True:
            await wait_event(self._now, self.every)
            self._now.clear()
            if (found := await self.check()) is not None:
                stop(found)
                return

    async def check(self) -> StoreOutdated | None:
        """Read the version: the error to stop with when it is newer than ours."""
        try:
            version = await self.store.schema_version()
        except Exception as exc:  # the store is away: its users say so, the next read sees
            log.debug("schema guard: cannot read the store's version: %s", exc)
            return None
        if version is None or version <= SCHEMA_VERSION:
            return None
        # Not the store's URL: /readyz says it to anyone, and a URL may hold a password.
        self.outdated = StoreOutdated(
            f"the store was upgraded to schema {version} by a newer agent-node;"
            f" this one ({SCHEMA_VERSION}) stops: upgrade it"
        )
        log.error("%s", self.outdated)
        return self.outdated

"""An engine's heartbeat: it extends the leases of the node visits running
here, stops a visit whose lease another process took over, and releases a
lease no visit here runs.

A heartbeat races with commits: while it runs, a visit may commit, give up
its lease and take the next visit's. So both verdicts need two beats in a
row — a visit missing from what we hold, still on the same visit; a lease
we hold that no task runs — before anything is done. (Stopping a visit
early only saves work: its commit would be refused.) A failure of the store
never ends it: it is logged without flooding, the schema guard looks at
the store's version at once (:mod:`.schema_guard`), and the next beat tries
again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Protocol

from agent_node.failures import Failures
from agent_node.store.base import Store
from agent_node.store.records import VisitKey

from .owner import Owner
from .schema_guard import SchemaGuard
from .status import EngineState

__all__ = ["heartbeat"]

log = logging.getLogger("agent_node.engine")

_Visits = dict[VisitKey, asyncio.Task[None]]


class Engine(Protocol):
    """What a heartbeat uses of its engine (:class:`~.engine.Engine`)."""

    store: Store
    owner: Owner
    lease_ttl: float
    state: EngineState
    schema: SchemaGuard

    @property
    def running_visits(self) -> _Visits: ...

    async def release_visit(self, execution_id: str, node: str, visit: int) -> None: ...


async def heartbeat(engine: Engine) -> None:
    """Beat every third of the lease's time while ``engine`` runs."""
    missing: _Visits = {}
    orphans: set[VisitKey] = set()
    every = engine.lease_ttl / 3
    failures = Failures(log, "heartbeat", first=every, most=every)
    while engine.state is EngineState.RUNNING:
        await asyncio.sleep(every)
        if not engine.running_visits:
            missing, orphans = {}, set()
            continue
        try:
            missing, orphans = await _beat(engine, missing, orphans)
        except Exception as exc:  # as the claim loop: it must go on
            engine.schema.soon()  # a newer schema may be why
            failures.failed(exc)
        else:
            failures.worked()


async def _beat(
    engine: Engine, missing: _Visits, orphans: set[VisitKey]
) -> tuple[_Visits, set[VisitKey]]:
    """One beat: what it found missing and orphaned, for the next to confirm."""
    visits = engine.running_visits
    running = dict(visits)
    until = time.time() + engine.lease_ttl
    held = set(await engine.store.extend_leases(str(engine.owner), until))
    now_missing = {
        key: task for key, task in running.items() if key not in held and visits.get(key) is task
    }
    for key, task in now_missing.items():
        if missing.get(key) is task:
            log.warning("lost the lease on %s/%s/%d; stopping it", *key)
            task.cancel()
    now_orphans = held - set(running) - set(visits)
    for key in now_orphans & orphans:
        await engine.release_visit(*key)
    return now_missing, now_orphans

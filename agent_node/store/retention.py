"""Retention: finished executions older than a period go, with everything
that hangs off them (events, state snapshots, waits, work, push configs,
delegations).

A batch deletes at most ``limit`` executions in one transaction, oldest
first, so a node that prunes a million rows keeps serving between batches.
Not pruned, whatever their age: executions whose caller is still owed a push
(an unsettled push config), and those with a delegation row left (a peer's
task still being canceled). On PostgreSQL one replica prunes at a time (a
transaction-scoped advisory lock; the others skip the round).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from agent_node.store.sql import TERMINAL_IN

__all__ = ["PRUNE_CANDIDATES", "PRUNE_DELETES", "Prunable", "keep_for", "prune_all"]

log = logging.getLogger(__name__)


#: The ids of a batch: ``?`` is the cut-off time, then the batch size.
PRUNE_CANDIDATES = (
    f"SELECT e.id FROM executions e WHERE e.status IN {TERMINAL_IN} AND e.updated_at < ?"
    " AND NOT EXISTS (SELECT 1 FROM push_configs p WHERE p.task_id = e.id AND p.settled = 0)"
    " AND NOT EXISTS (SELECT 1 FROM delegations d WHERE d.execution_id = e.id)"
    " ORDER BY e.created_at LIMIT ?"
)
#: What goes with each execution, children first (the events first: SQLite
#: runs its own statement for them, store/sqlite_events.py); ``{ids}`` is
#: its id list.
PRUNE_DELETES = (
    "DELETE FROM events WHERE execution_id IN {ids}",
    "DELETE FROM snapshots WHERE execution_id IN {ids}",
    "DELETE FROM waits WHERE execution_id IN {ids}",
    "DELETE FROM work WHERE execution_id IN {ids}",
    "DELETE FROM push_configs WHERE task_id IN {ids}",
    f"DELETE FROM executions WHERE id IN {{ids}} AND status IN {TERMINAL_IN}",
)


class Prunable(Protocol):
    async def prune(self, before: float, limit: int) -> int:
        """Delete up to ``limit`` finished executions last changed before
        ``before`` (epoch seconds), with what hangs off them; how many."""


async def prune_all(store: Prunable, before: float, *, batch: int = 500, pause: float = 0.0) -> int:
    """Prune batch after batch until one comes back short; how many in all.
    ``pause``: seconds between batches, leaving room for the node's work."""
    total = 0
    while True:
        pruned = await store.prune(before, batch)
        total += pruned
        if pruned < batch:
            return total
        await asyncio.sleep(pause)


async def keep_for(store: Prunable, keep: float, *, every: float, batch: int = 500) -> None:
    """Prune what finished more than ``keep`` seconds ago, now and every
    ``every`` seconds, until cancelled; a failing round is logged and the
    next one tries again."""
    import time

    while True:
        try:
            pruned = await prune_all(store, time.time() - keep, batch=batch, pause=0.05)
        except Exception as exc:  # the store is down, say: the next round tries again
            log.warning("retention: pruning failed: %s", exc)
        else:
            if pruned:
                log.info("retention: %d finished executions pruned", pruned)
        await asyncio.sleep(every)

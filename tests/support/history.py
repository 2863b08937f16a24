"""A store full of finished executions, written fast through the store's own API.

Each execution is created by one plan that logs its start and its end (as
the engine would for a one-node workflow that finished at once), so the
store holds real rows and real event logs; creations run many at a time,
which the SQLite writer commits in groups. Used by the operator API's
paging tests and by ``bench/ui_bench.py`` (100,000 executions).
"""

from __future__ import annotations

import asyncio
import json
import uuid

from agent_node.store import ExecutionRecord, Store
from agent_node.store.txn import Txn

__all__ = ["fill"]

STATUSES = ("completed", "completed", "completed", "failed", "canceled")


async def fill(
    store: Store,
    count: int,
    *,
    workflow: str = "history",
    start: float = 1_700_000_000.0,
    batch: int = 500,
    caller: str | None = None,
) -> list[str]:
    """Create ``count`` finished executions of ``workflow``, the first at
    ``start`` and one a second after another; their ids, oldest first."""
    ids = [str(uuid.uuid4()) for _ in range(count)]
    for first in range(0, count, batch):
        made = [
            store.create(_record(ids[i], workflow, start + i, caller, i), _finished)
            for i in range(first, min(first + batch, count))
        ]
        await asyncio.gather(*made)
    return ids


def _record(
    execution_id: str, workflow: str, at: float, caller: str | None, index: int
) -> ExecutionRecord:
    status = STATUSES[index % len(STATUSES)]
    metadata = json.dumps({"caller": caller}) if caller else None
    state = json.dumps({"n": index})
    error = "it failed" if status == "failed" else "canceled" if status == "canceled" else None
    return ExecutionRecord(
        execution_id,
        workflow,
        "1",
        None,
        status,  # type: ignore[arg-type]
        state,
        '{"v":{}}',
        0,
        error,
        None,
        metadata,
        at,
        at + 0.5,
    )


def _finished(txn: Txn) -> None:
    record = txn.execution
    txn.event(
        "execution_started", data=f'{{"workflow":"{record.workflow_id}@1","input":{record.state}}}'
    )
    if record.status == "completed":
        txn.event("execution_completed", data=json.dumps({"output": json.loads(record.state)}))
    elif record.status == "failed":
        txn.event("execution_failed", data=json.dumps({"error": record.error}))
    else:
        txn.event("execution_canceled", data=json.dumps({"reason": record.error}))

"""Executions an older release left with nothing to move them, settled at start.

Before the engine failed a join that could never fire (its ``_settle``), a
parallel branch that stopped before its join left its execution
``waiting`` — or ``running``, when a step's branch arrived last — with no
work, no wait and no delegation: no worker, timer, signal or peer would
ever change it, ``resume`` found nothing to resume, and ``inspect`` showed
nothing to do. Such rows outlive an upgrade.

So every engine, as it starts (:meth:`~.engine.Engine.recover`), pages
through the executions in those statuses (the store's
:meth:`~agent_node.store.base.Store.stranded`: on the index by status, a
bounded page at a time, never a finished one) and settles each stranded
one in a transaction of its own, under the execution's lock, as its last
path would be settled today (:func:`~.outcomes.unstrand`): a join whose
branches have all arrived goes on; otherwise the execution fails, naming
the joins that can never fire. The plan checks again under the lock, so
processes that start together on one PostgreSQL store race harmlessly: one
settles, the others find it settled (or moving again) and leave it. No
workflow is needed to do it: the cursor holds the joins.
"""

from __future__ import annotations

import logging

from agent_node.errors import UnknownExecution
from agent_node.store.base import Store
from agent_node.store.records import ExecutionRecord
from agent_node.store.stranded import Key
from agent_node.store.txn import Txn

from .failures import report
from .outcomes import Cursor, unstrand

__all__ = ["STRANDABLE", "settle_stranded"]

log = logging.getLogger("agent_node.engine")
#: The statuses of an execution that goes on (``pending`` ones have work).
STRANDABLE = ("waiting", "running")
#: Executions read per page of the sweep.
PAGE = 500


async def settle_stranded(store: Store, *, page: int = PAGE) -> list[ExecutionRecord]:
    """Settle every stranded execution of ``store`` (see the module doc);
    returns them as settled here."""
    settled: list[ExecutionRecord] = []
    for status in STRANDABLE:
        after: Key | None = None
        while True:
            found = await store.stranded(status, after, page)
            for execution_id in found.ids:
                record = await _settle_one(store, execution_id)
                if record is not None:
                    settled.append(record)
            if found.next is None:
                break
            after = found.next
    return settled


async def _settle_one(store: Store, execution_id: str) -> ExecutionRecord | None:
    try:
        record = await store.apply(execution_id, _settle_plan, related=True)
    except UnknownExecution:  # deleted since the page was read
        return None
    if record is None:
        return None
    said = f"{record.status}: {record.error}" if record.error else record.status
    log.warning(
        "execution %s (workflow %s) had nothing left to run or wait for (left so by an older"
        " release); now %s",
        record.id,
        record.workflow_id,
        said,
        extra={"execution_id": record.id, "workflow_id": record.workflow_id},
    )
    report(record)
    return record


def _settle_plan(txn: Txn) -> ExecutionRecord | None:
    """Settle the execution if it is still stranded; None when it is not
    (it moved on, or another process settled it)."""
    record = txn.execution
    if record.status not in STRANDABLE or txn.work or txn.waits or txn.delegations:
        return None
    cursor = Cursor.load(record.cursor)
    unstrand(txn, cursor)
    record.cursor = cursor.dump()
    return record

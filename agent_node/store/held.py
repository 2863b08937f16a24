"""A node's commit planned on what its writer holds (``Store.apply(held=…)``).

The SQL stores run the plan on a copy of the execution the runner holds,
without reading its row, and write the result only behind a gate: the row
is still that version and the lease still held (SQLite:
:func:`~.sqlite_txn.flush_gated_txn`; PostgreSQL: :mod:`.pg_write`'s gate). When it
is not, they run the plan again on the row, as they would have at first:
plans are pure functions of what they are given.
"""

from __future__ import annotations

import time
from typing import TypeVar

from agent_node.store.base import Plan
from agent_node.store.records import Claim
from agent_node.store.txn import Fence, Txn

__all__ = ["plan_held"]

T = TypeVar("T")


def plan_held(
    plan: Plan[T], held: Claim, execution_id: str, fence: Fence, related: bool
) -> tuple[Txn, T] | None:
    """``plan`` run on a copy of ``held``'s execution (with ``related``: the
    held visit as its only row, no waits, no delegations), and its value;
    None when ``held`` is not the visit ``fence`` is on, or the plan failed
    on that view (the run on the row decides)."""
    if not fence.names(held, execution_id):
        return None
    txn = Txn(held.execution.copy(), time.time())
    if related:
        txn.work, txn.waits, txn.delegations = [held.work], [], []
    try:
        return txn, plan(txn)
    except Exception:  # on a stale view, maybe
        return None

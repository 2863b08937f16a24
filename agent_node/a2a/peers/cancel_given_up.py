"""A cancel of a peer's task given up: said in its execution's log.

The watchdog asks a peer to cancel a delegation's task (or to find it by
the ``contextId`` our message named, when a lost answer never told its id)
for about ten minutes, then gives up — at once when it cannot be done at
all (a peer that refuses, a peer of A2A 0.3 where the task cannot be found
without sending again). The peer's task may then still be running: work
our caller was told is canceled, or that timed out. So the give-up is not
a log line alone: in the transaction that drops the row, the event
``delegation_cancel_given_up`` is appended to the execution's log, at the
delegate node's visit, with what was tried, how often, and the last
error; ``agent-node inspect`` and the operator API's view of the
execution's delegations show it for as long as the execution is kept.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from agent_node.a2a.peers.peer_errors import PeerError
from agent_node.errors import UnknownExecution
from agent_node.store.base import Store
from agent_node.store.records import DelegationRecord
from agent_node.store.txn import Txn

__all__ = ["CANCEL_GIVEN_UP", "give_up_cancel"]

#: The event's kind (its data: :func:`given_up_data`).
CANCEL_GIVEN_UP = "delegation_cancel_given_up"

#: The watchdog's logger: the give-up was its own line before.
log = logging.getLogger("agent_node.a2a.peers.watchdog")


def given_up_data(row: DelegationRecord, exc: PeerError) -> dict[str, Any]:
    """What the event says: the peer, its task (None when its id was never
    known), the call tried (``CancelTask``, or ``ListTasks`` to find the
    task), the tries since the cancel began, the last error, and whether
    the peer refused it for good (else: tried until the period was spent)."""
    return {
        "peer": row.peer or None,
        "task_id": row.remote_task_id or None,
        "tried": "CancelTask" if row.remote_task_id else "ListTasks",
        "tries": row.polls,
        "error": str(exc),
        "refused": not exc.transient,
    }


async def give_up_cancel(store: Store, row: DelegationRecord, exc: PeerError) -> bool:
    """Drop ``row`` (canceling, as claimed) and log the give-up in its
    execution, in one transaction; False when the row moved on meanwhile
    (nothing written)."""
    data = given_up_data(row, exc)
    log.warning(
        "delegation %s: gave up canceling the peer's task (%s, %d tries); it may still run: %s",
        row.key,
        data["tried"],
        row.polls,
        exc,
    )

    def plan(txn: Txn) -> bool:
        held = next(
            (d for d in txn.delegations or () if (d.node, d.visit) == (row.node, row.visit)),
            None,
        )
        if held is None or (held.state, held.turn) != (row.state, row.turn):
            return False
        txn.event(CANCEL_GIVEN_UP, row.node, row.visit, data=json.dumps(data))
        txn.delete_delegation(row.node, row.visit)
        return True

    try:
        given_up: bool = await store.apply(row.execution_id, plan, related=True)
    except UnknownExecution:  # its execution was deleted: the row alone is left
        return await store.drop_delegation(row)
    return given_up

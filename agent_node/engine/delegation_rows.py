"""The rules' writes of delegation rows, within one transaction.

A delegate node's visit has one row (``delegations``, a state machine: see
DESIGN.md and :mod:`agent_node.store.records`). A plan reads it as the
transaction has left it so far, writes it as a conditional update of the
row the transaction read (or an insert), and, when the visit's wait goes
away, marks it for the watchdog to cancel the peer's task. Apart from the
plans (:mod:`.plans`, :mod:`.outcomes`) because every rule that ends,
parks or resolves a visit goes through these three steps, and the
compare-and-set they keep is a contract of its own.
"""

from __future__ import annotations

from dataclasses import replace

from agent_node.store.records import DelegationRecord
from agent_node.store.txn import Txn

__all__ = ["cancel_delegation", "delegation_of", "update_delegation"]


def delegation_of(txn: Txn, node: str, visit: int) -> DelegationRecord | None:
    """The visit's delegation row as this transaction left it so far."""
    if (node, visit) in txn.delegations_del:
        return None
    for new in [*(d for d, _ in txn.delegations_set), *txn.delegations_put]:
        if (new.node, new.visit) == (node, visit):
            return new
    return next((d for d in txn.delegations or () if (d.node, d.visit) == (node, visit)), None)


def update_delegation(txn: Txn, row: DelegationRecord) -> None:
    """Write ``row`` as its visit's delegation: a conditional update of the row
    this transaction read, or an insert (once per transaction and row: a
    second write replaces the first); the watchdog is woken when it is due."""
    at = (row.node, row.visit)
    txn.delegations_put[:] = [d for d in txn.delegations_put if (d.node, d.visit) != at]
    txn.delegations_set[:] = [(d, e) for d, e in txn.delegations_set if (d.node, d.visit) != at]
    read = next((d for d in txn.delegations or () if (d.node, d.visit) == at), None)
    if read is None:
        txn.put_delegation(row)
    else:
        txn.update_delegation(row, read)
    if row.next_poll_at <= txn.now:
        txn.notify("delegation")


def cancel_delegation(txn: Txn, held: DelegationRecord) -> None:
    """The visit's wait went away: its peer task is to be canceled (a row
    that was never taken up for sending has nothing to cancel: it goes)."""
    if held.state == "canceling":
        return
    if held.state == "sending" and held.polls == 0 and not held.remote_task_id:
        txn.delete_delegation(held.node, held.visit)
        return
    update_delegation(txn, replace(held, state="canceling", next_poll_at=txn.now, polls=0))

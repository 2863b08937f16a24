"""The in-memory store's tables, and how a transaction lands in them.

One dict per table of the SQL schema (executions, events, snapshots, work,
waits, push configs, delegations), and the steps every write shares: check
a fence, read an execution's whole state, write what a plan changed and
tell the listeners. Apart from the store's methods (:mod:`.memory`,
:mod:`.memory_outbox`) as :mod:`.sqlite_conn` and :mod:`.sqlite_txn` are
from the SQLite store's: where rows live and how a change lands is one
concern, what each method of the store protocol reads and writes another.
"""

from __future__ import annotations

from typing import Any

from agent_node.errors import Fenced, StoreError
from agent_node.store.notify import Notifier
from agent_node.store.patches import fold
from agent_node.store.records import (
    TERMINAL,
    DelegationRecord,
    EventRecord,
    ExecutionRecord,
    PushConfigRecord,
    WaitRecord,
    WorkItem,
    copied,
)
from agent_node.store.snapshots import base_of, finish_fold, settle
from agent_node.store.txn import Fence, Txn

__all__ = ["MemoryTables"]

_Key = tuple[str, int]


class MemoryTables:
    """The rows of :class:`~.memory.MemoryStore`, and the steps of its writes."""

    def __init__(self) -> None:
        self._executions: dict[str, ExecutionRecord] = {}
        self._events: dict[str, list[EventRecord]] = {}
        #: Large states (table ``snapshots``): ``(seq, state)`` per execution.
        self._snapshots: dict[str, tuple[int, str]] = {}
        self._work: dict[str, dict[_Key, WorkItem]] = {}
        self._waits: dict[str, dict[_Key, WaitRecord]] = {}
        self._pushes: dict[tuple[str, str], PushConfigRecord] = {}
        self._delegations: dict[tuple[str, str, int], DelegationRecord] = {}
        #: Who claimed each delegation row last (``claimed_by``).
        self._claimed: dict[tuple[str, str, int], str] = {}
        #: The unfinished executions of each caller (the SQL stores' index
        #: ``ix_executions_open``): a count of them reads no other.
        self._open: dict[str, set[str]] = {}
        self._notifier = Notifier()

    def _check_fence(self, execution_id: str, fence: Fence) -> None:
        item = self._work.get(execution_id, {}).get((fence.node, fence.visit))
        if item is None or item.fence != fence.fence or item.lease_owner != fence.owner:
            raise Fenced(f"lease on {execution_id}/{fence.node}/{fence.visit} was taken over")

    def _flush(self, txn: Txn) -> None:
        for delegation, (state, turn) in txn.delegations_set:  # checked before any write
            held = self._delegations.get(
                (delegation.execution_id, delegation.node, delegation.visit)
            )
            if held is None or (held.state, held.turn) != (state, turn):
                raise StoreError(f"delegation {delegation.key} changed under a transaction")
        self._keep_state(txn)
        record = txn.execution
        record.updated_at = txn.now
        self._executions[record.id] = record
        self._count_open(record)
        log = self._events.setdefault(record.id, [])
        log.extend(txn.events)
        if txn.log_from is not None:
            log[:] = [e for e in log if e.seq >= txn.log_from]
        work = self._work.setdefault(record.id, {})
        for key in txn.work_del:
            work.pop(key, None)
        for item in txn.work_put:
            work[(item.node, item.visit)] = item
        waits = self._waits.setdefault(record.id, {})
        for key in txn.waits_del:
            waits.pop(key, None)
        for wait in txn.waits_put:
            waits[(wait.node, wait.visit)] = wait
        for node, visit in txn.delegations_del:
            self._delegations.pop((record.id, node, visit), None)
            self._claimed.pop((record.id, node, visit), None)
        for delegation in txn.delegations_put:
            at = (delegation.execution_id, delegation.node, delegation.visit)
            self._delegations[at] = copied(delegation)
        for delegation, _ in txn.delegations_set:  # news ends the try in flight
            at = (delegation.execution_id, delegation.node, delegation.visit)
            self._delegations[at] = kept = copied(delegation)
            kept.claimed_at = None
        if not work:
            del self._work[record.id]
        if not waits:
            del self._waits[record.id]
        for kind in txn.notices:
            self._notifier.publish(kind, record.id)
        if self._notifier.observed:
            self._notifier.committed([txn])

    def _count_open(self, record: ExecutionRecord) -> None:
        caller = record.caller
        if caller is None:
            return
        held = self._open.setdefault(caller, set())
        if record.status in TERMINAL:
            held.discard(record.id)
            if not held:
                del self._open[caller]
        else:
            held.add(record.id)

    def _keep_state(self, txn: Txn) -> None:
        """Write what ``txn`` changed of the state (:mod:`.snapshots`)."""
        record = txn.execution
        due = settle(txn)
        if due is not None:
            finish_fold(txn, *self._snapshot(record.id, due.snapshot_seq, due.until))
        write = txn.state_write
        if write is not None and write.table is not None:
            self._snapshots[record.id] = (record.snapshot_seq, write.table)
        elif write is not None and write.drop:
            self._snapshots.pop(record.id, None)

    def _with_state(self, record: ExecutionRecord) -> ExecutionRecord:
        found = copied(record)
        found.state = self._state_of(record)
        return found

    def _state_of(self, record: ExecutionRecord) -> str:
        """The execution's whole current state (:mod:`.snapshots`)."""
        if record.state:
            return record.state
        return fold(*self._snapshot(record.id, record.snapshot_seq, record.state_seq))

    def _snapshot(
        self, execution_id: str, since: int, until: int
    ) -> tuple[dict[str, Any], list[str | None]]:
        """The base at ``since`` and the patches (event data) up to ``until``."""
        # The log of an execution is its events in seq order, without gaps,
        # from its first kept one (1, or where it continued as new): a slice.
        log = self._events.get(execution_id, [])
        held = self._snapshots.get(execution_id)
        text = held[1] if held is not None and held[0] == since else None
        started = log[0].data if text is None and since == 0 and log else None
        first = log[0].seq if log else 1
        window = log[max(0, since + 1 - first) : max(0, until + 1 - first)]
        patches = [e.data for e in window if e.kind == "node_completed"]
        return base_of(text, started), patches

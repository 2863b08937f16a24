"""Where an execution's state lives: a base, and the patches after it.

A step writes what it changed — its patch, in its ``node_completed`` event
(:mod:`.patches`) — never the whole state. The whole state is written as a
*snapshot* now and then, so that reading it back costs the snapshot plus a
bounded run of patches, however long the execution has run.

Three columns of ``executions`` (schema version 7) say where it is:

* ``state_seq`` — the ``seq`` of the event that last changed the state (0:
  the input); the engine's version of the state, which its runners compare
  to know whether the state they hold is still the current one;
* ``snapshot_seq`` — the ``seq`` the base the patches apply to is of;
* ``patch_room`` — bytes of patches still allowed before the next snapshot.

The base is in one of three places:

* **the execution's row** (column ``state``) while the state's JSON is at
  most :data:`ROW_LIMIT` bytes: it is rewritten at each change
  (``snapshot_seq == state_seq`` always) — a few hundred bytes in a row
  that is written anyway, and reading it costs nothing more;
* **the table ``snapshots``** (one row per execution, with its ``seq``)
  beyond; or, for an execution whose large input is logged in its
  ``execution_started`` (the engine's are: ``Txn.input_logged``), that
  input until the first snapshot — it is not written twice. The
  execution's row then holds "": a large state must not be
  in a row the hot path updates at every step — SQLite rewrites a whole
  record, overflow pages included, whatever column changes (PostgreSQL
  keeps a TOASTed value that is not SET, but reads it with the row).

Beyond the row limit a change appends its patch only, and a new snapshot is
folded (the base plus the patches since) when the patches since reach the
base's own size (at least :data:`PATCH_ROOM` bytes) or after
:data:`SNAPSHOT_EVENTS` events: so snapshots cost at most about as many
bytes as the patches they absorb, and a reader never folds more than a
snapshot's worth of patches nor more events than that (resume time does not
grow with the history). A state that shrinks back goes back into the row at
its next snapshot.

Readers that need the state (:meth:`Store.get`, ``list_executions``,
transactions opened with ``state=True``) get it *materialized*: the row's
value when the state is there, else the base with the patches of the events
in ``(snapshot_seq, state_seq]`` applied. The engine's hot path never does:
its runners carry the parsed state from step to step (versioned by
``state_seq``) and read it only when another writer moved it on.

A store written before version 7 has the whole state in every row and the
new columns at 0: that is exactly "in the row, current" — nothing is
rewritten on upgrade. An old row too large for the row is moved out to
``snapshots`` by the first transaction on it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agent_node.errors import StoreError
from agent_node.store.patches import fold
from agent_node.store.txn import StateWrite, Txn

__all__ = [
    "PATCH_ROOM",
    "ROW_LIMIT",
    "SNAPSHOT_EVENTS",
    "Fold",
    "base_of",
    "finish_fold",
    "restart",
    "settle",
]

#: The largest state (bytes of JSON) kept in the execution's row.
ROW_LIMIT = 2048
#: Bytes of patches allowed after a snapshot at least (more for larger ones).
PATCH_ROOM = 64 * 1024
#: Events after a snapshot before the next one is due, at most.
SNAPSHOT_EVENTS = 1000


@dataclass(frozen=True, slots=True)
class Fold:
    """A snapshot is due that only the store can build: read the base at
    ``snapshot_seq`` (:func:`base_of`) and the ``node_completed`` events in
    ``(snapshot_seq, until]``, then call :func:`finish_fold`."""

    snapshot_seq: int
    until: int


def base_of(snapshot: str | None, started: str | None = None) -> dict[str, Any]:
    """The state patches apply to: the ``snapshot`` (JSON) — or, when there
    is none at ``snapshot_seq`` 0, the ``input`` of ``started`` (the data of
    ``execution_started``). Raises :class:`StoreError` when it is missing."""
    data = json.loads(snapshot) if snapshot is not None else None
    if data is None and started is not None:
        data = json.loads(started).get("input")
    if not isinstance(data, dict):
        raise StoreError("the snapshot a state is read from is missing")
    return data


def settle(txn: Txn) -> Fold | None:
    """Decide what ``txn`` writes of the state (``txn.state_write``), after
    its plan ran. Returns a :class:`Fold` when a snapshot is due that must be
    built from the store's rows (the store then calls :func:`finish_fold`)."""
    record = txn.execution
    change = txn.state_change
    if change is None:
        if len(record.state) <= ROW_LIMIT:
            return None
        if txn.is_new and txn.input_logged:  # the base: logged already
            record.patch_room = max(PATCH_ROOM, len(record.state))
            record.state = ""
        else:  # new, or a row written before version 7 (whole and current)
            _to_table(txn, record.state)
        return None
    patch, before, size = change
    if record.state:  # the whole state is in the row: apply the patch there
        _store(txn, fold(json.loads(record.state), (), patch))
        return None
    record.patch_room -= size
    if record.patch_room > 0 and record.state_seq - record.snapshot_seq < SNAPSHOT_EVENTS:
        return None
    return Fold(record.snapshot_seq, before)


def restart(txn: Txn, state: str, seq: int) -> None:
    """The state starts over as ``state`` (JSON), logged in the event ``seq``
    (an execution continued as new): a base of its own, with no patches
    before it — the log before ``seq`` is being deleted."""
    if txn.state_change is not None:
        raise RuntimeError("a transaction changes the state once")
    txn.execution.state_seq = seq
    _store(txn, state)


def finish_fold(txn: Txn, base: dict[str, Any], events: Sequence[str | None]) -> None:
    """Take the snapshot :func:`settle` asked for: ``base`` (at the record's
    ``snapshot_seq``) with the patches of ``events`` (the ``node_completed``
    data the :class:`Fold` named) and the transaction's own."""
    change = txn.state_change
    _store(txn, fold(base, events, change[0] if change else None))


def _store(txn: Txn, state: str) -> None:
    """Take a snapshot of ``state`` (current at the record's ``state_seq``)."""
    record = txn.execution
    if len(state) > ROW_LIMIT:
        _to_table(txn, state)
        return
    dropped = not record.state  # back from ``snapshots`` (or from the input: no row)
    record.state = state
    record.snapshot_seq = record.state_seq
    record.patch_room = 0
    txn.state_write = StateWrite(row=state, drop=dropped)


def _to_table(txn: Txn, state: str) -> None:
    record = txn.execution
    record.state = ""
    record.snapshot_seq = record.state_seq
    record.patch_room = max(PATCH_ROOM, len(state))
    txn.state_write = StateWrite(row="", table=state)

"""The rules of the engine as pure plan functions over a :class:`Txn`.

Every change to an execution is one of these plans, run by the store inside
the transaction that holds the execution's row (see
:mod:`agent_node.store.base`). They decide which events are appended, which
node visits become ready, which waits exist and what the status is — for all
three stores alike. No I/O happens here.

Event kinds and their ``data``:

``execution_started``   ``{"workflow", "input"}``
``node_started``        (the attempt is in the row)
``node_completed``      ``{"patch"?, "append"?, "remove"?, "next", "duration"?, "output"?,
                        "usage"?}``: the node's change to the state, if any
                        (:mod:`~agent_node.store.patches`), is all a step
                        writes of it
``execution_restarted`` ``{"input"}``: the execution continued as new (a
                        :class:`~.executor.Restart`); the log before it is deleted
``node_failed``         ``{"error", "type", "retry_at", "duration", "traceback"?}``
                        (a python step's, see :mod:`~agent_node.engine.tracebacks`)
``delegation_sent``     ``{"peer", "task_id", "endpoint", "version", "identity"[, "auth"]}``:
                        the peer took the task a delegate node's wait
                        (``wait_started``, before) handed it
``delegation_answered`` ``{"peer", "task_id"}``: our caller answered the peer's
                        question; the watchdog relays it to the peer's task
``wait_started``        ``{"kind", "event"?, "deadline"?}``
``wait_resolved``       ``{"event"?, "payload"?, "expired"?}``
``execution_completed`` ``{"output"?}`` · ``execution_failed`` ``{"error"}`` ·
``execution_canceled``  ``{"reason"}``

The cursor (column ``cursor``) holds what routing needs beyond the state:
visit counts per node (``v``) and open joins (``j``: ``[expected, arrived]``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from agent_node.errors import InvalidSignal
from agent_node.store import snapshots
from agent_node.store.base import Txn
from agent_node.store.patches import StatePatch, diff
from agent_node.store.records import (
    TERMINAL,
    DelegationRecord,
    WaitRecord,
    WorkItem,
)
from agent_node.workflow.compiled import CompiledWorkflow

from .executor import Advance, Finish, Fork, Keep, Outcome, Park, Reaction, Restart

__all__ = [
    "Lease",
    "StateChange",
    "cancel_execution",
    "complete_node",
    "dumps",
    "finish",
    "inform_visit",
    "log_notes",
    "release_lease",
    "resolve_wait",
    "start_claimed",
    "start_execution",
    "state_of",
]

dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
#: Wait kinds resolved by an arriving event (the rest are timers and joins).
ANSWERED_KINDS = frozenset({"event", "input", "auth", "delegation"})
#: Of those, the ones someone outside must answer (a delegation answers itself).
EXTERNAL_KINDS = frozenset({"event", "input", "auth"})


@dataclass(frozen=True, slots=True)
class Lease:
    """Lease new ready visits to ``owner`` (the worker continues with them)."""

    owner: str
    until: float


@dataclass(frozen=True, slots=True)
class StateChange:
    """A node's effect on the state: its patch, computed against the state
    at ``base_seq``. Applied in ``seq`` order, it needs no more: a branch
    that committed since then keeps its keys."""

    patch: StatePatch
    base_seq: int


@dataclass(slots=True)
class _Cursor:
    visits: dict[str, int] = field(default_factory=dict)
    joins: dict[str, list[int]] = field(default_factory=dict)

    @classmethod
    def load(cls, text: str) -> _Cursor:
        raw = json.loads(text) if text else {}
        return cls(raw.get("v", {}), raw.get("j", {}))

    def dump(self) -> str:
        return dumps({"v": self.visits, "j": self.joins} if self.joins else {"v": self.visits})


# -- start ---------------------------------------------------------------------


def start_execution(
    txn: Txn,
    workflow: CompiledWorkflow,
    lease: Lease | None,
    notes: Sequence[tuple[str, Any]] = (),
) -> list[WorkItem]:
    """A new execution: log its input (and ``notes``), make the start node ready."""
    record = txn.execution
    txn.event(
        "execution_started", data=f'{{"workflow":{dumps(workflow.key)},"input":{record.state}}}'
    )
    txn.input_logged = True
    log_notes(txn, notes)
    cursor = _Cursor()
    leased = _enqueue(txn, cursor, [workflow.ir.start], lease)
    record.cursor = cursor.dump()
    return leased


def log_notes(txn: Txn, notes: Sequence[tuple[str, Any]]) -> None:
    """Extra events from the edge (e.g. ``message_received``), data as JSON."""
    for kind, data in notes:
        txn.event(kind, data=dumps(data))


def start_claimed(txn: Txn, items: Sequence[WorkItem]) -> None:
    """Claimed visits begin a new attempt each."""
    for item in items:
        txn.event("node_started", item.node, item.visit, item.attempt)
    if txn.execution.status == "pending":
        txn.execution.status = "running"


# -- a node's result -----------------------------------------------------------


def complete_node(
    txn: Txn,
    workflow: CompiledWorkflow,
    item: WorkItem,
    outcome: Outcome,
    change: StateChange | None,
    duration: float,
    lease: Lease | None,
) -> list[WorkItem]:
    """Commit one attempt's outcome; returns the visits leased to ``lease``."""
    record = txn.execution
    txn.delete_work(item.node, item.visit)
    cursor = _Cursor.load(record.cursor)
    info: dict[str, Any] = {"duration": round(duration, 6)}
    patch = change.patch if change is not None else None
    if patch:
        info.update(patch.event_fields())
    leased = _apply(txn, workflow, cursor, item.node, item.visit, outcome, info, lease)
    if patch:
        _change_state(txn, item.node, item.visit, patch)
    record.cursor = cursor.dump()
    return leased


def release_lease(txn: Txn, node: str, visit: int, owner: str) -> None:
    """Make a visit leased to ``owner`` claimable at once (nothing runs it)."""
    for item in txn.work or ():
        if (item.node, item.visit) == (node, visit) and item.lease_owner == owner:
            txn.put_work(
                WorkItem(
                    item.execution_id, node, visit, item.attempt, txn.now, None, None, item.fence
                )
            )


# -- waits -----------------------------------------------------------------------


def resolve_wait(
    txn: Txn,
    workflow: CompiledWorkflow,
    wait: WaitRecord,
    outcome: Outcome,
    info: dict[str, Any],
) -> list[WorkItem]:
    """Resolve a parked visit with ``outcome`` (from the executor's resume or
    expire). The caller checked that ``wait`` is one of ``txn.waits``."""
    txn.delete_wait(wait.node, wait.visit)
    if not isinstance(outcome, Park):
        held = _delegation_of(txn, wait.node, wait.visit)
        if held is not None and info.get("expired"):
            _cancel_delegation(txn, held)  # the watchdog cancels the peer's task
        elif held is not None:  # answered: the peer's task is done with
            txn.delete_delegation(wait.node, wait.visit)
    txn.event("wait_resolved", wait.node, wait.visit, data=dumps(info))
    record = txn.execution
    cursor = _Cursor.load(record.cursor)
    details: dict[str, Any] = {}
    patch = None
    if isinstance(outcome, Advance) and outcome.patch:
        patch = validated_patch(workflow, state_of(txn), outcome.patch)
        details.update(patch.event_fields())
    leased = _apply(txn, workflow, cursor, wait.node, wait.visit, outcome, details, None)
    if patch:
        _change_state(txn, wait.node, wait.visit, patch)
    record.cursor = cursor.dump()
    return leased


def inform_visit(
    txn: Txn,
    workflow: CompiledWorkflow,
    node: str,
    visit: int,
    wait: WaitRecord | None,
    reaction: Reaction,
    info: dict[str, Any],
) -> list[WorkItem]:
    """Apply an executor's reaction to news about a visit: log its events,
    then keep the visit's wait (changing its delegation row) or resolve the
    wait like :func:`resolve_wait`."""
    outcome, events = reaction
    for kind, data in events:
        txn.event(kind, node, visit, data=dumps(dict(data)))
    if isinstance(outcome, Keep):
        if outcome.delegation is not None:
            _update_delegation(txn, outcome.delegation)
        return []
    if wait is None:
        raise InvalidSignal("news about a visit that waits for nothing cannot resolve it")
    return resolve_wait(txn, workflow, wait, outcome, info)


def find_visit_wait(txn: Txn, node: str, visit: int) -> WaitRecord | None:
    """The wait of one visit, if it has one."""
    return next((w for w in txn.waits or () if (w.node, w.visit) == (node, visit)), None)


def find_event_wait(txn: Txn, event: str) -> WaitRecord:
    """The execution's wait for ``event``; raises :class:`InvalidSignal`."""
    record = txn.execution
    if record.status in TERMINAL:
        raise InvalidSignal(f"execution {record.id} is {record.status}; it takes no more events")
    waits = txn.waits or []
    for wait in waits:
        if wait.kind in ANSWERED_KINDS and wait.event == event:
            return wait
    expected = sorted({w.event for w in waits if w.kind in ANSWERED_KINDS and w.event})
    hint = f"; it waits for {', '.join(map(repr, expected))}" if expected else ""
    raise InvalidSignal(f"execution {record.id} is not waiting for event {event!r}{hint}")


def validated_patch(
    workflow: CompiledWorkflow, state_json: str, patch: Mapping[str, Any]
) -> StatePatch:
    """Apply ``patch`` and validate the whole state: the change as the state
    model has it (coerced values, and whatever its validators changed);
    raises :class:`InvalidSignal`."""
    from pydantic import ValidationError

    before = json.loads(state_json)
    try:
        model = workflow.state_model.model_validate({**before, **patch})
    except ValidationError as exc:
        raise InvalidSignal(f"the payload does not fit the workflow's state: {exc}") from None
    return diff(before, model.model_dump(mode="json"))


def state_of(txn: Txn) -> str:
    """The whole current state, which the plan's store read for it (``state=True``)."""
    if txn.state is None:
        raise RuntimeError("this plan needs the execution's state (state=True)")
    return txn.state


# -- cancel ----------------------------------------------------------------------


def cancel_execution(txn: Txn, reason: str) -> bool:
    """Cancel unless already terminal; returns whether it was cancelled."""
    record = txn.execution
    if record.status in TERMINAL:
        return False
    _drop_everything(txn)
    txn.event("execution_canceled", data=dumps({"reason": reason}))
    record.status = "canceled"
    record.error = reason
    txn.notify("cancel")
    txn.notify("status")
    return True


# -- shared steps ------------------------------------------------------------------


def _apply(
    txn: Txn,
    workflow: CompiledWorkflow,
    cursor: _Cursor,
    node: str,
    visit: int,
    outcome: Outcome,
    info: dict[str, Any],
    lease: Lease | None,
) -> list[WorkItem]:
    if isinstance(outcome, Advance):
        info["next"] = outcome.next
        if outcome.output is not None:
            info["output"] = outcome.output
        if outcome.usage:
            info["usage"] = dict(outcome.usage)
        txn.event("node_completed", node, visit, data=dumps(info))
        return _goto(txn, workflow, cursor, outcome.next, lease)
    if isinstance(outcome, Fork):
        info["next"] = list(outcome.branches)
        txn.event("node_completed", node, visit, data=dumps(info))
        cursor.joins[outcome.join] = [len(outcome.branches), 0]
        return _enqueue(txn, cursor, list(outcome.branches), lease)
    if isinstance(outcome, Park):
        _park(txn, node, visit, outcome)
        return []
    if isinstance(outcome, Restart):
        return _restart(txn, workflow, cursor, (node, visit), outcome, info, lease)
    info["next"] = None
    if outcome.status == "failed" and outcome.output is not None:
        info["output"] = outcome.output  # why it failed (a completion's output is the result's)
    if outcome.usage:
        info["usage"] = dict(outcome.usage)
    txn.event("node_completed", node, visit, data=dumps(info))
    finish(txn, outcome)
    return []


def _restart(
    txn: Txn,
    workflow: CompiledWorkflow,
    cursor: _Cursor,
    at: tuple[str, int],
    outcome: Restart,
    info: dict[str, Any],
    lease: Lease | None,
) -> list[WorkItem]:
    """Continue as new: end the run (its other paths, waits and delegations),
    log the new input in ``execution_restarted`` — the first event of the
    log from now on — and make the start node ready. Visits go on counting,
    so an idempotency key (``execution/node/visit``) is never reused."""
    info["next"] = None
    info["restart"] = True
    txn.event("node_completed", *at, data=dumps(info))
    _drop_everything(txn)
    state = dumps(outcome.state.model_dump(mode="json"))
    restarted = txn.event("execution_restarted", data=f'{{"input":{state}}}')
    txn.log_from = restarted.seq
    snapshots.restart(txn, state, restarted.seq)
    cursor.joins.clear()
    return _enqueue(txn, cursor, [workflow.ir.start], lease)


def _goto(
    txn: Txn, workflow: CompiledWorkflow, cursor: _Cursor, target: str | None, lease: Lease | None
) -> list[WorkItem]:
    if target is None:
        _settle(txn)
        return []
    if workflow.node(target).type == "join":
        expected, arrived = cursor.joins.get(target, [1, 0])
        if arrived + 1 < expected:
            cursor.joins[target] = [expected, arrived + 1]
            return []
        cursor.joins.pop(target, None)
    return _enqueue(txn, cursor, [target], lease)


def _enqueue(txn: Txn, cursor: _Cursor, nodes: list[str], lease: Lease | None) -> list[WorkItem]:
    record = txn.execution
    leased: list[WorkItem] = []
    for node in nodes:
        visit = cursor.visits.get(node, 0) + 1
        cursor.visits[node] = visit
        if lease is None:
            txn.put_work(WorkItem(record.id, node, visit, 0, txn.now, None, None, 0))
            continue
        item = WorkItem(record.id, node, visit, 1, txn.now, lease.owner, lease.until, 1)
        txn.put_work(item)
        txn.event("node_started", node, visit, 1)
        leased.append(item)
    record.status = "running"
    return leased


def _park(txn: Txn, node: str, visit: int, park: Park) -> None:
    record = txn.execution
    info: dict[str, Any] = {"kind": park.kind, **park.info}
    if park.event is not None:
        info["event"] = park.event
    if park.deadline is not None:
        info["deadline"] = park.deadline
    if park.delegation is not None:
        row = park.delegation
        if row.state == "answered" and row.relay is not None:
            details = {"peer": row.peer, "task_id": row.remote_task_id, "turn": row.turn}
            txn.event("delegation_answered", node, visit, data=dumps(details))
        _update_delegation(txn, row)
    txn.event("wait_started", node, visit, data=dumps(info))
    txn.put_wait(WaitRecord(record.id, node, visit, park.kind, park.event, park.deadline))
    _settle(txn)


def _settle(txn: Txn) -> None:
    """After a path ended or parked: running, waiting, or completed."""
    record = txn.execution
    if txn.work is None or txn.waits is None:
        raise RuntimeError("this plan needs the execution's work and wait rows (related=True)")
    deleted_work = set(txn.work_del)
    work = [w for w in txn.work or () if (w.node, w.visit) not in deleted_work]
    if work or txn.work_put:
        record.status = "running"
        return
    deleted_waits = set(txn.waits_del)
    waits = [w for w in txn.waits or () if (w.node, w.visit) not in deleted_waits]
    if waits or txn.waits_put:
        record.status = "waiting"
        txn.notify("status")
        return
    finish(txn, Finish("completed"))


def finish(txn: Txn, finish: Finish) -> None:
    """End the execution: drop its work and waits, log how it ended."""
    record = txn.execution
    _drop_everything(txn)
    if finish.status == "completed":
        data = dumps({"output": finish.output}) if finish.output is not None else None
        txn.event("execution_completed", data=data)
        record.status = "completed"
    else:
        txn.event("execution_failed", data=dumps({"error": finish.error}))
        record.status = "failed"
        record.error = finish.error
    txn.notify("status")


def _drop_everything(txn: Txn) -> None:
    deleted = set(txn.work_del)
    for item in txn.work or ():
        if (item.node, item.visit) not in deleted:
            txn.delete_work(item.node, item.visit)
    txn.work_put.clear()
    deleted_waits = set(txn.waits_del)
    for wait in txn.waits or ():
        if (wait.node, wait.visit) not in deleted_waits:
            txn.delete_wait(wait.node, wait.visit)
    txn.waits_put.clear()
    visits = {(d.node, d.visit) for d in [*(txn.delegations or ()), *txn.delegations_put]}
    for node, visit in sorted(visits):
        held = _delegation_of(txn, node, visit)
        if held is not None:
            _cancel_delegation(txn, held)


# -- delegation rows ----------------------------------------------------------------


def _delegation_of(txn: Txn, node: str, visit: int) -> DelegationRecord | None:
    """The visit's delegation row as this transaction left it so far."""
    if (node, visit) in txn.delegations_del:
        return None
    for new in [*(d for d, _ in txn.delegations_set), *txn.delegations_put]:
        if (new.node, new.visit) == (node, visit):
            return new
    return next((d for d in txn.delegations or () if (d.node, d.visit) == (node, visit)), None)


def _update_delegation(txn: Txn, row: DelegationRecord) -> None:
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


def _cancel_delegation(txn: Txn, held: DelegationRecord) -> None:
    """The visit's wait went away: its peer task is to be canceled (a row
    that was never taken up for sending has nothing to cancel: it goes)."""
    if held.state == "canceling":
        return
    if held.state == "sending" and held.polls == 0 and not held.remote_task_id:
        txn.delete_delegation(held.node, held.visit)
        return
    _update_delegation(txn, replace(held, state="canceling", next_poll_at=txn.now, polls=0))


def _change_state(txn: Txn, node: str, visit: int, patch: StatePatch) -> None:
    """The state changes by ``patch``, logged in the visit's ``node_completed``
    event of this transaction (the store keeps the state: :mod:`~agent_node.store.snapshots`)."""
    for event in reversed(txn.events):
        if event.kind == "node_completed" and (event.node, event.visit) == (node, visit):
            txn.change_state(patch, event.seq, len(event.data or ""))
            return
    raise RuntimeError(f"a change to the state without the node_completed of {node}/{visit}")

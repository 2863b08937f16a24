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
                        writes of it; a delegate visit's ``duration`` runs
                        from its delegation's record to the peer's answer
``execution_restarted`` ``{"input"}``: the execution continued as new (a
                        :class:`~.executor.Restart`); the log before it is deleted
``node_failed``         ``{"error", "type", "retry_at", "duration", "traceback"?}``
                        (a python step's, see :mod:`~agent_node.engine.tracebacks`)
``delegation_sent``     ``{"peer", "task_id", "endpoint", "version", "identity"[, "auth"]}``:
                        the peer took the task a delegate node's wait
                        (``wait_started``, before) handed it
``delegation_answered`` ``{"peer", "task_id"}``: our caller answered the peer's
                        question; the watchdog relays it to the peer's task
``delegation_cancel_given_up`` ``{"peer", "task_id", "tried", "tries", "error",
                        "refused"}``: the watchdog gave up canceling the peer's
                        task, which may still run (logged by the watchdog, not
                        a plan: :mod:`agent_node.a2a.peers.cancel_given_up`)
``wait_started``        ``{"kind", "event"?, "deadline"?}``
``wait_resolved``       ``{"event"?, "payload"?, "expired"?}``
``execution_completed`` ``{"output"?}`` · ``execution_failed`` ``{"error"}`` ·
``execution_canceled``  ``{"reason"}``

What an outcome does to the execution — the next visits, joins, parking,
the end — is :mod:`.outcomes`; the delegation rows' writes are
:mod:`.delegation_rows`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agent_node.errors import InvalidSignal
from agent_node.store.patches import StatePatch, diff
from agent_node.store.records import TERMINAL, WaitRecord, WorkItem
from agent_node.store.txn import Txn
from agent_node.workflow.compiled import CompiledWorkflow

from .delegation_rows import cancel_delegation, delegation_of, update_delegation
from .executor import Advance, Keep, Outcome, Park, Reaction
from .outcomes import (
    Cursor,
    Lease,
    apply_outcome,
    change_state,
    drop_everything,
    dumps,
    enqueue,
    finish,
)

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

#: Wait kinds resolved by an arriving event (the rest are timers and joins).
ANSWERED_KINDS = frozenset({"event", "input", "auth", "delegation"})
#: Of those, the ones someone outside must answer (a delegation answers itself).
EXTERNAL_KINDS = frozenset({"event", "input", "auth"})


@dataclass(frozen=True, slots=True)
class StateChange:
    """A node's effect on the state: its patch, computed against the state
    at ``base_seq``. Applied in ``seq`` order, it needs no more: a branch
    that committed since then keeps its keys."""

    patch: StatePatch
    base_seq: int


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
    cursor = Cursor()
    leased = enqueue(txn, cursor, [workflow.ir.start], lease)
    record.cursor = cursor.dump(keep=record.id if leased else "")
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
    cursor = Cursor.load(record.cursor, record.id)
    info: dict[str, Any] = {"duration": round(duration, 6)}
    patch = change.patch if change is not None else None
    if patch:
        info.update(patch.event_fields())
    leased = apply_outcome(txn, workflow, cursor, item.node, item.visit, outcome, info, lease)
    if patch:
        change_state(txn, item.node, item.visit, patch)
    record.cursor = cursor.dump(keep=record.id if leased else "")
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
    details: dict[str, Any] = {}
    if not isinstance(outcome, Park):
        held = delegation_of(txn, wait.node, wait.visit)
        if held is not None:  # a delegate visit lasts from its send to its answer
            details["duration"] = round(max(0.0, txn.now - held.sent_at), 6)
        if held is not None and info.get("expired"):
            cancel_delegation(txn, held)  # the watchdog cancels the peer's task
        elif held is not None:  # answered: the peer's task is done with
            txn.delete_delegation(wait.node, wait.visit)
    txn.event("wait_resolved", wait.node, wait.visit, data=dumps(info))
    record = txn.execution
    cursor = Cursor.load(record.cursor)
    patch = None
    if isinstance(outcome, Advance) and outcome.patch:
        patch = validated_patch(workflow, state_of(txn), outcome.patch)
        details.update(patch.event_fields())
    leased = apply_outcome(txn, workflow, cursor, wait.node, wait.visit, outcome, details, None)
    if patch:
        change_state(txn, wait.node, wait.visit, patch)
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
            update_delegation(txn, outcome.delegation)
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

    from agent_node.problems import describe_validation

    before = json.loads(state_json)
    try:
        model = workflow.state_model.model_validate({**before, **patch})
    except ValidationError as exc:
        said = describe_validation(exc, workflow.state_model)
        raise InvalidSignal(f"the payload does not fit the workflow's state: {said}") from None
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
    drop_everything(txn)
    txn.event("execution_canceled", data=dumps({"reason": reason}))
    record.status = "canceled"
    record.error = reason
    txn.notify("cancel")
    txn.notify("status")
    return True

"""What an outcome does to an execution: the walk of its graph.

An executor's :class:`~.executor.Outcome` — advance, fork, park, restart,
finish — becomes, inside the plan's transaction (:mod:`.plans`), the
visit's ``node_completed`` or ``wait_started`` event, the next visits made
ready (and leased, when the worker continues with them), joins counted,
the execution's status settled, and its end logged. No I/O happens here.

The cursor (column ``cursor``) holds what routing needs beyond the state:
visit counts per node (``v``) and open joins (``j``: ``[expected, arrived]``).

Apart from :mod:`.plans`, whose functions are the transactions the engine
runs, because every one of those that moves an execution on shares these
steps.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from json.encoder import encode_basestring
from typing import Any

from agent_node.store import snapshots
from agent_node.store.patches import StatePatch, dumps
from agent_node.store.records import WaitRecord, WorkItem
from agent_node.store.txn import Txn
from agent_node.workflow.compiled import CompiledWorkflow

from .delegation_rows import cancel_delegation, delegation_of, update_delegation
from .executor import Advance, Finish, Fork, Outcome, Park, Restart

__all__ = [
    "Cursor",
    "Lease",
    "apply_outcome",
    "change_state",
    "drop_everything",
    "dumps",
    "enqueue",
    "finish",
    "unstrand",
]


@dataclass(frozen=True, slots=True)
class Lease:
    """Lease new ready visits to ``owner`` (the worker continues with them)."""

    owner: str
    until: float


@dataclass(slots=True)
class Cursor:
    """The column ``cursor`` (see the module doc): visits per node, open joins."""

    visits: dict[str, int] = field(default_factory=dict)
    joins: dict[str, list[int]] = field(default_factory=dict)
    #: The text of :attr:`visits` (``{"v":{…}}``, no joins) as loaded or last
    #: dumped, while the only change since is nodes visited for the first
    #: time (:attr:`added`): the next text is that one with them appended —
    #: a sequence of N nodes dumped N visit counts at every step (42 µs at
    #: 200). Empty when unknown.
    base: str = field(default="", repr=False, compare=False)
    added: list[str] = field(default_factory=list, repr=False, compare=False)

    @classmethod
    def load(cls, text: str, execution_id: str = "") -> Cursor:
        """The cursor ``text`` says (of ``execution_id``: kept parsed, maybe)."""
        known = _KEPT.pop((execution_id, text), None)
        if known is not None:
            return known
        raw = json.loads(text) if text else {}
        return cls(raw.get("v", {}), raw.get("j", {}), text if _spliceable(text, raw) else "")

    def visit(self, node: str) -> int:
        """Count a new visit of ``node``; its number."""
        visit = self.visits.get(node, 0) + 1
        self.visits[node] = visit
        if visit == 1 and self.base:
            self.added.append(node)
        else:
            self.base = ""
        return visit

    def dump(self, *, keep: str = "") -> str:
        """The column's text; ``keep``: the id of an execution that goes on
        at once (its next node leased to this worker), whose next load will
        be of this text — kept parsed until then."""
        if self.joins:
            text = dumps({"v": self.visits, "j": self.joins})
        elif self.base:
            text = _spliced(self.base, self.added)
        else:
            text = dumps({"v": self.visits})
        self.base, self.added = ("" if self.joins else text), []
        if keep:
            if len(_KEPT) >= _KEEP_AT_MOST:  # a worker fenced out never loads its own
                del _KEPT[next(iter(_KEPT))]
            joins = {j: list(n) for j, n in self.joins.items()}
            _KEPT[keep, text] = Cursor(dict(self.visits), joins, self.base)
        return text


def _spliceable(text: str, raw: Any) -> bool:
    """Whether ``text`` (parsed: ``raw``) is visits alone, as
    :func:`_spliced` extends them."""
    return (
        isinstance(raw, dict)
        and len(raw) == 1
        and isinstance(raw.get("v"), dict)
        and text.startswith('{"v":{')
        and text.endswith("}}")
    )


def _spliced(base: str, added: list[str]) -> str:
    """``base`` (:func:`_spliceable`) with ``added`` nodes' first visits."""
    if not added:
        return base
    items = ",".join(f"{encode_basestring(node)}:1" for node in added)
    if base == '{"v":{}}':
        return f'{{"v":{{{items}}}}}'
    return f"{base[:-2]},{items}}}}}"


#: The cursors of executions going on at once, by execution and the text
#: their last step dumped: their next step loads that text, and a copy of a
#: dict made then is cheaper than parsing it again (a workflow of 200 nodes
#: keeps 200 visit counts; parsing them cost a tenth of a step). By
#: execution, as executions at the same point share a text. Taken out on
#: load, so it holds about one per execution in flight; nothing for one
#: that parks or ends. Plans run on the event loop and on the SQLite
#: writer's thread: each operation on the dict is atomic, and a miss only
#: parses.
_KEPT: dict[tuple[str, str], Cursor] = {}
_KEEP_AT_MOST = 1024


def apply_outcome(
    txn: Txn,
    workflow: CompiledWorkflow,
    cursor: Cursor,
    node: str,
    visit: int,
    outcome: Outcome,
    info: dict[str, Any],
    lease: Lease | None,
) -> list[WorkItem]:
    """Log the visit's ``outcome`` and move the execution on by it; returns
    the visits leased to ``lease``."""
    if isinstance(outcome, Advance):
        info["next"] = outcome.next
        if outcome.output is not None:
            info["output"] = outcome.output
        if outcome.usage:
            info["usage"] = dict(outcome.usage)
        _completed(txn, node, visit, info)
        return _goto(txn, workflow, cursor, outcome.next, lease)
    if isinstance(outcome, Fork):
        info["next"] = list(outcome.branches)
        _completed(txn, node, visit, info)
        cursor.joins[outcome.join] = [len(outcome.branches), 0]
        return enqueue(txn, cursor, list(outcome.branches), lease)
    if isinstance(outcome, Park):
        _park(txn, cursor, node, visit, outcome)
        return []
    if isinstance(outcome, Restart):
        return _restart(txn, workflow, cursor, (node, visit), outcome, info, lease)
    info["next"] = None
    if outcome.status == "failed" and outcome.output is not None:
        info["output"] = outcome.output  # why it failed (a completion's output is the result's)
    if outcome.usage:
        info["usage"] = dict(outcome.usage)
    _completed(txn, node, visit, info)
    finish(txn, outcome)
    return []


def _completed(txn: Txn, node: str, visit: int, info: dict[str, Any]) -> None:
    """The visit's ``node_completed``, its run time carried to the commit's
    observers when that is all they count of it (no model usage: see
    :attr:`~agent_node.store.records.EventRecord.duration`)."""
    took = None if "usage" in info else info.get("duration")
    txn.event("node_completed", node, visit, data=dumps(info), duration=took)


def _restart(
    txn: Txn,
    workflow: CompiledWorkflow,
    cursor: Cursor,
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
    _completed(txn, *at, info)
    drop_everything(txn)
    state = dumps(outcome.state.model_dump(mode="json"))
    restarted = txn.event("execution_restarted", data=f'{{"input":{state}}}')
    txn.log_from = restarted.seq
    snapshots.restart(txn, state, restarted.seq)
    cursor.joins.clear()
    return enqueue(txn, cursor, [workflow.ir.start], lease)


def _goto(
    txn: Txn, workflow: CompiledWorkflow, cursor: Cursor, target: str | None, lease: Lease | None
) -> list[WorkItem]:
    if target is None:
        _settle(txn, cursor)
        return []
    if workflow.node(target).type == "join":
        expected, arrived = cursor.joins.get(target, [1, 0])
        if arrived + 1 < expected:
            cursor.joins[target] = [expected, arrived + 1]
            _settle(txn, cursor)  # this path waits at the join: the others go on
            return []
        cursor.joins.pop(target, None)
    return enqueue(txn, cursor, [target], lease)


def enqueue(txn: Txn, cursor: Cursor, nodes: list[str], lease: Lease | None) -> list[WorkItem]:
    """Make a new visit of each of ``nodes`` ready (leased to ``lease`` and
    started, when given); returns the leased ones."""
    record = txn.execution
    leased: list[WorkItem] = []
    for node in nodes:
        visit = cursor.visit(node)
        if lease is None:
            txn.put_work(WorkItem(record.id, node, visit, 0, txn.now, None, None, 0))
            continue
        item = WorkItem(record.id, node, visit, 1, txn.now, lease.owner, lease.until, 1)
        txn.put_work(item)
        txn.event("node_started", node, visit, 1)
        leased.append(item)
    record.status = "running"
    return leased


def _park(txn: Txn, cursor: Cursor, node: str, visit: int, park: Park) -> None:
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
        update_delegation(txn, row)
    txn.event("wait_started", node, visit, data=dumps(info))
    txn.put_wait(WaitRecord(record.id, node, visit, park.kind, park.event, park.deadline))
    _settle(txn, cursor)


def _settle(txn: Txn, cursor: Cursor) -> None:
    """After a path ended, parked or arrived at a join that waits for more:
    running, waiting, completed — or failed, when a join still waits for
    branches and nothing is left that could bring them (a branch that
    stopped short of it: the compiler refuses such a workflow, but one
    compiled before it did may still run). Without that, the execution
    would stay "waiting" for nothing, for ever."""
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
    if cursor.joins:
        finish(txn, Finish("failed", error=_starved(cursor.joins)))
        return
    finish(txn, Finish("completed"))


def unstrand(txn: Txn, cursor: Cursor) -> None:
    """Move on an execution that an older release left with nothing to
    run or wait for (:mod:`.stranded`): its joins whose branches have all
    arrived go on; without one, it settles as its last path would have
    today (:func:`_settle`: failed, naming the joins that can never fire)."""
    ready = [join for join, (expected, arrived) in cursor.joins.items() if arrived >= expected]
    for join in ready:
        del cursor.joins[join]
    if ready:
        enqueue(txn, cursor, ready, None)
        return
    _settle(txn, cursor)


def _starved(joins: dict[str, list[int]]) -> str:
    """Why the execution cannot go on: the joins that can never fire."""
    said = "; ".join(
        f"join {join!r} can never fire: {arrived} of its {expected} branch(es) arrived"
        for join, (expected, arrived) in joins.items()
    )
    return f"{said}, and no other branch is running or waiting (a branch stopped before its join)"


def finish(txn: Txn, finish: Finish) -> None:
    """End the execution: drop its work and waits, log how it ended."""
    record = txn.execution
    drop_everything(txn)
    if finish.status == "completed":
        data = dumps({"output": finish.output}) if finish.output is not None else None
        txn.event("execution_completed", data=data)
        record.status = "completed"
    else:
        txn.event("execution_failed", data=dumps({"error": finish.error}))
        record.status = "failed"
        record.error = finish.error
    txn.notify("status")


def drop_everything(txn: Txn) -> None:
    """Delete the execution's work and waits; its delegations are to be canceled."""
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
        held = delegation_of(txn, node, visit)
        if held is not None:
            cancel_delegation(txn, held)


def change_state(txn: Txn, node: str, visit: int, patch: StatePatch) -> None:
    """The state changes by ``patch``, logged in the visit's ``node_completed``
    event of this transaction (the store keeps the state: :mod:`~agent_node.store.snapshots`)."""
    for event in reversed(txn.events):
        if event.kind == "node_completed" and (event.node, event.visit) == (node, visit):
            txn.change_state(patch, event.seq, len(event.data or ""))
            return
    raise RuntimeError(f"a change to the state without the node_completed of {node}/{visit}")

"""``GET /ops/executions/{id}``: one execution as a person looks at it.

Everything is folded from the durable log, read once, plus the execution's
live rows (work, waits, delegations):

* ``timeline``: each node attempt (node, visit, attempt, status, start,
  duration, tokens and cost of its model calls, the peer it delegated to);
* ``graph``: the workflow's nodes and edges (:mod:`.ops_graph`), with
  ``visited`` (nodes started at least once) and ``current`` (the work and
  wait rows: what runs or is parked now); None when this node cannot load
  the workflow;
* ``input`` and ``steps``: the state as the execution started, and for each
  node visit that changed it the keys it changed, before and after (a
  viewer folds them for the whole state at any point);
* ``errors``: failures only — each failed attempt with its error and, for
  a step's own code, its traceback; ``notes``: what else the log tells a
  person (messages, throttling, …: :mod:`.ops_log`); ``usage``: model
  calls, tokens and cost, per node and in total;
* ``delegations``: the peers' tasks (:mod:`.ops_delegations`);
* ``question``: what the execution asks of its caller, when it does (and
  when a peer asked it first, ``asked_by``: the peer, its task, and the
  endpoint and identity the delegation reached it at, where known);
* ``skill``: the skill it was started for — the one its first message
  named, else the only skill of this node that runs its workflow; left out
  when neither tells.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from agent_node.results import RUN_STARTS, Event, NodeRun, build_timeline, to_event
from agent_node.runtime import Runtime
from agent_node.store import ExecutionRecord, WaitRecord
from agent_node.store.patches import apply_patch, patch_of
from agent_node.store.records import DelegationRecord
from agent_node.workflow.compiled import CompiledWorkflow

from .ops_delegations import delegations_of
from .ops_edge import summary
from .ops_graph import workflow_graph
from .ops_log import errors_of, notes_of
from .taskview import MESSAGE_EVENT

__all__ = ["execution_view", "question_of"]

log = logging.getLogger(__name__)

#: Wait kinds that ask the execution's caller (A2A INPUT_REQUIRED / AUTH_REQUIRED).
ASKING = ("input", "auth")


async def execution_view(
    runtime: Runtime, record: ExecutionRecord, skills: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The view of the module doc; ``skills``: which workflow each of the
    node's skills runs (None: not known)."""
    store = runtime.store
    events = [to_event(e) for e in await store.events(record.id)]
    work, waits = await store.work(record.id), await store.waits(record.id)
    runs = build_timeline(events)
    workflow = _workflow(runtime, record)
    # The input of the run: the first, or the last continued as new.
    started = next((e for e in events if e.kind in RUN_STARTS), None)
    initial = (started.data or {}).get("input") if started is not None else None
    skill = _skill(events, record, skills)
    rows = await store.delegations(record.id)
    return {
        **summary(record),
        **({"skill": skill} if skill is not None else {}),
        "state": json.loads(record.state),
        "timeline": [_run(run) for run in runs],
        "graph": workflow_graph(workflow) if workflow is not None else None,
        "visited": sorted({e.node for e in events if e.kind == "node_started" and e.node}),
        "current": {
            "work": [
                {
                    "node": w.node,
                    "visit": w.visit,
                    "attempt": w.attempt,
                    "available_at": w.available_at,
                    "leased": w.lease_owner is not None,
                    "lease_expires_at": w.lease_expires_at,
                }
                for w in work
            ],
            "waits": [_wait(w) for w in waits],
        },
        "input": initial if isinstance(initial, dict) else None,
        "steps": _steps(initial, events),
        "errors": errors_of(events),
        "notes": notes_of(events),
        "usage": _usage(runs),
        "delegations": delegations_of(events, rows, workflow),
        "question": question_of(events, waits, rows),
        "events": len(events),
    }


def question_of(
    events: Sequence[Event],
    waits: Sequence[WaitRecord],
    delegations: Sequence[DelegationRecord] = (),
) -> dict[str, Any] | None:
    """What the execution asks its caller: the asking wait's prompt (its last
    ``wait_started``), or None when it asks nothing. A question a peer asked
    first (``asked_by``) also names where the delegation reached the peer and
    who its certificate said it is, from the visit's row of ``delegations``
    (a viewer tells by them which node asked, even one down since)."""
    asking = next((w for w in waits if w.kind == "auth"), None)
    asking = asking or next((w for w in waits if w.kind == "input"), None)
    if asking is None:
        return None
    default = "Authorization required." if asking.kind == "auth" else "Input required."
    for event in reversed(events):
        if event.kind == "wait_started" and (event.node, event.visit) == (
            asking.node,
            asking.visit,
        ):
            data = event.data or {}
            return {
                "kind": asking.kind,
                "node": asking.node,
                "visit": asking.visit,
                "text": str(data.get("prompt") or default),
                "asked_at": event.at,
                "asked_by": _asker(data.get("asked_by"), asking, delegations),
            }
    return {"kind": asking.kind, "node": asking.node, "visit": asking.visit, "text": default}


def _asker(
    asked_by: Any, wait: WaitRecord, delegations: Sequence[DelegationRecord]
) -> dict[str, Any] | None:
    """``asked_by`` with the endpoint and identity of the wait's delegation."""
    if not isinstance(asked_by, dict):
        return None
    row = next((d for d in delegations if (d.node, d.visit) == (wait.node, wait.visit)), None)
    where = {"endpoint": row.endpoint, "identity": row.identity} if row is not None else {}
    return {**asked_by, **{key: value for key, value in where.items() if value}}


def _workflow(runtime: Runtime, record: ExecutionRecord) -> CompiledWorkflow | None:
    try:
        return runtime.workflows.get(
            record.workflow_id, record.workflow_version, record.workflow_ref
        )
    except Exception as exc:  # a workflow file that no longer loads: the rest still holds
        log.info("no graph of %s: %s", record.workflow_id, exc)
        return None


def _skill(
    events: Sequence[Event], record: ExecutionRecord, skills: Mapping[str, str] | None
) -> str | None:
    """The skill the execution was started for (None: nothing tells)."""
    first = next((e for e in events if e.kind == MESSAGE_EVENT), None)
    metadata = (first.data or {}).get("metadata") if first is not None else None
    named = metadata.get("skill") if isinstance(metadata, dict) else None
    if isinstance(named, str) and (skills is None or skills.get(named) == record.workflow_id):
        return named
    running = [
        skill for skill, workflow in (skills or {}).items() if workflow == record.workflow_id
    ]
    return running[0] if len(running) == 1 else None


def _run(run: NodeRun) -> dict[str, Any]:
    usage = run.extra.get("usage")
    sent = run.extra.get("delegation")
    return {
        "node": run.node,
        "visit": run.visit,
        "attempt": run.attempt,
        "status": run.status,
        "started_at": run.started_at,
        "duration": run.duration,
        "detail": run.detail,
        "usage": usage if isinstance(usage, dict) else None,
        "peer": sent if isinstance(sent, dict) else None,
    }


def _wait(wait: WaitRecord) -> dict[str, Any]:
    return {
        "node": wait.node,
        "visit": wait.visit,
        "kind": wait.kind,
        "event": wait.event,
        "deadline": wait.deadline,
    }


def _steps(initial: Any, events: Sequence[Event]) -> list[dict[str, Any]]:
    """Each state change: the keys a node visit changed, before and after
    (a key a patch appended to shows whole, as it became)."""
    state: dict[str, Any] = dict(initial) if isinstance(initial, dict) else {}
    steps = []
    for event in events:
        patch = patch_of(event.data or {}) if event.kind == "node_completed" else None
        if not patch:
            continue
        keys = [*patch.set, *patch.append, *patch.remove]
        before = {key: state.get(key) for key in keys}
        apply_patch(state, patch)
        steps.append(
            {
                "node": event.node,
                "visit": event.visit,
                "seq": event.seq,
                "at": event.at,
                "before": before,
                "after": {key: state.get(key) for key in keys},
            }
        )
    return steps


def _usage(runs: Sequence[NodeRun]) -> dict[str, Any]:
    """Model calls, tokens and cost per node, and in total (cost None: unpriced)."""
    by_node: dict[str, dict[str, Any]] = {}
    for run in runs:
        usage = run.extra.get("usage")
        if not isinstance(usage, dict) or not usage.get("calls"):
            continue
        into = by_node.setdefault(run.node, {"calls": 0, "tokens": 0, "cost": None})
        _add(into, usage)
    total: dict[str, Any] = {"calls": 0, "tokens": 0, "cost": None}
    for usage in by_node.values():
        _add(total, {**usage, "total_tokens": usage["tokens"]})
    return {"by_node": by_node, "total": total}


def _add(into: dict[str, Any], usage: dict[str, Any]) -> None:
    into["calls"] += int(usage.get("calls") or 0)
    into["tokens"] += int(usage.get("total_tokens") or 0)
    if usage.get("cost") is not None:
        into["cost"] = (into["cost"] or 0.0) + float(usage["cost"])

"""An execution's delegations, as a view of the cross-agent tree needs them.

Each delegate node visit that handed work to a peer is one entry: the peer
(its configured name), the interface URL the task went to (``endpoint``,
whose origin tells a viewer which node it is), the peer's task id, when it
was sent and resolved and the round trip between, how the peer's task
ended, and the questions the peer asked on the way. The durable log
(``wait_started``, ``delegation_sent``, ``delegation_answered``,
``wait_resolved``) gives the history; the live ``delegations`` rows add
what is happening now (``sending``, ``asked``, …, and why the last attempt
to reach the peer failed), also for a delegation the peer has not taken
yet (no ``delegation_sent`` so far). While the watchdog is trying (a send,
a poll, a relay, a cancel under way) ``live.claimed_at`` says since when
and ``live.next_poll_at`` is null: the row's own is then the claim's
expiry, not a next try (before: shown as one, minutes ahead).

``cancel_given_up`` (null unless it happened; ``delegation_cancel_given_up``
in the log): the cancel of the peer's task was given up — tried for about
ten minutes, or refused — so the peer's task may still be running: when
(``at``), what was tried (``tried``: ``CancelTask``, or ``ListTasks`` to
find a task whose id a lost answer never told), how often (``tries``),
the last error, and whether the peer refused it (``refused``).

``skill`` is the skill the delegation asked the peer for: the one its wait
named (a peer found by skill), else its request's, else its node's in the
workflow. ``identity`` is the one the peer's certificate named. Either is
left out where nothing tells it (a delegation by peer name alone, a peer
on plain HTTP), never shown as null.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from agent_node.results import Event
from agent_node.store.records import DelegationRecord
from agent_node.workflow.compiled import CompiledWorkflow

__all__ = ["delegations_of"]


def delegations_of(
    events: Sequence[Event],
    rows: Sequence[DelegationRecord],
    workflow: CompiledWorkflow | None = None,
) -> list[dict[str, Any]]:
    """Every delegation of the execution, in the order they were started
    (``workflow``: the execution's, for the skills its nodes ask for)."""
    found: dict[tuple[str, int], dict[str, Any]] = {}
    for event in events:
        if event.node is None or event.visit is None:
            continue
        key = (event.node, event.visit)
        data = event.data or {}
        entry = found.get(key)
        if event.kind == "wait_started" and data.get("kind") == "delegation" and entry is None:
            found[key] = entry = _entry(event.node, event.visit, event.at)
            entry["peer"] = data.get("peer")
            entry["skill"] = data.get("skill")
        if entry is None:
            continue
        _apply(entry, event, data)
    for row in rows:
        entry = found.setdefault((row.node, row.visit), _entry(row.node, row.visit, row.sent_at))
        entry["live"] = _live(row)
        entry["peer"] = entry["peer"] or row.peer or None
        entry["task_id"] = entry["task_id"] or row.remote_task_id or None
        entry["endpoint"] = entry["endpoint"] or row.endpoint or None
        entry["version"] = entry["version"] or row.version or None
        entry["identity"] = entry["identity"] or row.identity or None
        entry["skill"] = entry["skill"] or _requested_skill(row)
    for entry in found.values():
        entry["skill"] = entry["skill"] or _node_skill(workflow, entry["node"])
        for field in _UNLESS_KNOWN:
            if entry[field] is None:
                del entry[field]
    return sorted(found.values(), key=lambda d: (d["sent_at"], d["node"], d["visit"]))


#: Fields left out of an entry where nothing tells them.
_UNLESS_KNOWN = ("skill", "identity")


def _requested_skill(row: DelegationRecord) -> str | None:
    try:
        skill = json.loads(row.request).get("skill") if row.request else None
    except (ValueError, AttributeError):
        return None
    return skill if isinstance(skill, str) and skill else None


def _node_skill(workflow: CompiledWorkflow | None, node: str) -> str | None:
    spec = workflow.ir.nodes.get(node) if workflow is not None else None
    skill = getattr(spec, "skill", None) if spec is not None and spec.type == "delegate" else None
    return skill if isinstance(skill, str) and skill else None


def _entry(node: str, visit: int, at: float) -> dict[str, Any]:
    return {
        "node": node,
        "visit": visit,
        "peer": None,
        "skill": None,
        "task_id": None,
        "endpoint": None,
        "version": None,
        "identity": None,
        "sent_at": at,
        "taken_at": None,
        "resolved_at": None,
        "round_trip": None,
        "outcome": None,
        "via": None,
        "questions": [],
        "answers": 0,
        "live": None,
        "cancel_given_up": None,
    }


def _apply(entry: dict[str, Any], event: Event, data: dict[str, Any]) -> None:
    if event.kind == "delegation_sent":
        for key in ("peer", "endpoint", "version", "identity"):
            entry[key] = data.get(key) or entry[key]
        entry["task_id"] = data.get("task_id") or entry["task_id"]
        entry["taken_at"] = event.at
    elif event.kind == "wait_started" and data.get("prompt"):
        entry["questions"].append(
            {"at": event.at, "text": data["prompt"], "kind": data.get("kind")}
        )
    elif event.kind == "delegation_answered":
        entry["answers"] += 1
    elif event.kind == "delegation_cancel_given_up":
        entry["peer"] = entry["peer"] or data.get("peer")
        entry["task_id"] = entry["task_id"] or data.get("task_id")
        given_up = {key: data.get(key) for key in ("tried", "tries", "error", "refused")}
        entry["cancel_given_up"] = {"at": event.at, **given_up}
    elif event.kind == "wait_resolved" and not _answered(entry, data):
        payload = data.get("payload")
        task = payload.get("task") if isinstance(payload, dict) else None
        status = task.get("status") if isinstance(task, dict) else None
        state = status.get("state") if isinstance(status, dict) else None
        if state in _ASKING:
            return  # the peer asks: its question follows, the visit goes on
        entry["resolved_at"] = event.at
        entry["round_trip"] = round(event.at - entry["sent_at"], 6)
        if data.get("expired"):
            entry["outcome"] = "timed out"
        elif isinstance(state, str):
            entry["outcome"] = state.removeprefix("TASK_STATE_").lower()
        entry["via"] = payload.get("via") if isinstance(payload, dict) else None


#: A peer's task states that ask (news of them parks the visit on our caller).
_ASKING = frozenset({"TASK_STATE_INPUT_REQUIRED", "TASK_STATE_AUTH_REQUIRED"})


def _answered(entry: dict[str, Any], data: dict[str, Any]) -> bool:
    """Whether a resolution is our caller's answer to a question (the visit
    then waits on the peer again), not the peer's task ending."""
    return data.get("event") == "input" and bool(entry["questions"])


def _live(row: DelegationRecord) -> dict[str, Any]:
    question = None
    if row.question:
        try:
            question = json.loads(row.question).get("text")
        except (ValueError, AttributeError):
            question = None
    return {
        "state": row.state,
        "turn": row.turn,
        "question": question,
        "last_error": row.last_error,
        "next_poll_at": row.next_poll_at if row.claimed_at is None else None,
        "claimed_at": row.claimed_at,
        "polls": row.polls,
    }

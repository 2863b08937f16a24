"""What a run returns: the final state, the event log, and a per-node timeline."""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Generic

from agent_node.store.records import EventRecord
from agent_node.workflow.compiled import StateT

__all__ = ["RUN_STARTS", "Event", "NodeRun", "RunResult", "build_timeline", "to_event"]

#: The events that hold the input a run started with: an execution's first,
#: and each continuing it as new (the log before that one is gone).
RUN_STARTS = frozenset({"execution_started", "execution_restarted"})


@dataclass(frozen=True, slots=True)
class Event:
    """One entry of an execution's log."""

    seq: int
    kind: str
    node: str | None
    visit: int | None
    attempt: int | None
    at: float
    data: dict[str, Any] | None

    def as_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "kind": self.kind,
            "node": self.node,
            "visit": self.visit,
            "attempt": self.attempt,
            "at": self.at,
            "data": self.data,
        }


def to_event(record: EventRecord) -> Event:
    data = json.loads(record.data) if record.data else None
    return Event(
        record.seq, record.kind, record.node, record.visit, record.attempt, record.at, data
    )


@dataclass(slots=True)
class NodeRun:
    """One attempt of one node visit, as the timeline shows it.

    ``status``: completed · failed · retrying (failed, retry scheduled) ·
    waiting · interrupted (its worker died and a later attempt took over, or
    the execution ended elsewhere) · canceled · running.
    """

    node: str
    visit: int
    attempt: int
    status: str
    started_at: float
    ended_at: float | None = None
    detail: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def duration(self) -> float | None:
        return None if self.ended_at is None else self.ended_at - self.started_at


def build_timeline(events: list[Event]) -> list[NodeRun]:
    """Fold the log into node attempts, in the order they started."""
    runs: list[NodeRun] = []
    open_runs: dict[tuple[str, int], NodeRun] = {}
    for event in events:
        if event.kind in _ENDS_EXECUTION:
            for run in open_runs.values():
                run.status = _ENDS_EXECUTION[event.kind]
                run.ended_at = event.at
            open_runs.clear()
            continue
        if event.node is None or event.visit is None:
            continue
        key = (event.node, event.visit)
        current = open_runs.get(key)
        if event.kind == "node_started":
            if current is not None:
                current.status = "interrupted"
            run = NodeRun(event.node, event.visit, event.attempt or 1, "running", event.at)
            runs.append(run)
            open_runs[key] = run
        elif current is not None:
            _close(current, event)
            if current.status in {"completed", "failed", "retrying", "throttled"}:
                del open_runs[key]
    return runs


#: What an execution-level end makes of attempts still open.
_ENDS_EXECUTION = {
    "execution_canceled": "canceled",
    "execution_failed": "interrupted",
    "execution_completed": "interrupted",
}


def _close(run: NodeRun, event: Event) -> None:
    data = event.data or {}
    if event.kind == "node_failed" and "usage" in data:
        run.extra["usage"] = data["usage"]  # the calls of a failed attempt cost all the same
    if event.kind == "node_completed":
        run.status, run.ended_at = "completed", event.at
        run.extra.update({k: v for k, v in data.items() if k in {"next", "output", "usage"}})
    elif event.kind == "node_failed" and data.get("throttled"):  # parked, no attempt used
        run.status, run.ended_at = "throttled", event.at
        run.detail = f"again in {data.get('wait')} s: {data.get('error')}"
    elif event.kind == "node_failed":
        run.status = "retrying" if data.get("retry_at") else "failed"
        run.ended_at, run.detail = event.at, data.get("error")
    elif event.kind == "node_queued":  # a model backend's slot, not free yet
        across = ", across the store's processes" if data.get("shared") else ""
        run.status = "waiting"
        run.detail = f"for a slot of {data.get('backend')} ({data.get('limit')} at once{across})"
    elif event.kind == "node_dequeued":
        run.status, run.detail = "running", f"waited {data.get('waited')} s for a slot"
    elif event.kind == "delegation_sent":  # the peer took the task the wait handed it
        run.extra["delegation"] = {k: data.get(k) for k in ("peer", "task_id", "version")}
        if data.get("auth"):  # the scheme presented besides our certificate
            run.extra["delegation"]["auth"] = data["auth"]
        if run.status == "waiting":
            run.detail = _waiting(run, {})
    elif event.kind == "wait_started":
        run.status = "waiting"
        run.detail = _waiting(run, data)
        run.extra.setdefault("waited_at", event.at)
    elif event.kind == "wait_resolved":
        run.status = "running"
        if data.get("expired"):
            run.detail = "timer fired" if run.detail == "timer" else "timed out"
        else:
            run.detail = _resolved(run, data, event.at)


def _waiting(run: NodeRun, data: dict[str, Any]) -> str | None:
    sent = run.extra.get("delegation")
    if sent:
        auth = f", {sent['auth']}" if sent.get("auth") else ""
        return f"delegated to {sent['peer']} (task {sent['task_id']}, A2A {sent['version']}{auth})"
    if data.get("kind") == "delegation":  # recorded; not taken by the peer yet
        target = data.get("peer") or data.get("skill") or data.get("tag")
        return f"sending to {target}"
    prompt = data.get("prompt")
    if prompt and data.get("kind") == "auth":
        return f"asks for authorization: {prompt}"
    return f"asks: {prompt}" if prompt else data.get("event") or data.get("kind")


def _resolved(run: NodeRun, data: dict[str, Any], at: float) -> str:
    """``got 'event'``; for a delegation: the peer, its task, how it ended and
    the round trip from sending to learning it."""
    sent = run.extra.get("delegation")
    payload = data.get("payload")
    if not sent or not isinstance(payload, dict):
        return f"got {data.get('event')!r}"
    task = payload.get("task") or {}
    state = str((task.get("status") or {}).get("state", "")).removeprefix("TASK_STATE_")
    rtt = (at - float(run.extra.get("waited_at", at))) * 1000
    via = payload.get("via", "?")
    return f"{sent['peer']} task {sent['task_id']}: {state.lower()}, {rtt:.0f} ms (via {via})"


@dataclass(frozen=True)
class RunResult(Generic[StateT]):
    """The outcome of ``Workflow.run``: terminal, or parked on an event.
    ``state`` is an instance of the workflow's state model (``StateT`` to a
    type checker, see :class:`~agent_node.sdk.Workflow`)."""

    execution_id: str
    status: str
    state: StateT
    error: str | None
    #: The log as the store keeps it: :attr:`events` parses it when first
    #: read (a caller who only wants the state pays nothing for it).
    log: Sequence[EventRecord] = field(repr=False, compare=False)
    output: Any = None

    @functools.cached_property
    def events(self) -> list[Event]:
        """The execution's log, each entry's data parsed."""
        return [to_event(record) for record in self.log]

    @property
    def timeline(self) -> list[NodeRun]:
        return build_timeline(self.events)

    @property
    def ok(self) -> bool:
        return self.status == "completed"

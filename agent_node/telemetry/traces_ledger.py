"""What a node's commits tell about its spans, kept in memory between them.

The commit observer feeds :class:`Ledger` each commit's events. It keeps,
per execution, the visits still open: when each first started, its failed
attempts, its waits and what its delegation was sent — dict work only, so
the observer stays cheap — and hands back what ended:

* :data:`Plain` when a visit that ran once, its one attempt started here,
  completes — most visits: a tuple, no object made for it (a visit is kept
  as its start time alone until something else happens to it);
* :class:`VisitEnd` when any other visit's ``node_completed`` (or its last
  ``node_failed``) commits, with its recorded first start;
* :class:`ExecutionEnd` when the execution's ``execution_completed``,
  ``failed`` or ``canceled`` commits; the visits still open then end with it
  (``canceled``, or ``abandoned`` when the execution ended without them).

Memory is not the record, the log is. A visit is *whole* when this process
saw its first attempt start and every attempt since; one that is not (the
process restarted after a crash, another replica ran part of it, or its
execution was forgotten to bound memory) is not guessed at: the ledger asks
for a :class:`Replay` — the execution's log read back from the store and
run through the same rules (:func:`replayed`). So a resumed execution's
spans carry the starts the log recorded, once each: a span is emitted by
the process that committed its end, and by no other.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from agent_node.store.records import EventRecord, ExecutionRecord
from agent_node.telemetry.traces_ids import Origin, origin_of

__all__ = [
    "KINDS",
    "MAX_RUNS",
    "ExecutionEnd",
    "Ledger",
    "Plain",
    "PlainWriter",
    "Replay",
    "Visit",
    "VisitEnd",
    "data_of",
    "replayed",
    "visit_end",
]

#: Executions followed at once: past this the oldest is forgotten (its open
#: visits are then read back from the store when they end).
MAX_RUNS = 10_000
_ENDS = {
    "execution_completed": "completed",
    "execution_failed": "failed",
    "execution_canceled": "canceled",
}
#: Events about a visit kept as span events (time, kind, data).
_NOTES = frozenset({"wait_started", "wait_resolved", "delegation_sent", "delegation_answered"})

Outcome = Literal["completed", "failed", "canceled", "abandoned"]
Key = tuple[str, int]


@dataclass(slots=True)
class Visit:
    """One node visit as far as it is known."""

    node: str
    visit: int
    #: When its first attempt started (None: not seen here).
    start: float | None = None
    #: The latest attempt seen starting.
    attempt: int = 0
    #: Every attempt of it was seen here, the first included.
    whole: bool = False
    #: Failed attempts: (time, attempt, the ``node_failed`` data as JSON);
    #: None when there were none (most visits: no list made for them).
    failures: list[tuple[float, int, str | None]] | None = None
    #: Waits and delegation news: (time, kind, data as JSON), or None.
    notes: list[tuple[float, str, str | None]] | None = None


@dataclass(slots=True)
class VisitEnd:
    execution: ExecutionRecord
    origin: Origin
    visit: Visit
    at: float
    outcome: Outcome
    #: The ending event's data (JSON): ``node_completed``'s or the last ``node_failed``'s.
    data: str | None


@dataclass(slots=True)
class ExecutionEnd:
    execution: ExecutionRecord
    origin: Origin
    at: float
    status: str
    data: str | None


#: A visit that completed after one attempt, all of it seen here:
#: (execution, origin, node, visit, first start, end, ``node_completed``'s data).
Plain = tuple[ExecutionRecord, Origin, str, int, float, float, str | None]
Ending = VisitEnd | ExecutionEnd | Plain
#: Writes a :data:`Plain` visit's span as it ends (given its fields but its
#: data); False when its spans are more than that one (it is then handed back).
PlainWriter = Callable[[ExecutionRecord, Origin, str, int, float, float], bool]


@dataclass(slots=True)
class Replay:
    """Visits of one execution to emit from its log: those of ``visits``
    when they end, and (``open_at_end``) those the execution's end cut short."""

    execution: ExecutionRecord
    origin: Origin
    visits: set[Key] = field(default_factory=set)
    open_at_end: bool = False


@dataclass(slots=True)
class _Run:
    """One execution followed from its commits."""

    origin: Origin | None
    whole: bool
    #: Open visits of one attempt, started here, nothing else known: their start.
    starts: dict[Key, float] = field(default_factory=dict)
    #: The other open visits.
    visits: dict[Key, Visit] = field(default_factory=dict)

    def visit_of(self, event: EventRecord) -> Visit:
        key = (event.node or "", event.visit or 0)
        found = self.visits.get(key)
        if found is None:
            start = self.starts.pop(key, None)
            found = self.visits[key] = (
                Visit(key[0], key[1]) if start is None else Visit(key[0], key[1], start, 1, True)
            )
        return found

    def open(self) -> list[Visit]:
        """Every visit still open."""
        plain = [Visit(key[0], key[1], at, 1, True) for key, at in self.starts.items()]
        return plain + list(self.visits.values())


@dataclass(slots=True)
class _Step:
    """What one event ended: a visit, or the execution (and its open visits)."""

    visit: Visit | None = None
    outcome: Outcome = "completed"
    status: str | None = None
    open: list[Visit] = field(default_factory=list)


def _started(run: _Run, event: EventRecord) -> _Step | None:
    attempt = event.attempt or 1
    key = (event.node or "", event.visit or 0)
    visit = run.visits.get(key)
    if visit is None:
        start = run.starts.pop(key, None)
        if start is not None:  # its one attempt seen here is followed by another
            visit = run.visits[key] = Visit(key[0], key[1], start, 1, True)
        elif attempt == 1:
            run.starts[key] = event.at
            return None
        else:
            visit = run.visits[key] = Visit(key[0], key[1], event.at, attempt, False)
    if attempt > visit.attempt + 1:
        visit.whole = False  # attempts ran elsewhere in between
    visit.attempt = max(visit.attempt, attempt)
    return None


def _failed(run: _Run, event: EventRecord) -> _Step | None:
    visit = run.visit_of(event)
    if visit.failures is None:
        visit.failures = []
    visit.failures.append((event.at, event.attempt or 0, event.data))
    if data_of(event.data).get("retry_at") is not None:
        return None
    del run.visits[(visit.node, visit.visit)]
    return _Step(visit, "failed")


def _completed(run: _Run, event: EventRecord) -> _Step | None:
    key = (event.node or "", event.visit or 0)
    visit = run.visits.pop(key, None)
    if visit is None:
        start = run.starts.pop(key, None)
        visit = Visit(key[0], key[1]) if start is None else Visit(key[0], key[1], start, 1, True)
    return _Step(visit)


def _noted(run: _Run, event: EventRecord) -> _Step | None:
    visit = run.visit_of(event)
    if visit.notes is None:
        visit.notes = []
    visit.notes.append((event.at, event.kind, event.data))
    return None


def _ended(run: _Run, event: EventRecord) -> _Step | None:
    return _Step(status=_ENDS[event.kind], open=run.open())


_RULES: dict[str, Callable[[_Run, EventRecord], _Step | None]] = {
    "node_started": _started,
    "node_failed": _failed,
    "node_completed": _completed,
    **dict.fromkeys(_NOTES, _noted),
    **dict.fromkeys(_ENDS, _ended),
}
#: The kinds of event that tell the ledger something (it passes over the others).
KINDS = frozenset(_RULES)


class Ledger:
    """The open visits of the executions this process commits for; ``plain``
    writes the span of each :data:`Plain` visit as it ends (without, they
    are handed back as the others are)."""

    def __init__(self, limit: int = MAX_RUNS, plain: PlainWriter | None = None) -> None:
        self._runs: dict[str, _Run] = {}
        self._limit = limit
        self._plain = plain

    def __len__(self) -> int:
        return len(self._runs)

    def adopt(self, execution: ExecutionRecord, origin: Origin, starts: dict[Key, float]) -> None:
        """Follow ``execution`` from its next events on, every one of its
        events so far seen here: ``starts`` are its visits open, each of
        one attempt, and when they started."""
        if len(self._runs) >= self._limit:
            del self._runs[next(iter(self._runs))]
        self._runs[execution.id] = _Run(origin, True, starts)

    def committed(
        self, execution: ExecutionRecord, events: Sequence[EventRecord]
    ) -> tuple[list[Ending], Replay | None]:
        """What ``events`` (one commit's) ended, and what to read back."""
        run = self._runs.get(execution.id)
        if run is None:
            started = events[0].kind == "execution_started" if events else False
            run = self._follow(execution, started)
        origin = run.origin
        if origin is None or not origin.sampled:
            if execution.status in ("completed", "failed", "canceled"):
                self._runs.pop(execution.id, None)
            return [], None
        endings: list[Ending] = []
        replay: Replay | None = None
        starts, visits, write = run.starts, run.visits, self._plain
        for event in events:
            kind = event.kind
            # The two kinds of every step, first: a visit starting, and
            # completing (once started here, its start is all there is to know).
            if kind == "node_started":
                key = (event.node or "", event.visit or 0)
                if (event.attempt or 1) == 1 and key not in visits and key not in starts:
                    starts[key] = event.at  # most: its one attempt (as _started has it)
                else:
                    _started(run, event)
                continue
            if kind == "node_completed":
                key = (event.node or "", event.visit or 0)
                start = starts.pop(key, None)
                if start is not None:
                    node, number, at = key[0], key[1], event.at
                    if write is None or not write(execution, origin, node, number, start, at):
                        endings.append((execution, origin, node, number, start, at, event.data))
                    continue
                visit = visits.pop(key, None)
                if visit is not None and visit.whole:
                    endings.append(
                        VisitEnd(execution, origin, visit, event.at, "completed", event.data)
                    )
                    continue
                step: _Step | None = _Step(visit or Visit(key[0], key[1]))
            elif kind in _ENDS and run.whole and not starts and not visits:
                # Most executions end so: nothing of theirs is left open.
                endings.append(ExecutionEnd(execution, origin, event.at, _ENDS[kind], event.data))
                self._runs.pop(execution.id, None)
                continue
            else:
                rule = _RULES.get(kind)
                step = rule(run, event) if rule is not None else None
            if step is not None:
                replay = self._settle(execution, origin, run, event, step, endings, replay)
        return endings, replay

    def _settle(
        self,
        execution: ExecutionRecord,
        origin: Origin,
        run: _Run,
        event: EventRecord,
        step: _Step,
        endings: list[Ending],
        replay: Replay | None,
    ) -> Replay | None:
        """``step``'s endings added to ``endings``; the read-back it asks for
        added to ``replay`` (made when there was none)."""
        if step.status is not None:
            endings.append(ExecutionEnd(execution, origin, event.at, step.status, event.data))
            if run.whole and all(v.whole for v in step.open):
                endings.extend(_cut_short(execution, origin, step, event.at))
            else:  # visits may be open that this process never saw start
                replay = replay or Replay(execution, origin)
                replay.open_at_end = True
            self._runs.pop(execution.id, None)
        elif step.visit is not None and step.visit.whole:
            ending = VisitEnd(execution, origin, step.visit, event.at, step.outcome, event.data)
            endings.append(ending)
        elif step.visit is not None:
            replay = replay or Replay(execution, origin)
            replay.visits.add((step.visit.node, step.visit.visit))
        return replay

    def _follow(self, execution: ExecutionRecord, started: bool) -> _Run:
        if len(self._runs) >= self._limit:
            del self._runs[next(iter(self._runs))]
        origin = origin_of(execution.metadata, execution.meta())
        run = self._runs[execution.id] = _Run(origin, started)
        return run


def visit_end(plain: Plain) -> VisitEnd:
    """A :data:`Plain` ending as the :class:`VisitEnd` it stands for."""
    execution, origin, node, visit, start, at, data = plain
    return VisitEnd(execution, origin, Visit(node, visit, start, 1, True), at, "completed", data)


def replayed(request: Replay, events: Sequence[EventRecord]) -> list[VisitEnd]:
    """The ends ``request`` asks for, from the execution's whole log."""
    run = _Run(request.origin, whole=True)
    found: list[VisitEnd] = []
    for event in events:
        rule = _RULES.get(event.kind)
        step = rule(run, event) if rule is not None else None
        if step is None:
            continue
        if step.status is not None and request.open_at_end:
            found.extend(_cut_short(request.execution, request.origin, step, event.at))
        elif step.visit is not None and (step.visit.node, step.visit.visit) in request.visits:
            found.append(
                VisitEnd(
                    request.execution,
                    request.origin,
                    step.visit,
                    event.at,
                    step.outcome,
                    event.data,
                )
            )
    return found


def _cut_short(
    execution: ExecutionRecord, origin: Origin, step: _Step, at: float
) -> list[VisitEnd]:
    """The visits still open when their execution ended, ended with it."""
    outcome: Outcome = "canceled" if step.status == "canceled" else "abandoned"
    return [VisitEnd(execution, origin, visit, at, outcome, None) for visit in step.open]


def data_of(text: str | None) -> dict[str, Any]:
    """An event's data as a dict (empty when it has none or is not an object)."""
    if not text:
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}

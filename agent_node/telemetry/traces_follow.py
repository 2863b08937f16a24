"""A node's commits followed into spans, the common commit in one pass.

Most commits of a traced execution are a step's: a visit completes and
the next one starts (an execution's first commit starts its first visit,
its last ends it). :class:`Follower` keeps, per execution, the one visit
open and when it started — one slot, no dict — and writes a
completed visit's span there and then from the parts its execution and its
node made once (:meth:`.traces_spans.SpanFactory.write_plain` writes the
same bytes). Anything else — a retry, a failure, a wait, a delegation, two
visits open at once, an execution first seen after its start — hands the
execution to the :class:`~.traces_ledger.Ledger` for the rest of its life,
with what was known of it: the ledger's rules decide, the follower only
spares the common case their cost (a span costs the event loop a few
microseconds, as much as the commit's own bookkeeping).

The store tells the follower a few commits at a time
(:mod:`agent_node.store.notify`), followed together in their order; a
step's commit — the visit open completing as its duration says, the next
one starting — takes the shortest way, and so do an execution's first
commit (it starts, its first visit too) and a last one that completes it
after a step: in workflows of a few steps, a third of the commits, and on
the general path its code, met cold, costs more than its bytecodes say.
Spans are handed to the batch processor in bundles (:data:`BUNDLE`), those
of the node's requests (:mod:`.traces_http`) among them.

With the node's metrics (:class:`Counts`), the same pass counts each commit
into them: a completed visit's run time — most of what a step's commit has
to count — into its node's series, found once and kept with its node's
parts; the rest as the metrics' own observer would. One pass instead of two
saves a step the metrics' walk over its events and a call of the store's
(~100 bytecodes of ~3,300 a sequential step runs).
"""

from __future__ import annotations

import asyncio
import logging
from bisect import bisect_left
from collections.abc import Callable, Sequence
from typing import Literal, Protocol

from agent_node.store.base import Commit
from agent_node.store.notify import call_later
from agent_node.store.records import TERMINAL, EventRecord, ExecutionRecord
from agent_node.telemetry.traces_ids import origin_of
from agent_node.telemetry.traces_ledger import (
    KINDS,
    MAX_RUNS,
    Ending,
    ExecutionEnd,
    Ledger,
    Replay,
    visit_end,
)
from agent_node.telemetry.traces_spans import Ids, NodeParts, SpanFactory, plain_span

__all__ = ["BUNDLE", "BUNDLE_WAIT", "Counts", "Follower"]

log = logging.getLogger(__name__)

#: Spans from commits handed to the batch processor together, at most (as
#: one item: :class:`~.traces_wire.Encoded` holds them written one after the
#: other; the processor's sizes are divided by it, see
#: :func:`.traces_pipeline.bundled_sizes`), and how long the first of them
#: waits for the others, at most (seconds).
BUNDLE, BUNDLE_WAIT = 16, 0.5
_ENDS = {
    "execution_completed": "completed",
    "execution_failed": "failed",
    "execution_canceled": "canceled",
}
#: An execution the ledger follows; one in no sampled trace.
_Other = Literal["ledger", "untraced"]


class Counts(Protocol):
    """Metrics counted from the commits followed (:class:`~.metrics.NodeMetrics`)."""

    #: The upper bounds of the buckets of a visit's run time.
    duration_bounds: tuple[float, ...]

    def committed(self, execution: ExecutionRecord, events: Sequence[EventRecord]) -> None:
        """Count ``events`` (of a commit of ``execution``)."""

    def completed_row(self, execution: ExecutionRecord, node: str) -> list[float]:
        """The series of ``node``'s completed visits: a count per bucket,
        +Inf's, then the sum."""


class _Uncounted:
    """No metrics: what would be counted is dropped (a node whose metrics
    are off, rarely; its visits' run times go into one scratch series)."""

    duration_bounds: tuple[float, ...] = (0.0,)

    def __init__(self) -> None:
        self._scratch = [0.0, 0.0, 0.0]

    def committed(self, execution: ExecutionRecord, events: Sequence[EventRecord]) -> None:
        pass

    def completed_row(self, execution: ExecutionRecord, node: str) -> list[float]:
        return self._scratch


class _Run(Ids):
    """An execution followed here: its ids and its open visit."""

    __slots__ = ("open",)
    #: The visit open (node, visit) and when it started; None: none is.
    open: tuple[str, int, float] | None


class Follower:
    """Follows commits (:meth:`committed`, a store's commit observer) into
    spans, handed to ``send`` in bundles; a read-back the ledger asks for
    goes to ``replay``."""

    def __init__(
        self,
        spans: SpanFactory,
        send: Callable[[bytes], None],
        replay: Callable[[Replay], None],
        limit: int = MAX_RUNS,
        counts: Counts | None = None,
    ) -> None:
        self._spans = spans
        self._send = send
        self._replay = replay
        self._limit = limit
        self._counts: Counts = counts or _Uncounted()
        self._bounds = self._counts.duration_bounds
        self.ledger = Ledger(limit, plain=spans.write_plain)
        self._runs: dict[str, _Run | _Other] = {}
        #: Spans written since the last hand-over.
        self._written = spans.written
        self._due: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        return len(self._runs)

    def committed(self, commits: Sequence[Commit]) -> None:
        """Follow what ``commits`` wrote, in their order (a store's commit
        observer: told a few at a time), then hand the spans over."""
        runs, written, bounds = self._runs, self._written, self._bounds
        for execution, events in commits:
            try:
                run = runs.get(execution.id)
                if len(events) == 2:  # most likely a step, or an execution's first or last
                    done, begun = events
                    if type(run) is _Run:
                        began = run.open
                        if (
                            began is not None
                            and done.kind == "node_completed"
                            and done.node == began[0]
                            and done.visit == began[1]
                            and (took := done.duration) is not None
                        ):
                            name, visit, start = began
                            node = run.nodes.get(name) or self._spans.node_parts(
                                execution, run, name
                            )
                            if node.plain and visit == 1:  # :meth:`_follow`'s commonest case
                                kind = begun.kind
                                if (
                                    kind == "node_started"
                                    and begun.attempt == 1
                                    and begun.node
                                    and begun.visit
                                ):
                                    run.open = (begun.node, begun.visit, begun.at)
                                elif kind != "execution_completed":
                                    self._follow(execution, events, run)
                                    continue
                                written.append(plain_span(node, run, start, done.at))
                                row = node.row or self._row(execution, name, node)
                                row[bisect_left(bounds, took)] += 1
                                row[-1] += took
                                if kind == "execution_completed":  # and its span
                                    self._ended(execution, run, begun)
                                continue
                    elif run is None and self._started(execution, events, done, begun):
                        continue
                elif (  # an A2A task's first commit: its message comes between
                    run is None
                    and len(events) == 3
                    and events[1].kind == "message_received"
                    and self._started(execution, events, events[0], events[2])
                ):
                    continue
                self._follow(execution, events, run)
            except Exception:  # a span lost is better than a commit's caller hurt
                log.exception("traces: the spans of %s could not be built", execution.id)
        self._flow()

    def _started(
        self,
        execution: ExecutionRecord,
        events: Sequence[EventRecord],
        done: EventRecord,
        begun: EventRecord,
    ) -> bool:
        """Follow an execution's first commit (``events``: ``done`` is its
        start, ``begun`` its first visit's, nothing between that the spans
        or the metrics read); False when ``events`` are not that."""
        if not (
            done.kind == "execution_started"
            and begun.kind == "node_started"
            and begun.attempt == 1
            and begun.node
            and begun.visit
        ):
            return False
        run = self._first(execution, events)
        if isinstance(run, str):
            self._other(run, execution, events)
            return True
        run.open = (begun.node, begun.visit, begun.at)
        self._counts.committed(execution, (done,))
        return True

    def _follow(
        self,
        execution: ExecutionRecord,
        events: Sequence[EventRecord],
        run: _Run | _Other | None,
    ) -> None:
        if run is None:
            run = self._first(execution, events)
        if isinstance(run, str):
            self._other(run, execution, events)
            return
        written, counts = self._written, self._counts
        for event in events:
            kind = event.kind
            if (
                kind == "node_completed"
                and (began := run.open) is not None
                and event.node == began[0]
                and event.visit == began[1]
            ):
                (name, visit, start), at = began, event.at
                node = run.nodes.get(name) or self._spans.node_parts(execution, run, name)
                run.open = None
                if node.plain and visit == 1:
                    written.append(plain_span(node, run, start, at))
                else:
                    plain = (execution, run.origin, name, visit, start, at, event.data)
                    self._emit([plain])
                if (took := event.duration) is not None:  # as the metrics count it
                    row = node.row or self._row(execution, name, node)
                    row[bisect_left(self._bounds, took)] += 1
                    row[-1] += took
                else:
                    counts.committed(execution, (event,))
            elif (
                kind == "node_started"
                and run.open is None
                and event.attempt == 1
                and event.node
                and event.visit
            ):
                run.open = (event.node, event.visit, event.at)
            elif kind in _ENDS and run.open is None:
                self._ended(execution, run, event)
            elif kind in KINDS:  # the others change nothing the spans say
                self._to_ledger(run, execution, events, event)
                break
            else:
                counts.committed(execution, (event,))

    def _ended(self, execution: ExecutionRecord, run: _Run, event: EventRecord) -> None:
        """``execution`` ended as ``event`` says, no visit open: its span."""
        written = self._spans.execution_span(
            execution, run, event.at, _ENDS[event.kind], event.data
        )
        self._written.append(written)
        del self._runs[execution.id]
        self._counts.committed(execution, (event,))

    def _first(self, execution: ExecutionRecord, events: Sequence[EventRecord]) -> _Run | _Other:
        """How ``execution``, seen for the first time, is followed."""
        runs = self._runs
        if len(runs) >= self._limit:
            del runs[next(iter(runs))]
        origin = origin_of(execution.metadata, execution.meta())
        if origin is None or not origin.sampled:
            found: _Run | _Other = "untraced"
        elif events and events[0].kind == "execution_started":  # whole from its start
            found = _Run(execution.id, origin, self._spans.nodes_of(execution))
            found.open = None
        else:  # begun elsewhere, or forgotten: the ledger reads its log back
            found = "ledger"
        runs[execution.id] = found
        return found

    def _row(self, execution: ExecutionRecord, name: str, node: NodeParts) -> list[float]:
        found = node.row = self._counts.completed_row(execution, name)
        return found

    def _other(
        self, run: _Other, execution: ExecutionRecord, events: Sequence[EventRecord]
    ) -> None:
        if run == "ledger":
            self._ledger_commit(execution, events)
        self._counts.committed(execution, events)
        if execution.status in TERMINAL:
            self._runs.pop(execution.id, None)

    def _to_ledger(
        self, run: _Run, execution: ExecutionRecord, events: Sequence[EventRecord], at: EventRecord
    ) -> None:
        """The ledger follows ``execution`` from ``events``' ``at`` on."""
        began = run.open
        starts = {(began[0], began[1]): began[2]} if began is not None else {}
        self.ledger.adopt(execution, run.origin, starts)
        self._runs[execution.id] = "ledger"
        rest = events[next(i for i, event in enumerate(events) if event is at) :]
        self._other("ledger", execution, rest)

    def _ledger_commit(self, execution: ExecutionRecord, events: Sequence[EventRecord]) -> None:
        endings, replay = self.ledger.committed(execution, events)
        if endings:
            self._emit(endings)
        if replay is not None:
            self._replay(replay)

    def add(self, span: bytes) -> None:
        """A span written elsewhere (a request's), handed over with the others."""
        self._written.append(span)
        self._flow()

    def emit(self, endings: Sequence[Ending]) -> None:
        """Write ``endings``' spans (a read-back's) and hand them over in time."""
        self._emit(endings)
        self._flow()

    def _flow(self) -> None:
        """Hand the spans written over in bundles, the rest soon."""
        written = self._written
        if len(written) >= BUNDLE:
            self._hand_over(len(written) - len(written) % BUNDLE)
        if written and self._due is None:
            self._later()

    def _emit(self, endings: Sequence[Ending]) -> None:
        spans, written = self._spans, self._written
        for ending in endings:
            if isinstance(ending, tuple):  # a visit that ran once, more than its span
                ending = visit_end(ending)
            elif isinstance(ending, ExecutionEnd):
                written.append(spans.execution(ending))
                continue
            written.extend(span.data for span in spans.visit(ending))

    def _later(self) -> None:
        # Left running when a full bundle goes first: the spans written
        # after it wait for it (less than BUNDLE_WAIT), and a busy node
        # sets one timer per BUNDLE_WAIT, not one per bundle.
        self._due = call_later(BUNDLE_WAIT, self._timed_out)

    def _timed_out(self) -> None:
        self._due = None
        self.hand_over()

    def hand_over(self) -> None:
        """The spans written so far to ``send``, a bundle at a time."""
        self._hand_over(len(self._written))

    def _hand_over(self, count: int) -> None:
        """The first ``count`` spans written to ``send``, :data:`BUNDLE` an item."""
        written, send = self._written, self._send
        bundles = [b"".join(written[i : min(i + BUNDLE, count)]) for i in range(0, count, BUNDLE)]
        del written[:count]
        for data in bundles:
            send(data)

    def stop(self) -> None:
        """No more waiting: hand over what is left."""
        if self._due is not None:
            self._due.cancel()
            self._due = None
        self.hand_over()

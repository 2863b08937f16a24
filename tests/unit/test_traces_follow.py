"""The follower's one pass over a step's commits writes what the ledger's
rules would, and hands an execution to the ledger the moment it is
anything but steps."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from support.otlp import ReceivedSpan, decode, span_factory

from agent_node.nodes.delegate import DelegateNode
from agent_node.store.records import EventRecord, ExecutionRecord
from agent_node.telemetry.traces_follow import BUNDLE, BUNDLE_WAIT, Follower
from agent_node.telemetry.traces_ledger import Ledger, Replay, replayed, visit_end
from agent_node.telemetry.traces_spans import SpanFactory
from agent_node.telemetry.traces_wire import Encoded, encode
from agent_node.workflow.ir import NodeSpec, PythonNode

PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


SPECS: dict[str, NodeSpec] = {
    "a": PythonNode(id="a", function="m:f"),
    "b": PythonNode(id="b", function="m:f"),
    "ask": DelegateNode(id="ask", peer="p"),
}


def factory() -> SpanFactory:
    made: SpanFactory = span_factory(SPECS)
    return made


def record(
    execution_id: str, status: str = "running", traceparent: str = PARENT
) -> ExecutionRecord:
    metadata = json.dumps({"traceparent": traceparent})
    return ExecutionRecord(
        execution_id,
        "wf",
        "1",
        None,
        status,
        "{}",
        "{}",
        0,
        None,
        None,
        metadata,
        10.0,
        10.0,  # type: ignore[arg-type]
    )


def event(
    kind: str,
    at: float,
    node: str | None = None,
    attempt: int | None = None,
    visit: int = 1,
    **data: Any,
) -> EventRecord:
    """An event as a commit hands it to its observers (a completed visit's
    run time carried, as the engine carries it when it is all there is)."""
    made = EventRecord(
        "e", 0, kind, node, visit if node else None, attempt, at, json.dumps(data) if data else None
    )
    if kind == "node_completed" and isinstance(data.get("duration"), float):
        made.duration = data["duration"]
    return made


#: Commits of an execution: (its status after, the events).
Commits = list[tuple[str, list[EventRecord]]]
STEPS: Commits = [
    (
        "running",
        [
            event("execution_started", 10.0),
            event("message_received", 10.0),
            event("node_started", 10.1, "a", 1),
        ],
    ),
    (
        "running",
        [event("node_completed", 10.2, "a", duration=0.1), event("node_started", 10.3, "b", 1)],
    ),
    (
        "completed",
        [event("node_completed", 10.4, "b", duration=0.1), event("execution_completed", 10.5)],
    ),
]
RETRIED: Commits = [
    STEPS[0],
    ("running", [event("node_completed", 10.2, "a"), event("node_started", 10.3, "b", 1)]),
    ("running", [event("node_failed", 10.4, "b", 1, error="x", type="E", retry_at=11.0)]),
    ("running", [event("node_started", 11.0, "b", 2)]),
    ("completed", [event("node_completed", 11.5, "b"), event("execution_completed", 11.6)]),
]


class Sent:
    def __init__(self, spans: SpanFactory) -> None:
        self.spans = spans
        self.bundles: list[bytes] = []

    def __call__(self, data: bytes) -> None:
        self.bundles.append(data)

    def decoded(self) -> list[ReceivedSpan]:
        encoded = [Encoded(data, self.spans.resource, self.spans.scope) for data in self.bundles]
        return decode(encode(encoded))

    def sizes(self) -> list[int]:
        """Spans in each bundle handed over."""
        return [
            len(decode(encode([Encoded(b, self.spans.resource, self.spans.scope)])))
            for b in self.bundles
        ]


def followed(
    commits: Commits, execution_id: str = "e1", together: bool = False
) -> tuple[Follower, Sent, list[Replay]]:
    """``commits`` followed one by one, or told all at once (``together``)."""
    spans, replays = factory(), []
    sent = Sent(spans)
    follower = Follower(spans, sent, replays.append)
    told = [(record(execution_id, status), events) for status, events in commits]
    for batch in [told] if together else [[commit] for commit in told]:
        follower.committed(batch)
    follower.stop()
    return follower, sent, replays


def by_the_ledger(commits: Commits) -> list[ReceivedSpan]:
    """The spans of ``commits`` as the ledger's rules and the factory write them."""
    spans, ledger, written = factory(), Ledger(), []
    for status, events in commits:
        endings, _ = ledger.committed(record("e1", status), events)
        for ending in endings:
            if isinstance(ending, tuple):  # a visit that ran once: plain, or more
                data = spans.plain(ending)
                more = [s.data for s in spans.visit(visit_end(ending))] if data is None else []
                written += [data] if data is not None else more
            elif hasattr(ending, "visit"):
                written += [s.data for s in spans.visit(ending)]  # type: ignore[arg-type]
            else:
                written.append(spans.execution(ending))  # type: ignore[arg-type]
    return decode(encode([Encoded(b"".join(written), spans.resource, spans.scope)]))


@pytest.mark.parametrize("together", [False, True])
def test_steps_are_written_as_the_ledger_would_write_them(together: bool) -> None:
    follower, sent, replays = followed(STEPS, together=together)
    got = sorted(sent.decoded(), key=lambda s: s.name)
    assert [s.name for s in got] == ["invoke_agent n", "python a", "python b"]
    assert got == sorted(by_the_ledger(STEPS), key=lambda s: s.name)
    assert (got[1].start, got[1].end) == (10.1, 10.2)
    assert replays == [] and len(follower) == 0 and len(follower.ledger) == 0


#: Step commits the shortest way does not write: a node with more to say than
#: a plain visit (a delegation's), a second visit, a step without its run time.
UNPLAIN: Commits = [
    ("running", [event("execution_started", 10.0), event("node_started", 10.1, "a", 1)]),
    (
        "running",
        [event("node_completed", 10.2, "a", duration=0.1), event("node_started", 10.3, "ask", 1)],
    ),
    (
        "running",
        [
            event("node_completed", 10.5, "ask", duration=0.2),
            event("node_started", 10.6, "a", 1, visit=2),
        ],
    ),
    (
        "running",
        [
            event("node_completed", 10.7, "a", visit=2, duration=0.1),
            event("node_started", 10.8, "b", 1),
        ],
    ),
    ("running", [event("node_completed", 10.9, "b"), event("node_started", 11.0, "a", 1, visit=3)]),
    (
        "completed",
        [
            event("node_completed", 11.1, "a", visit=3, duration=0.1),
            event("execution_completed", 11.2),
        ],
    ),
]


@pytest.mark.parametrize("together", [False, True])
def test_steps_the_shortest_way_leaves_are_written_as_the_ledger_would(together: bool) -> None:
    follower, sent, replays = followed(UNPLAIN, together=together)
    got = sorted(sent.decoded(), key=lambda s: (s.name, s.start))
    assert [s.name for s in got] == [
        "delegate ask",
        "invoke_agent n",
        "invoke_agent p",  # the delegation's, under its visit's
        *["python a"] * 3,
        "python b",
    ]
    assert got == sorted(by_the_ledger(UNPLAIN), key=lambda s: (s.name, s.start))
    assert [s.start for s in got if s.name == "python a"] == [10.1, 10.6, 11.0]
    assert replays == [] and len(follower) == 0 and len(follower.ledger) == 0


#: An execution's first and last commits, for each way it can end (only a
#: completion after a plain visit takes the short path; the others, the general).
ENDS: dict[str, Commits] = {
    status: [
        ("running", [event("execution_started", 10.0), event("node_started", 10.1, "a", 1)]),
        (
            "running",
            [
                event("node_completed", 10.2, "a", duration=0.1),
                event("node_started", 10.3, "b", 1),
            ],
        ),
        (
            status,
            [
                event("node_completed", 10.4, "b", duration=0.1),
                event(f"execution_{status}", 10.5, error="x"),
            ],
        ),
    ]
    for status in ("completed", "failed", "canceled")
}


@pytest.mark.parametrize("status", sorted(ENDS))
@pytest.mark.parametrize("together", [False, True])
def test_first_and_last_commits_are_written_as_the_ledger_would(
    status: str, together: bool
) -> None:
    follower, sent, replays = followed(ENDS[status], together=together)
    got = sorted(sent.decoded(), key=lambda s: s.name)
    assert [s.name for s in got] == ["invoke_agent n", "python a", "python b"]
    assert got == sorted(by_the_ledger(ENDS[status]), key=lambda s: s.name)
    assert got[0].attributes["agent_node.execution.status"] == status
    assert (got[1].start, got[1].end, got[2].start, got[2].end) == (10.1, 10.2, 10.3, 10.4)
    assert replays == [] and len(follower) == 0 and len(follower.ledger) == 0
    spans = factory()
    quiet = Follower(spans, Sent(spans), replays.append)
    unsampled = f"{PARENT[:-2]}00"
    quiet.committed([(record("e2", s, unsampled), ev) for s, ev in ENDS[status]])
    assert len(quiet) == 0 and spans.written == [] and replays == []


def test_a_retry_hands_the_execution_to_the_ledger_with_what_was_seen() -> None:
    follower, sent, replays = followed(RETRIED)
    got = {s.name: s for s in sent.decoded()}
    assert sorted(got) == ["invoke_agent n", "python a", "python b"]
    assert sorted(got.values(), key=lambda s: s.name) == sorted(
        by_the_ledger(RETRIED), key=lambda s: s.name
    )
    # b's span starts with its first attempt, seen before the hand-over.
    assert (got["python b"].start, got["python b"].attributes["agent_node.attempts"]) == (10.3, 2)
    assert [e[0] for e in got["python b"].events] == ["exception"]
    assert replays == [] and len(follower) == 0 and len(follower.ledger) == 0


def test_an_execution_begun_elsewhere_is_read_back_and_an_untraced_one_forgotten() -> None:
    follower, sent, replays = followed(STEPS[1:])
    request, at_end = replays  # its first visit, and whatever it left open
    assert request.visits == {("a", 1)} and at_end.open_at_end
    [end] = replayed(request, [e for _, events in STEPS for e in events])
    assert (end.visit.node, end.visit.start) == ("a", 10.1)
    assert sorted(s.name for s in sent.decoded()) == ["invoke_agent n", "python b"]
    assert len(follower) == 0
    spans = factory()
    quiet = Follower(spans, Sent(spans), replays.append)
    quiet.committed([(record("e2", status, f"{PARENT[:-2]}00"), ev) for status, ev in STEPS])
    assert len(quiet) == 0 and spans.written == []


async def test_bundles_go_when_full_or_soon_and_memory_is_bounded() -> None:
    spans = factory()
    sent = Sent(spans)
    follower = Follower(spans, sent, lambda request: None, limit=4)
    steps = BUNDLE * 2 + 1
    follower.committed([(record(f"e{n}"), events) for n in range(steps) for _, events in STEPS[:2]])
    # Full bundles at once, a bundle an item (the processor's sizes count on it).
    assert sent.sizes() == [BUNDLE, BUNDLE] and len(follower) == 4
    await asyncio.sleep(BUNDLE_WAIT + 0.1)  # the last one waited for others
    assert sent.sizes() == [BUNDLE, BUNDLE, 1]
    follower.committed([(record("last"), events) for _, events in STEPS[:2]])
    follower.stop()  # no more waiting
    assert sent.sizes() == [BUNDLE, BUNDLE, 1, 1]

"""The eval node's cost scorer counts what the model calls cost, failed
attempts included: their calls were paid for, and budgets count them."""

from __future__ import annotations

import json

import pytest

from agent_node.nodes.eval_scorers import Cost, measured_cost
from agent_node.store.records import EventRecord


def event(seq: int, kind: str, node: str, visit: int, cost: float) -> EventRecord:
    usage = {"calls": 1, "total_tokens": 10, "cost": cost}
    data = json.dumps({"usage": usage, **({"retry_at": 1.0} if kind == "node_failed" else {})})
    return EventRecord("e", seq, kind, node, visit, 1, float(seq), data)


HISTORY = [
    event(1, "node_failed", "write", 1, 0.02),  # an attempt cut short, then retried
    event(2, "node_completed", "write", 1, 0.03),
    event(3, "node_completed", "judge", 1, 0.005),
    event(4, "node_completed", "write", 2, 0.01),  # a revision
]


def test_the_whole_execution_counts_failed_attempts() -> None:
    assert measured_cost(HISTORY, Cost(max=1)) == pytest.approx(0.065)


def test_a_node_s_last_completed_visit_counts_its_failed_attempts() -> None:
    assert measured_cost(HISTORY[:2], Cost(max=1, node="write")) == pytest.approx(0.05)
    assert measured_cost(HISTORY, Cost(max=1, node="write")) == pytest.approx(0.01)
    # A visit that never completed is not the node's last completed visit.
    tail = [*HISTORY, event(5, "node_failed", "write", 3, 0.5)]
    assert measured_cost(tail, Cost(max=1, node="write")) == pytest.approx(0.01)
    assert measured_cost(HISTORY, Cost(max=1, node="nobody")) == 0.0

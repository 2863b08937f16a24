"""The node's counters and histograms, counted in plain Python and read by
Prometheus' own text parser from what a scrape writes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from support.workflows import Greeting, greeter

from agent_node import Runtime
from agent_node.engine.registry import WorkflowRegistry
from agent_node.store.memory import MemoryStore
from agent_node.store.records import Claim, EventRecord, ExecutionRecord, WorkItem
from agent_node.telemetry import tallies
from agent_node.telemetry.metrics import NodeMetrics
from agent_node.telemetry.tallies import Tallies
from agent_node.workflow.loading import load_workflow


def scrape(registry: CollectorRegistry) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    found: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            found.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def test_counts_and_histograms_read_as_prometheus_writes_them() -> None:
    registry, t = CollectorRegistry(auto_describe=True), Tallies()
    calls = t.count("x_calls", "Calls", ["model"])
    took = t.timing("x_seconds", "Time", ["route"], buckets=(0.1, 1, 10))
    registry.register(t)
    calls.add(("a",))
    calls.add(("a",), 2)
    calls.add(("b",), 0.5)
    for value in (0.05, 0.1, 0.5, 1, 20):  # 0.1 and 1 fall in their own bucket (le)
        took.observe(value, ("/x",))
    found = scrape(registry)
    assert found["x_calls_total"] == {(("model", "a"),): 3.0, (("model", "b"),): 0.5}
    buckets = {dict(k)["le"]: v for k, v in found["x_seconds_bucket"].items()}
    assert buckets == {"0.1": 2.0, "1.0": 4.0, "10.0": 4.0, "+Inf": 5.0}
    assert found["x_seconds_count"] == {(("route", "/x"),): 5.0}
    assert found["x_seconds_sum"] == {(("route", "/x"),): 21.65}


def test_a_metric_without_labels_is_shown_before_anything_is_counted() -> None:
    registry, t = CollectorRegistry(auto_describe=True), Tallies()
    t.timing("z_seconds", "Z", buckets=(1,))
    t.count("z_calls", "Z")
    registry.register(t)
    found = scrape(registry)
    assert found["z_seconds_count"] == {(): 0.0} and found["z_calls_total"] == {(): 0.0}
    assert found["z_seconds_bucket"] == {(("le", "1.0"),): 0.0, (("le", "+Inf"),): 0.0}


def test_series_past_the_bound_are_counted_together(monkeypatch: pytest.MonkeyPatch) -> None:
    t = Tallies()
    calls = t.count("y", "Y", ["peer"])
    monkeypatch.setattr(tallies, "MAX_SERIES", 3)
    for peer in "abcdef":
        calls.add((peer,))
    assert calls.values == {("a",): 1, ("b",): 1, ("c",): 1, ("_other",): 3}


def test_a_committed_step_carries_its_duration_to_the_observers(tmp_path: Path) -> None:
    async def run() -> tuple[list[EventRecord], list[EventRecord]]:
        seen: list[EventRecord] = []
        async with Runtime(f"sqlite:///{tmp_path / 'carried.db'}") as runtime:
            runtime.store.observe(lambda told: seen.extend(e for _, ev in told for e in ev))
            await runtime.run(greeter().compile(), Greeting(text="hi"))
            runtime.store.tell_observers()
            return seen, await runtime.store.events(seen[0].execution_id)

    seen, log = asyncio.run(run())
    completed = [e for e in seen if e.kind == "node_completed"]
    assert [e.node for e in completed] == ["greet", "done"]
    for event in completed:  # as the data says it, without reading the data
        assert event.duration == json.loads(event.data or "")["duration"]
    # Read back: the same events, the duration in the data alone.
    assert [e for e in log if e.kind == "node_completed"] == completed
    assert all(e.duration is None for e in log)


def test_commits_move_the_counters() -> None:
    # A workflow this process does not know: its nodes' type is "unknown".
    metrics = NodeMetrics(MemoryStore(), WorkflowRegistry(load_workflow), "n")
    record = ExecutionRecord(
        "e1", "wf", "1", None, "completed", "{}", "{}", 0, None, None, None, 1.0, 1.0
    )
    usage = {"model": "ollama/m", "prompt_tokens": 3, "completion_tokens": 4, "calls": 1}

    def event(seq: int, kind: str, node: str | None = None, **data: Any) -> EventRecord:
        text = json.dumps(data, separators=(",", ":")) if data else None
        # As the engine commits it: a step's run time carried unless it used a model.
        took = data.get("duration") if kind == "node_completed" and "usage" not in data else None
        return EventRecord("e1", seq, kind, node, 1, 1, 10.0 + seq, text, took)

    metrics.committed(
        record,
        [
            event(1, "execution_started", workflow="wf"),
            event(2, "node_started", "a"),
            event(3, "node_completed", "a", duration=0.002, next=["b"]),
            event(4, "node_failed", "b", duration=0.5, error="x", retry_at=20.0),
            event(5, "node_completed", "b", duration=2.0, usage=usage),
            event(6, "delegation_sent", "c", peer="p"),
            event(7, "node_completed", "c", next=None),
            event(8, "execution_completed"),
        ],
    )
    found = scrape(metrics.registry)
    assert found["agent_node_executions_total"] == {
        (("status", "started"), ("workflow", "wf")): 1.0,
        (("status", "completed"), ("workflow", "wf")): 1.0,
    }
    counts = found["agent_node_node_duration_seconds_count"]
    assert counts == {
        (("outcome", "completed"), ("type", "unknown")): 2.0,
        (("outcome", "retrying"), ("type", "unknown")): 1.0,
    }
    assert found["agent_node_model_tokens_total"] == {
        (("kind", "completion"), ("model", "ollama/m")): 4.0,
        (("kind", "prompt"), ("model", "ollama/m")): 3.0,
    }
    assert found["agent_node_delegations_total"] == {(("outcome", "completed"), ("peer", "p")): 1.0}
    assert found["agent_node_delegation_round_trip_seconds_sum"] == {(("peer", "p"),): 1.0}
    # A plain step's end is counted in its node's series found once, as observe() counts.
    sums = found["agent_node_node_duration_seconds_sum"]
    assert sums[(("outcome", "completed"), ("type", "unknown"))] == pytest.approx(2.002)
    assert found["agent_node_node_duration_seconds_bucket"][
        (("le", "0.005"), ("outcome", "completed"), ("type", "unknown"))
    ] == pytest.approx(1.0)


def test_claims_and_commits_are_timed() -> None:
    metrics = NodeMetrics(MemoryStore(), WorkflowRegistry(load_workflow), "n")
    record = ExecutionRecord(
        "e1", "wf", "1", None, "running", "{}", "{}", 0, None, None, None, 1.0, 1.0
    )
    ready = [WorkItem("e1", "a", 1, 1, at, None, None, 1) for at in (9.0, 10.5)]
    metrics.claimed([Claim(work, record) for work in ready], 10.0)  # one became ready "later"
    metrics.commit_seconds.observe(0.002)
    found = scrape(metrics.registry)
    assert found["agent_node_ready_to_claim_seconds_count"] == {(): 2.0}
    assert found["agent_node_ready_to_claim_seconds_sum"] == {(): 1.0}
    assert found["agent_node_ready_to_claim_seconds_bucket"][(("le", "0.001"),)] == 1.0
    assert found["agent_node_store_commit_seconds_count"] == {(): 1.0}

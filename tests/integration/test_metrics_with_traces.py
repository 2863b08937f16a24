"""With traces on, the traces' pass over each commit counts the node's
metrics too (agent_node/telemetry/traces_follow.py): the figures must be the
ones the metrics' own observer counts, for every path a commit can take —
steps followed in one pass, executions the ledger follows (retries, waits,
failures), executions in no sampled trace — and a scrape must see the
commits the follower still holds."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, get_args, get_type_hints

import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel
from support.otlp import OtlpReceiver, receiving

from agent_node import Runtime, Workflow
from agent_node.settings_telemetry import TelemetrySettings
from agent_node.telemetry.metrics import NodeMetrics
from agent_node.telemetry.traces import start_traces
from agent_node.tracing import new_traceparent
from agent_node.workflow.retry import RetryPolicy

FAST_RETRY = RetryPolicy(max_attempts=2, initial_delay=0.01, jitter=0)
#: Families whose figures do not depend on timing, and so must be equal.
COUNTED = (
    "agent_node_executions_total",
    "agent_node_node_duration_seconds_count",
)


class Count(BaseModel):
    n: int = 0


def workflows() -> dict[str, Any]:
    steps = Workflow("steps", version="1")
    steps.state(Count)
    for i in range(4):

        async def step(state: Count) -> dict[str, Any]:
            return {"n": state.n + 1}

        steps.step(step, name=f"s{i}")

    flaky = Workflow("flaky", version="1")
    flaky.state(Count)
    tries: dict[int, int] = {}

    @flaky.step(retry=FAST_RETRY)
    async def shaky(state: Count) -> dict[str, Any]:
        tries[state.n] = tries.get(state.n, 0) + 1
        if tries[state.n] == 1:
            raise ConnectionError("the first try fails")
        return {"n": state.n}

    broken = Workflow("broken", version="1")
    broken.state(Count)

    @broken.step
    async def fails(state: Count) -> Count:
        raise RuntimeError("always broken")

    parked = Workflow("parked", version="1")
    parked.state(Count)

    @parked.step
    async def before(state: Count) -> dict[str, Any]:
        return {"n": 1}

    parked.wait("w", event="go")
    return {wf.id: wf.compile() for wf in (steps, flaky, broken, parked)}


async def exercise(runtime: Runtime, compiled: dict[str, Any]) -> list[str]:
    """Each workflow traced (sampled), not sampled, and without a traceparent;
    the executions' ids."""
    engine = runtime.engine
    ids: list[str] = []
    for n, workflow in enumerate(compiled.values()):
        for k, metadata in enumerate(
            (
                {"traceparent": new_traceparent(), "trace_root": True},
                {"traceparent": new_traceparent()[:-2] + "00"},
                {},
            )
        ):
            state = Count(n=10 * n + k)  # each execution's own (flaky's tries are by it)
            execution_id, _ = await engine.submit(workflow, state, metadata=metadata, watch=True)
            ids.append(execution_id)
    for execution_id in ids:
        record = await engine.wait(execution_id)
        if record.status == "waiting":
            await engine.control.signal(execution_id, "go", {"ok": True})
            record = await engine.wait(execution_id, until="terminal")
        engine.release(execution_id)
        assert record.status in ("completed", "failed"), record
    return ids


async def run_times(runtime: Runtime, ids: list[str]) -> float:
    """The completed visits' run times, as the executions' logs say them."""
    total = 0.0
    for execution_id in ids:
        for event in await runtime.store.events(execution_id):
            if event.kind == "node_completed":
                total += json.loads(event.data or "{}").get("duration", 0.0)
    return total


def completed_sum(text: str) -> float:
    """The completed visits' run times, as the metrics count them."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "agent_node_node_duration_seconds_sum"
        and sample.labels["outcome"] == "completed"
    )


def counted(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name in COUNTED
    }


async def scraped(url: str, otlp: OtlpReceiver | None) -> dict[Any, float]:
    """The counted figures after :func:`exercise`, scraped at once."""
    runtime = Runtime(url, node="n", scope="all")
    await runtime.start()
    compiled = workflows()
    for workflow in compiled.values():
        runtime.workflows.add(workflow)
    metrics = NodeMetrics(runtime.store, runtime.workflows, "n")
    traces = None
    if otlp is not None:
        settings = TelemetrySettings.model_validate({"traces": {"endpoint": otlp.url}})
        traces = start_traces(settings, node="n", runtime=runtime, metrics=metrics)
        assert traces is not None
    try:
        ids = await exercise(runtime, compiled)
        text = (await metrics.scrape()).decode()  # with the commits held
        # Each run time counted once, as taken (the sums hang on timing: not compared).
        assert completed_sum(text) == pytest.approx(await run_times(runtime, ids))
        return counted(text)
    finally:
        if traces is not None:
            await traces.close()
        metrics.close()
        await runtime.close()


@pytest.mark.parametrize("store", ["memory", "sqlite"])
async def test_metrics_counted_in_the_traces_pass_are_the_metrics_own(
    store: str, tmp_path: Path
) -> None:
    def url(name: str) -> str:
        return "memory://" if store == "memory" else f"sqlite:///{tmp_path / name}.db"

    alone = await scraped(url("alone"), None)
    with receiving() as otlp:
        together = await scraped(url("together"), otlp)
        # The sampled executions made spans: the follower did follow them.
        otlp.wait_for(lambda spans: len(spans) >= 4, "the sampled executions' spans")
    assert together == alone
    executions = {labels: v for (name, labels), v in alone.items() if "executions" in name}
    assert executions[(("status", "started"), ("workflow", "steps"))] == 3
    assert executions[(("status", "failed"), ("workflow", "broken"))] == 3
    assert executions[(("status", "completed"), ("workflow", "parked"))] == 3
    visits = {labels: v for (name, labels), v in alone.items() if "duration" in name}
    # 4 steps of 3 runs, flaky's and parked's step and the wait's end of 3 each: all python
    # but the wait; the flaky step's first tries, and the broken step, by outcome.
    assert visits[(("outcome", "completed"), ("type", "python"))] == 18
    assert visits[(("outcome", "retrying"), ("type", "python"))] == 3
    assert visits[(("outcome", "failed"), ("type", "python"))] == 3


async def test_closed_traces_give_the_metrics_their_commits_back(tmp_path: Path) -> None:
    runtime = Runtime(f"sqlite:///{tmp_path / 'back.db'}", node="n", scope="all")
    await runtime.start()
    compiled = workflows()
    runtime.workflows.add(compiled["steps"])
    metrics = NodeMetrics(runtime.store, runtime.workflows, "n")
    try:
        with receiving() as otlp:
            settings = TelemetrySettings.model_validate({"traces": {"endpoint": otlp.url}})
            traces = start_traces(settings, node="n", runtime=runtime, metrics=metrics)
            assert traces is not None
            await runtime.run(compiled["steps"], Count())
            await traces.close()
        await runtime.run(compiled["steps"], Count())
        found = counted((await metrics.scrape()).decode())
        started = ("agent_node_executions_total", (("status", "started"), ("workflow", "steps")))
        assert found[started] == 2
    finally:
        metrics.close()
        await runtime.close()


async def test_every_commit_is_timed(durable_url: str) -> None:
    runtime = Runtime(durable_url, node="n", scope="all")
    await runtime.start()
    compiled = workflows()
    runtime.workflows.add(compiled["steps"])
    metrics = NodeMetrics(runtime.store, runtime.workflows, "n")
    commits: list[str] = []
    forget = runtime.store.observe(lambda told: commits.extend(e.id for e, _ in told))
    try:
        await asyncio.gather(*(runtime.run(compiled["steps"], Count()) for _ in range(10)))
        text = (await metrics.scrape()).decode()
    finally:
        forget()
        metrics.close()
        await runtime.close()
    timed = {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("agent_node_store_commit_seconds")
    }
    # Every write is timed once (more writes than commits of an execution: claims).
    assert timed["agent_node_store_commit_seconds_count"] >= len(commits) >= 10 * 5
    assert 0 < timed["agent_node_store_commit_seconds_sum"] < 60


async def test_the_store_s_gauges_show_every_known_value_from_the_start(
    durable_url: str,
) -> None:
    """Executions by live status, waits by kind and delegations by state:
    each series at 0 before anything was, so an alert on one sees it."""
    from agent_node.store.records import DelegationState
    from agent_node.telemetry.metrics import WAIT_KINDS

    runtime = Runtime(durable_url, node="n", scope="all")
    await runtime.start()
    metrics = NodeMetrics(runtime.store, runtime.workflows, "n")
    try:
        text = (await metrics.scrape()).decode()
    finally:
        metrics.close()
        await runtime.close()
    found = {
        (sample.name, tuple(sample.labels.values())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    expected = {
        **{("agent_node_executions_active", (s,)): 0.0 for s in ("pending", "running", "waiting")},
        **{("agent_node_waits", (k,)): 0.0 for k in WAIT_KINDS},
        **{("agent_node_delegations_open", (s,)): 0.0 for s in get_args(DelegationState)},
    }
    assert {key: found.get(key) for key in expected} == expected


def test_the_wait_kinds_counted_are_those_a_visit_parks_on() -> None:
    from agent_node.engine.executor import Park
    from agent_node.telemetry.metrics import WAIT_KINDS

    assert set(WAIT_KINDS) == set(get_args(get_type_hints(Park)["kind"]))

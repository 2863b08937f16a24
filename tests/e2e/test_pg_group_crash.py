"""Two worker processes share a PostgreSQL database, each committing its
node results in groups; one is SIGKILLed while its groups are in flight.
A worker of the same node takes over its leases: every execution completes,
nothing committed is lost, no completed visit runs again, and no attempt of
a visit runs twice (on either worker)."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from e2e.procs import (
    CLI,
    FIVE_STEPS,
    Spawn,
    assert_each_visit_once,
    child_env,
    opened,
    read_logs,
    wait_until,
)
from support.effects import Effects

from agent_node.engine.control import Control
from agent_node.engine.registry import WorkflowRegistry
from agent_node.nodes import default_executors
from agent_node.store import Store
from agent_node.workflow.loading import load_workflow

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

EXECUTIONS = 300
STEPS = ("step1", "step2", "step3", "step4", "step5")
#: Many visits at once, so that commits are grouped (and in flight) all along.
CONCURRENCY = "128"
#: Kill once this many bodies ran: well into the run, with groups in flight.
KILL_AFTER = 400


async def _create(store: Store, ids: list[str]) -> None:
    workflow = load_workflow(FIVE_STEPS)
    control = Control(store, WorkflowRegistry(load_workflow), default_executors())
    for index, execution_id in enumerate(ids):
        await control.create(workflow, {"item": index}, execution_id)


@pytest.mark.timeout(120)
async def test_a_worker_killed_mid_group_loses_nothing_and_repeats_nothing(
    pg_url: str, tmp_path: Path, spawn: Spawn
) -> None:
    effects = Effects(tmp_path / "effects.db")
    env = child_env(tmp_path / "effects.db", step_sleep=0.001)
    ids = [f"grp-{i:04d}" for i in range(EXECUTIONS)]

    def worker(name: str, node: str) -> list[str]:
        return [*CLI, "worker", FIVE_STEPS, "--store", pg_url, "--node", node]

    def bodies_ran() -> int:
        return sum(effects.invocations().values())

    async with opened(pg_url) as store:
        await _create(store, ids)
        command = ["--concurrency", CONCURRENCY]
        doomed = spawn("w1", [*worker("w1", "n1"), *command], env)
        other = spawn("w2", [*worker("w2", "n2"), *command], env)
        await wait_until(
            lambda: bodies_ran() >= KILL_AFTER,
            f"{KILL_AFTER} node bodies",
            timeout=60,
            interval=0.005,
            alive=[doomed, other],
        )
        doomed.send(signal.SIGKILL)
        assert doomed.wait(10) == -signal.SIGKILL
        assert bodies_ran() < EXECUTIONS * len(STEPS), "the run ended before the kill"
        # The same node again: it takes over the dead process's leases at once.
        heir = spawn("w1b", [*worker("w1b", "n1"), *command], env)

        async def all_completed() -> bool:
            done = await store.count_executions(status=["completed"])
            return done == EXECUTIONS

        await wait_until(
            all_completed, "every execution to complete", timeout=90, alive=[other, heir]
        )
        for child in (other, heir):
            child.send(signal.SIGTERM)
            assert child.wait(30) == 0, child.describe()
        logs = await read_logs(store, ids)

    keys = {f"{eid}/{step}/1" for eid in ids for step in STEPS}
    assert_each_visit_once(effects, logs, keys)
    for _, events in logs.values():
        assert [e.node for e in events if e.kind == "node_completed"] == list(STEPS)
    # The killed worker and the one that lived ran bodies. The heir frees the
    # dead process's leases at once, but the worker already running may take
    # every one of them (and finish the rest) before the heir's first claim.
    assert len(effects.pids()) >= 2, "both first workers ran bodies"
    retried = [
        e
        for _, events in logs.values()
        for e in events
        if e.kind == "node_started" and (e.attempt or 0) >= 2
    ]
    assert retried, "no attempt was cut short by the kill: nothing was tested"

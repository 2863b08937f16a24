"""Two worker processes on one PostgreSQL database drain 500 executions of
5 steps: every node body runs exactly once, and both workers did work."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sqlite3
from collections import Counter
from pathlib import Path

import asyncpg
import pytest
from e2e.procs import CLI, FIVE_STEPS, Spawn, child_env, opened, read_logs, wait_until
from support.effects import Effects

from agent_node.engine.control import Control
from agent_node.engine.registry import WorkflowRegistry
from agent_node.nodes import default_executors
from agent_node.store import Store, store_from_url
from agent_node.workflow.loading import load_workflow

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

EXECUTIONS = 500
STEPS = ("step1", "step2", "step3", "step4", "step5")
#: Visits a worker runs at once. A worker runs an execution it claimed to its
#: end, so with the engine's default (512) the split follows which worker wakes
#: first for each new execution (30/70 was seen); a bound keeps it near even.
CONCURRENCY = "32"


async def _create(store: Store, ids: list[str]) -> None:
    workflow = load_workflow(FIVE_STEPS)
    control = Control(store, WorkflowRegistry(load_workflow), default_executors())
    for index, execution_id in enumerate(ids):
        _, claims, _ = await control.create(workflow, {"item": index}, execution_id)
        assert claims == [], "an execution created without a lease was leased"


def _invocation_pids(effects: Effects) -> list[int]:
    with contextlib.closing(sqlite3.connect(effects.path)) as conn:
        return [pid for (pid,) in conn.execute("SELECT pid FROM invocations")]


@pytest.mark.timeout(90)
async def test_two_workers_drain_500_executions_running_each_body_once(
    pg_url: str, tmp_path: Path, spawn: Spawn
) -> None:
    effects = Effects(tmp_path / "effects.db")
    env = child_env(tmp_path / "effects.db", step_sleep=0.005)
    async with opened(pg_url) as store:
        command = [*CLI, "worker", FIVE_STEPS, "--store", pg_url, "--concurrency", CONCURRENCY]
        workers = [spawn(name, [*command, "--node", name], env) for name in ("w1", "w2")]
        await wait_until(
            lambda: all("stop with SIGTERM" in w.out() for w in workers),
            "both workers to start",
            timeout=30,
            alive=workers,
        )
        ids = [f"pgw-{i:04d}" for i in range(EXECUTIONS)]
        await _create(store, ids)

        async def all_completed() -> bool:
            done = await store.list_executions(status=["completed"], limit=EXECUTIONS + 1)
            return len(done) == EXECUTIONS

        await wait_until(
            all_completed, "every execution to complete", timeout=60, interval=0.1, alive=workers
        )
        for worker in workers:
            worker.send(signal.SIGTERM)
        for worker in workers:
            assert worker.wait(30) == 0, worker.describe()
            assert "stopped" in worker.out()
        logs = await read_logs(store, ids)

    assert all(record.status == "completed" for record, _ in logs.values())
    keys = {f"{eid}/{step}/1" for eid in ids for step in STEPS}
    invocations = effects.invocations()
    assert set(invocations) == keys
    twice = {key: n for key, n in invocations.items() if n != 1}
    assert not twice, f"node bodies ran more than once: {twice}"
    assert effects.effects() == dict.fromkeys(keys, 1)
    by_pid = Counter(_invocation_pids(effects))
    assert set(by_pid) == {w.pid for w in workers}
    assert min(by_pid.values()) >= len(keys) // 10, f"one worker barely worked: {by_pid}"


@pytest.mark.timeout(30)
async def test_opening_a_store_while_a_worker_writes_does_not_deadlock(pg_url: str) -> None:
    first = store_from_url(pg_url)
    await first.open()
    await first.close()
    worker = await asyncpg.connect(pg_url)
    try:
        async with worker.transaction():
            # A worker's transaction: the work rows first, then the execution row.
            await worker.execute("LOCK TABLE work IN ROW EXCLUSIVE MODE")
            opener = store_from_url(pg_url)
            opening = asyncio.create_task(opener.open())
            await asyncio.sleep(0.2)
            await worker.execute("LOCK TABLE executions IN ROW EXCLUSIVE MODE")
        try:
            await opening
        finally:
            await opener.close()
    finally:
        await worker.close()

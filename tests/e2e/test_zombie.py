"""A worker paused past its lease cannot commit; the node completes once, via
the worker that took the lease over.

Worker A (short lease, no heartbeat) is frozen with SIGSTOP inside step 2;
worker B claims step 2 when A's lease expires and finishes the execution;
then A is thawed with SIGCONT, finishes its step body, and has its commit
refused: it logs that it dropped the result and keeps running.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sqlite3
import sys
from pathlib import Path

import pytest
from e2e.procs import E2E, FIVE_STEPS, Spawn, child_env, opened, read_logs, wait_until
from support.effects import Effects

from agent_node.engine.control import Control
from agent_node.engine.registry import WorkflowRegistry
from agent_node.nodes import default_executors
from agent_node.results import Event
from agent_node.store import ExecutionRecord
from agent_node.workflow.loading import load_workflow

pytestmark = pytest.mark.slow

EXECUTION = "zombie-1"
STEP2 = f"{EXECUTION}/step2/1"


def _worker(url: str, node: str, lease_ttl: float, heartbeat: bool) -> list[str]:
    script = str(E2E / "zombie_worker.py")
    return [sys.executable, script, url, node, str(lease_ttl), "on" if heartbeat else "off"]


def _runs(effects: Effects) -> dict[str, list[tuple[int, int]]]:
    """``key -> [(attempt, pid), ...]`` in the order the bodies started."""
    found: dict[str, list[tuple[int, int]]] = {}
    with contextlib.closing(sqlite3.connect(effects.path)) as conn:
        for key, attempt, pid in conn.execute(
            "SELECT key, attempt, pid FROM invocations ORDER BY rowid"
        ):
            found.setdefault(key, []).append((attempt, pid))
    return found


async def _pause_a_and_let_b_finish(
    url: str, effects: Effects, env: dict[str, str], spawn: Spawn
) -> tuple[dict[str, tuple[ExecutionRecord, list[Event]]], int, int]:
    async with opened(url) as store:
        control = Control(store, WorkflowRegistry(load_workflow), default_executors())
        await control.create(load_workflow(FIVE_STEPS), {"item": 1}, EXECUTION)

        a = spawn("worker-a", _worker(url, "a", lease_ttl=1.0, heartbeat=False), env)
        # Wait for step 2's keyed effect, A's last write before its sleep, so
        # that A is not frozen holding a lock on the effects file.
        await wait_until(
            lambda: STEP2 in effects.effects(),
            "worker A to enter step 2",
            timeout=30,
            interval=0.005,
            alive=[a],
        )
        a.send(signal.SIGSTOP)
        kinds = [(e.kind, e.node) for e in await store.events(EXECUTION)]
        assert ("node_completed", "step2") not in kinds, "A finished step 2 before the pause"

        b = spawn("worker-b", _worker(url, "b", lease_ttl=30.0, heartbeat=True), env)

        async def completed() -> bool:
            record = await store.get(EXECUTION)
            return record is not None and record.status == "completed"

        await wait_until(completed, "worker B to complete the execution", timeout=30, alive=[b])
        a.send(signal.SIGCONT)
        await wait_until(
            lambda: f"dropped the result of {STEP2}" in a.err(),
            "worker A to drop its result",
            timeout=30,
            alive=[a],
        )
        for worker in (a, b):
            worker.send(signal.SIGTERM)
        for worker in (a, b):
            assert worker.wait(30) == 0, worker.describe()
        logs = await read_logs(store, [EXECUTION])

    return logs, a.pid, b.pid


@pytest.mark.timeout(60)
async def test_a_paused_worker_past_its_lease_cannot_commit(
    durable_url: str, tmp_path: Path, spawn: Spawn
) -> None:
    effects = Effects(tmp_path / "effects.db")
    # Long enough that A is surely frozen inside step 2's body, short for B.
    env = child_env(tmp_path / "effects.db", step_sleep=0.3)
    # A connection that has read keeps a WAL file shared: then the close of
    # another never checkpoints (which locks the file), so A cannot be frozen
    # holding that lock.
    with contextlib.closing(sqlite3.connect(effects.path)) as held:
        held.execute("SELECT count(*) FROM effects").fetchone()
        logs, a_pid, b_pid = await _pause_a_and_let_b_finish(durable_url, effects, env, spawn)

    record, events = logs[EXECUTION]
    assert record.status == "completed"
    assert json.loads(record.state)["steps"] == ["step1", "step2", "step3", "step4", "step5"]
    step2 = [(e.kind, e.attempt) for e in events if e.node == "step2"]
    assert step2 == [("node_started", 1), ("node_started", 2), ("node_completed", None)]
    assert effects.effects() == {f"{EXECUTION}/step{n}/1": 1 for n in range(1, 6)}
    runs = _runs(effects)
    assert runs[STEP2] == [(1, a_pid), (2, b_pid)]
    assert runs[f"{EXECUTION}/step1/1"] == [(1, a_pid)]
    for n in (3, 4, 5):
        assert runs[f"{EXECUTION}/step{n}/1"] == [(1, b_pid)]
    assert "Traceback" not in (tmp_path / "worker-a.err").read_text()

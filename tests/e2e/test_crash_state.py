"""Executions whose state is a snapshot and patches survive ``kill -9``: a
real ``agent-node batch`` process is SIGKILLed after snapshots were taken
and patches logged past them; another process rebuilds each state from its
snapshot and the patches after it, and finishes with every line exactly
once, no completed step run again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from e2e.flows import GROWING_STEPS, growing_line
from e2e.procs import CLI, E2E, Spawn, child_env, killed_midway, opened, read_logs
from support.effects import Effects

from agent_node.store import Store
from agent_node.store.txn import Txn

pytestmark = pytest.mark.slow

EXECUTIONS = 3
BODIES = EXECUTIONS * GROWING_STEPS
#: Kill once this many bodies ran: past the first folded snapshot of each
#: state (about 64 lines of 1 KB after it left the row), before the next.
KILL_AFTER = 240


def _batch(inputs: Path, output: Path, url: str) -> list[str]:
    target = f"{E2E / 'flows.py'}:growing"
    options = ["--concurrency", "3", "--output", str(output), "--store", url]
    return [*CLI, "batch", target, str(inputs), *options]


async def _where(store: Store, execution_id: str) -> tuple[str, int, int]:
    def look(txn: Txn) -> tuple[str, int, int]:
        record = txn.execution
        return record.state, record.state_seq, record.snapshot_seq

    found: tuple[str, int, int] = await store.apply(execution_id, look)
    return found


@pytest.mark.timeout(120)
async def test_sigkill_then_resume_rebuilds_states_from_snapshot_and_patches(
    durable_url: str, tmp_path: Path, spawn: Spawn
) -> None:
    inputs = tmp_path / "inputs.jsonl"
    inputs.write_text("".join(json.dumps({"item": i}) + "\n" for i in range(EXECUTIONS)))
    effects = Effects(tmp_path / "effects.db")
    env = child_env(tmp_path / "effects.db", step_sleep=0.005)

    command = _batch(inputs, tmp_path / "out1.jsonl", durable_url)
    await killed_midway(spawn, command, env, effects, after=KILL_AFTER, bodies=BODIES, timeout=90)

    ids = [
        key.split("/")[0]
        for key in sorted(effects.effects())
        if key.endswith("/grow/1")  # one key per execution
    ]
    assert len(ids) == EXECUTIONS
    async with opened(durable_url) as store:
        where = [await _where(store, execution_id) for execution_id in ids]
    # The kill left states that are a snapshot (not the input) plus patches.
    assert all(row == "" for row, _, _ in where), where
    assert any(state > snapshot > 10 for _, state, snapshot in where), where

    second = spawn("batch2", _batch(inputs, tmp_path / "out2.jsonl", durable_url), env)
    assert second.wait(90) == 0, second.describe()

    results = [json.loads(line) for line in (tmp_path / "out2.jsonl").read_text().splitlines()]
    assert {r["status"] for r in results} == {"completed"}
    for result in results:
        item = result["state"]["item"]
        assert result["state"]["n"] == GROWING_STEPS
        assert result["state"]["lines"] == [growing_line(item, n) for n in range(GROWING_STEPS)]
    async with opened(durable_url) as store:
        logs = await read_logs(store, ids)
    keys = {f"{eid}/grow/{visit}" for eid in ids for visit in range(1, GROWING_STEPS + 1)}
    assert effects.effects() == dict.fromkeys(keys, 1)
    attempts = effects.attempts()
    for eid, (record, events) in logs.items():
        assert record.status == "completed"
        started: dict[int, int] = {}
        for event in events:
            if event.kind == "node_started" and event.visit is not None:
                started[event.visit] = event.attempt or 0
        for visit, last in started.items():
            ran = attempts[f"{eid}/grow/{visit}"]
            assert max(ran) <= last, f"{eid}/grow/{visit} ran again after it completed: {ran}"
            assert len(ran) == len(set(ran)), f"{eid}/grow/{visit}: one attempt ran twice"

"""A real ``agent-node batch`` process is SIGKILLed mid-run, run again, and
everything completes with no completed node run twice."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from e2e.procs import (
    CLI,
    FIVE_STEPS,
    Spawn,
    assert_each_visit_once,
    child_env,
    killed_midway,
    opened,
    read_logs,
)
from support.effects import Effects

pytestmark = pytest.mark.slow

EXECUTIONS = 50
STEPS = ("step1", "step2", "step3", "step4", "step5")
BODIES = EXECUTIONS * len(STEPS)
#: Kill once this many bodies ran: well into the batch, with work in flight.
KILL_AFTER = 60


def _batch(inputs: Path, output: Path, url: str) -> list[str]:
    return [
        *CLI,
        "batch",
        FIVE_STEPS,
        str(inputs),
        "--concurrency",
        "10",
        "--output",
        str(output),
        "--store",
        url,
    ]


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.timeout(90)
async def test_sigkill_mid_batch_then_rerun_completes_without_rerunning_nodes(
    durable_url: str, tmp_path: Path, spawn: Spawn
) -> None:
    inputs = tmp_path / "inputs.jsonl"
    inputs.write_text("".join(json.dumps({"item": i}) + "\n" for i in range(EXECUTIONS)))
    effects = Effects(tmp_path / "effects.db")
    env = child_env(tmp_path / "effects.db", step_sleep=0.02)

    command = _batch(inputs, tmp_path / "out1.jsonl", durable_url)
    await killed_midway(spawn, command, env, effects, after=KILL_AFTER, bodies=BODIES, timeout=60)

    second = spawn("batch2", _batch(inputs, tmp_path / "out2.jsonl", durable_url), env)
    assert second.wait(60) == 0, second.describe()

    results = _lines(tmp_path / "out2.jsonl")
    assert len(results) == EXECUTIONS
    assert {r["status"] for r in results} == {"completed"}
    ids = [str(r["execution_id"]) for r in results]
    async with opened(durable_url) as store:
        logs = await read_logs(store, ids)
    keys = {f"{eid}/{step}/1" for eid in ids for step in STEPS}
    assert_each_visit_once(effects, logs, keys)

    # The kill landed mid-run: results were missing and an attempt was cut short.
    assert len(_lines(tmp_path / "out1.jsonl")) < EXECUTIONS
    retried = [
        e
        for _, events in logs.values()
        for e in events
        if e.kind == "node_started" and (e.attempt or 0) >= 2
    ]
    assert retried, "no node attempt was interrupted by the kill"

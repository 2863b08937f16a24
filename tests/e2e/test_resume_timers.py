"""``agent-node run`` is SIGKILLed while its execution waits for a timer;
once the timer is due, ``agent-node resume`` fires it and finishes the
execution (it used to say there was nothing to resume)."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
from e2e.procs import CLI, Spawn, child_env, opened, wait_until

NAP = 1.5

FLOW = f"""
from pydantic import BaseModel

from agent_node import Workflow

wf = Workflow("nap", version="1")


@wf.state
class State(BaseModel):
    log: list[str] = []


@wf.step
async def before(state: State) -> dict:
    return {{"log": [*state.log, "before"]}}


wf.wait("nap", duration={NAP})


@wf.step
async def after(state: State) -> dict:
    return {{"log": [*state.log, "after"]}}
"""


@pytest.mark.timeout(60)
async def test_resume_fires_a_due_timer_of_a_killed_run(
    durable_url: str, tmp_path: Path, spawn: Spawn
) -> None:
    (tmp_path / "flow.py").write_text(FLOW)
    env = child_env(tmp_path / "effects.db", step_sleep=0)
    run = spawn("run", [*CLI, "run", "flow.py:wf", "--input", "{}", "--store", durable_url], env)
    async with opened(durable_url) as store:

        async def napping() -> bool:
            found = await store.list_executions(status=["waiting"])
            return bool(found) and bool(await store.waits(found[0].id))

        await wait_until(napping, "the run to park on its timer", timeout=20, alive=[run])
        run.send(signal.SIGKILL)
        run.wait(10)
        [record] = await store.list_executions()
        [timer] = await store.waits(record.id)
        assert timer.deadline is not None
        time.sleep(max(0.0, timer.deadline - time.time()) + 0.2)

        resume = subprocess.run(
            [*CLI, "resume", "--store", durable_url, "--idle-timeout", "10"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert resume.returncode == 0, resume.stdout + resume.stderr
        assert "resumed 1 execution(s): 1 completed" in resume.stdout, resume.stdout
        done = await store.get(record.id)
        assert done is not None
        assert done.status == "completed"
        assert json.loads(done.state)["log"] == ["before", "after"]

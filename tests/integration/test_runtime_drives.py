"""An application's own ``Runtime`` (scope ``own``) keeps its executions
moving until they end or it closes: a wait's timeout fires, a timer rings,
a signal — in-process or from another process through the store — moves a
parked execution on, without another ``run``. Parked executions cost the
claim rounds nothing but a sweep; ended ones are let go.

(A walk found an execution still ``waiting`` 4 s after its 1 s timeout with
the Runtime open, and one ``running`` after a signal with nothing running it.)
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from agent_node import Runtime, Workflow, close_shared_runtimes
from agent_node.runtime import shared_runtime
from agent_node.store.memory import MemoryStore
from agent_node.store.records import TERMINAL, Claim, ExecutionRecord
from agent_node.workflow.loading import load_workflow


class Approval(BaseModel):
    decision: dict[str, Any] | None = None
    status: str = "new"


def approval(name: str, timeout: float = 600) -> Workflow:
    wf = Workflow(name, version="1")
    wf.state(Approval)
    wf.wait("approve", event="decision", output="decision", timeout=timeout, on_timeout="expired")

    @wf.step(next=None)
    async def approved(s: Approval) -> dict[str, Any]:
        return {"status": "approved"}

    @wf.step(next=None)
    async def expired(s: Approval) -> dict[str, Any]:
        return {"status": "expired"}

    return wf


async def settled(rt: Runtime, execution_id: str, within: float) -> ExecutionRecord:
    """The execution's row once it ended, read from the store (no waiter of the
    engine's: what an application polling its store sees)."""
    deadline = time.monotonic() + within
    while True:
        record = await rt.store.get(execution_id)
        assert record is not None
        if record.status in TERMINAL or time.monotonic() > deadline:
            return record
        await asyncio.sleep(0.05)


async def test_a_wait_timeout_fires_while_the_runtime_is_open(store_url: str) -> None:
    wf = approval("timeout", timeout=0.3)
    async with Runtime(store_url, poll_interval=0.2) as rt:
        parked = await rt.run(wf.compile(), Approval())
        assert parked.status == "waiting"
        record = await settled(rt, parked.execution_id, within=5)
        assert record.status == "completed", record
        assert '"status":"expired"' in record.state.replace(" ", "")


async def test_a_signal_moves_a_parked_execution_on_without_another_run(store_url: str) -> None:
    wf = approval("signalled")
    async with Runtime(store_url, poll_interval=0.2) as rt:
        parked = await rt.run(wf.compile(), Approval())
        assert parked.status == "waiting"
        await rt.engine.control.signal(parked.execution_id, "decision", {"ok": True})
        record = await settled(rt, parked.execution_id, within=5)
        assert record.status == "completed", record
        assert '"status":"approved"' in record.state.replace(" ", "")


async def test_an_execution_started_and_left_runs_its_timers_to_the_end(store_url: str) -> None:
    wf = Workflow("napping", version="1")

    class Naps(BaseModel):
        naps: int = 0

    wf.state(Naps)

    @wf.step
    async def first(s: Naps) -> dict[str, Any]:
        return {"naps": s.naps + 1}

    wf.wait("nap", duration=0.2)

    @wf.step(next=None)
    async def again(s: Naps) -> dict[str, Any]:
        return {"naps": s.naps + 1}

    async with Runtime(store_url, poll_interval=0.2) as rt:
        execution_id = await rt.start_execution(wf.compile(), Naps())
        record = await settled(rt, execution_id, within=5)
        assert record.status == "completed", record
        assert '"naps":2' in record.state.replace(" ", "")


YAML_APPROVAL = """\
workflow:
  id: approval-yaml
  version: "1"
  start: approve
  state_schema: {got: {type: object}}
nodes:
  approve: {type: wait, event: decision, output: got, next: done}
  done: {type: end}
"""


@pytest.mark.slow
async def test_a_signal_from_another_process_moves_it_on(durable_url: str, tmp_path: Path) -> None:
    url = durable_url
    path = tmp_path / "approval.yaml"
    path.write_text(YAML_APPROVAL)
    async with Runtime(url, poll_interval=0.2) as rt:
        parked = await rt.run(load_workflow(str(path)), {})
        assert parked.status == "waiting"
        command = [sys.executable, "-m", "agent_node.cli.main", "signal", parked.execution_id]
        command += ["decision", "--data", '{"ok": true}', "--store", url]
        signalled = await asyncio.to_thread(
            subprocess.run, command, cwd=tmp_path, capture_output=True, text=True, timeout=60
        )
        assert signalled.returncode == 0, signalled.stderr
        record = await settled(rt, parked.execution_id, within=5)
        assert record.status == "completed", record
        assert '"got":{"ok":true}' in record.state.replace(" ", "")


class ClaimsSeen(MemoryStore):
    """A memory store that notes how many executions each claim was scoped to."""

    def __init__(self) -> None:
        super().__init__()
        self.scopes: list[int] = []

    async def claim(
        self, owner: str, *, execution_ids: Collection[str] | None = None, **rest: Any
    ) -> list[Claim]:
        self.scopes.append(-1 if execution_ids is None else len(execution_ids))
        return await super().claim(owner, execution_ids=execution_ids, **rest)


async def test_parked_executions_cost_claim_rounds_nothing_and_ended_ones_are_let_go() -> None:
    store = ClaimsSeen()
    wf = approval("many").compile()
    quick = Workflow("quick", version="1")
    quick.state(Approval)
    quick.wait("nap", event="go")

    @quick.step(next=None)
    async def done(s: Approval) -> dict[str, Any]:
        return {"status": "done"}

    async with Runtime(store, poll_interval=0.3) as rt:
        parked = [(await rt.run(wf, Approval())).execution_id for _ in range(200)]
        store.scopes.clear()
        started = time.monotonic()
        for _ in range(20):  # rounds of claims: each a park and a signal
            other = await rt.run(quick.compile(), Approval())
            await rt.signal(other.execution_id, "go")
            assert (await rt.wait(other.execution_id)).status == "completed"
        spent = time.monotonic() - started
        sweeps = [n for n in store.scopes if n >= 100]
        assert all(0 < n <= 3 for n in store.scopes if n < 100), store.scopes
        assert len(sweeps) <= spent / 0.3 + 2, (len(sweeps), spent)
        for execution_id in parked:
            assert await rt.cancel(execution_id, "enough")
        await asyncio.sleep(0.1)
        store.scopes.clear()
        await asyncio.sleep(0.8)  # two sweeps' time: none has anything left to claim for
        assert all(n < 100 for n in store.scopes), store.scopes


async def test_workflow_run_keeps_driving_on_the_shared_runtime(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/shared.db"
    wf = approval("shared", timeout=0.3)
    wf.store = url
    try:
        parked = await wf.run(Approval())
        assert parked.status == "waiting"
        record = await settled(await shared_runtime(url), parked.execution_id, within=5)
        assert record.status == "completed", record
        assert '"status":"expired"' in record.state.replace(" ", "")
    finally:
        await close_shared_runtimes()

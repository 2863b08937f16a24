"""Leases outlive neither their owner nor their task."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from pydantic import BaseModel

from agent_node import Runtime, Workflow
from agent_node.errors import StoreError
from agent_node.store.base import Plan
from agent_node.store.memory import MemoryStore
from agent_node.store.txn import Fence


class LosesOneCommit(MemoryStore):
    """A store whose connection drops during the first fenced commit."""

    def __init__(self) -> None:
        super().__init__()
        self.dropped = False

    async def apply(
        self,
        execution_id: str,
        plan: Plan[Any],
        *,
        fence: Fence | None = None,
        **options: Any,
    ) -> Any:
        if fence is not None and fence.node == "flaky" and not self.dropped:
            self.dropped = True
            raise StoreError("connection lost")
        return await super().apply(execution_id, plan, fence=fence, **options)


class S(BaseModel):
    done: bool = False


async def test_a_lease_whose_task_died_is_released_by_the_heartbeat() -> None:
    wf = Workflow("leases", version="1")
    wf.state(S)

    @wf.step(next=None)
    async def flaky(s: S) -> dict[str, Any]:
        return {"done": True}

    slow = Workflow("slow", version="1")
    slow.state(S)

    @slow.step
    async def nap(s: S) -> S:
        await asyncio.sleep(3)
        return s

    store = LosesOneCommit()
    async with Runtime(store, lease_ttl=0.3, poll_interval=0.05) as runtime:
        busy = asyncio.create_task(runtime.run(slow.compile(), S()))  # keeps the heartbeat beating
        started = time.monotonic()
        result = await runtime.run(wf.compile(), S())
        elapsed = time.monotonic() - started
        await busy
    assert store.dropped
    assert result.status == "completed" and result.state == S(done=True)
    attempts = [e.attempt for e in result.events if e.kind == "node_started"]
    assert attempts == [1, 2]
    assert elapsed < 2.0  # released by the heartbeat, not after the slow node ended


async def test_a_node_that_keeps_killing_its_worker_fails_instead_of_looping(tmp_path: Any) -> None:
    from agent_node.engine.runner import CRASH_ALLOWANCE
    from agent_node.store.records import WorkItem

    wf = Workflow("poison", version="1")
    wf.state(S)
    ran: list[int] = []

    @wf.step(next=None)
    async def poison(s: S) -> S:
        ran.append(1)
        return s

    async with Runtime(f"sqlite:///{tmp_path}/s.db", poll_interval=0.05) as runtime:
        compiled = wf.compile()
        execution_id, _, _ = await runtime.engine.control.create(compiled, S(), "poison-1")
        # As if CRASH_ALLOWANCE + 1 workers had died inside it, one after another.
        crashed = WorkItem(execution_id, "poison", 1, CRASH_ALLOWANCE + 1, 0.0, None, None, 11)
        await runtime.store.apply(execution_id, lambda txn: txn.put_work(crashed))
        result = await runtime.run(compiled, execution_id=execution_id)
    assert ran == []
    assert result.status == "failed"
    assert result.error == (
        f"node 'poison' failed: node 'poison' was interrupted {CRASH_ALLOWANCE + 1} times"
        " (its worker died or lost its lease each time); not starting it again"
    )


async def test_heartbeats_racing_commits_never_stop_healthy_nodes(
    durable_url: str, caplog: Any
) -> None:
    """Heartbeats every 0.1 s while a chain of quick nodes commits and moves
    on: a lease that changed hands to the next node mid-heartbeat is not lost."""
    import logging

    wf = Workflow("chain", version="1")
    wf.state(S)
    for index in range(400):

        async def step(s: S) -> None:
            await asyncio.sleep(0.002)

        step.__name__ = f"s{index}"
        wf.step(step)

    caplog.set_level(logging.WARNING, logger="agent_node.engine")
    async with Runtime(durable_url, lease_ttl=0.3, poll_interval=0.05) as runtime:
        result = await asyncio.wait_for(runtime.run(wf.compile(), S()), 60)
    assert result.status == "completed"
    assert [r.message for r in caplog.records if "lost the lease" in r.message] == []


async def test_a_node_whose_lease_was_taken_over_is_stopped(durable_url: str) -> None:
    import time as clock
    from dataclasses import replace

    wf = Workflow("stolen", version="1")
    wf.state(S)
    entered = asyncio.Event()
    stopped: list[float] = []

    @wf.step
    async def slow(s: S) -> S:
        entered.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            stopped.append(clock.monotonic())
            raise
        return s

    async with Runtime(durable_url, lease_ttl=0.3, poll_interval=0.05) as runtime:
        execution_id = await runtime.start_execution(wf.compile(), S())
        await asyncio.wait_for(entered.wait(), 10)
        (item,) = await runtime.store.work(execution_id)
        thief = replace(item, lease_owner="thief", fence=item.fence + 1, lease_expires_at=1e12)
        await runtime.store.apply(execution_id, lambda txn: txn.put_work(thief))
        taken = clock.monotonic()
        for _ in range(200):
            if stopped:
                break
            await asyncio.sleep(0.01)
        assert stopped and stopped[0] - taken < 1.0  # two heartbeats, 0.1 s apart
        (still,) = await runtime.store.work(execution_id)
        assert still.lease_owner == "thief"  # we stopped; we did not release its lease

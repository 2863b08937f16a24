"""The queue's gauges say what can be claimed: a visit whose lease lapsed (its
process killed, or stopped without releasing it) is ready work, not leased
work (found by an operator's walk: stuck work read ``work_ready 0``,
``work_leased 5``, whatever its age)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from pydantic import BaseModel

from agent_node import Runtime, Workflow

HOLD = asyncio.Event()


class Empty(BaseModel):
    n: int = 0


def holding() -> Workflow:
    wf = Workflow("holding", version="1")
    wf.state(Empty)

    @wf.step
    async def hold(state: Empty) -> dict[str, Any]:
        await HOLD.wait()
        return {"n": 1}

    return wf


async def test_a_lapsed_lease_is_ready_work(store_url: str) -> None:
    runtime = Runtime(store_url, scope="all", lease_ttl=0.6, heartbeat=False)
    await runtime.start()
    try:
        workflow = holding().compile()
        await runtime.engine.submit(workflow, Empty())
        store = runtime.store
        for _ in range(100):
            if runtime.engine.running_visits:
                break
            await asyncio.sleep(0.02)
        held = await store.gauges(time.time())
        assert (held.ready, held.leased) == (0, 1), held
        await runtime.engine.abandon()  # as if killed: the lease stays, then lapses
        await asyncio.sleep(0.8)
        now = time.time()
        lapsed = await store.gauges(now)
        assert (lapsed.ready, lapsed.leased) == (1, 0), lapsed
        assert lapsed.oldest_ready_at is not None
        assert 0.0 <= now - lapsed.oldest_ready_at < 1.0, now - lapsed.oldest_ready_at
    finally:
        await runtime.store.close()

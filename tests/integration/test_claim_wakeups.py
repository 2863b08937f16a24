"""The claim loop wakes as soon as a slot frees for work that is left, also
when the tasks holding every slot end in the same moment (a group commit
answers hundreds of them at once)."""

from __future__ import annotations

import asyncio

from pydantic import BaseModel

from agent_node import Runtime, Workflow


class S(BaseModel):
    n: int = 0


async def test_tasks_that_end_together_wake_the_claim_loop_for_the_work_left() -> None:
    release = asyncio.Event()
    started = 0
    wf = Workflow("together", version="1")
    wf.state(S)

    @wf.step(next=None)
    async def hold(s: S) -> None:
        nonlocal started
        started += 1
        await release.wait()

    compiled = wf.compile()
    # A poll a minute away: only a wake-up can claim the work left in time.
    async with Runtime("memory://", scope="all", concurrency=4, poll_interval=60) as rt:
        ids = [(await rt.engine.submit(compiled, S(), run_here=False))[0] for _ in range(8)]
        async with asyncio.timeout(5):
            while started < 4:
                await asyncio.sleep(0.01)
        release.set()  # the four running visits end together
        async with asyncio.timeout(5):
            for execution_id in ids:
                record = await rt.engine.wait(execution_id, until="terminal")
                assert record.status == "completed"
    assert started == 8

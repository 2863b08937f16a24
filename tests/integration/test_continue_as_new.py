"""An execution that continues as new (``continue_as_new``) starts over with
a new input under the same id, keeps the log of its last run only, never
reuses a visit's idempotency key, and ends its other paths — on every store,
with a small state in its row and a large one in a snapshot."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import BaseModel

from agent_node import Runtime, Workflow, continue_as_new
from agent_node.engine.context import current_node

ROUNDS = 4
TICKS = 3


class Counter(BaseModel):
    round: int = 0
    n: int = 0
    pad: str = ""
    seen: list[str] = []


def counting(pad: int, keys: list[str]) -> Any:
    wf = Workflow("forever", version="1")
    wf.state(Counter)

    def route(s: Counter) -> str:
        return "tick" if s.n < TICKS else "again"

    @wf.step(next=route, routes=["tick", "again"])
    async def tick(s: Counter) -> Counter:
        keys.append(current_node().idempotency_key)
        return s.model_copy(update={"n": s.n + 1, "seen": [*s.seen, f"{s.round}.{s.n}"]})

    @wf.step(next=None)
    async def again(s: Counter) -> Any:
        if s.round + 1 < ROUNDS:
            return continue_as_new(Counter(round=s.round + 1, pad="x" * pad))
        return s

    return wf.compile()


@pytest.mark.parametrize("pad", [0, 50_000], ids=["row", "snapshot"])
async def test_a_run_continued_as_new_keeps_its_id_and_the_log_of_its_last_run(
    store_url: str, pad: int
) -> None:
    keys: list[str] = []
    async with Runtime(store_url) as runtime:
        result = await runtime.run(counting(pad, keys), Counter(pad="y" * pad))
        assert result.status == "completed"
        # The last run's state: its input (a new one each round), then its own steps.
        assert (result.state.round, result.state.n) == (ROUNDS - 1, TICKS)
        assert result.state.seen == [f"{ROUNDS - 1}.{n}" for n in range(TICKS)]
        assert result.state.pad == "x" * pad
        # Every visit ran once, under a key never used before.
        assert len(keys) == ROUNDS * TICKS and len(set(keys)) == len(keys)
        assert keys[-1] == f"{result.execution_id}/tick/{ROUNDS * TICKS}"
        # The log holds the last run only: its input first.
        events = await runtime.store.events(result.execution_id)
        assert events[0].kind == "execution_restarted"
        assert [e.kind for e in events].count("execution_restarted") == 1
        assert events[-1].kind == "execution_completed"
        ticks = [e for e in events if e.kind == "node_started" and e.node == "tick"]
        assert len(ticks) == TICKS
        # Reading the state back rebuilds it from the run's own base.
        record = await runtime.store.get(result.execution_id)
        assert record is not None and Counter.model_validate_json(record.state) == result.state


async def test_continuing_as_new_ends_the_run_s_other_paths(store_url: str) -> None:
    wf = Workflow("fork", version="1")
    wf.state(Counter)
    wf.parallel("split", branches=["restart", "park"], join="joined")

    parked_first: list[bool] = []

    @wf.step(next="joined")
    async def restart(s: Counter) -> Any:
        if s.round == 0:
            # Restart only once the other branch has parked, however slow the machine.
            execution_id = current_node().execution_id
            async with asyncio.timeout(30):
                while not await runtime.store.waits(execution_id):
                    await asyncio.sleep(0.01)
            parked_first.append(True)
            return continue_as_new(Counter(round=1))
        return s

    wf.wait("park", event="never", next="joined")
    wf.join("joined", next=None)
    async with Runtime(store_url) as runtime:
        compiled = wf.compile()
        execution_id, _ = await runtime.engine.submit(compiled, Counter())
        async with asyncio.timeout(30):  # the second run parks again on "never"
            while True:
                # The log first: a wait read after the restart is logged is
                # the new run's (the restart drops the old run's with it).
                events = await runtime.store.events(execution_id)
                waits = await runtime.store.waits(execution_id)
                if waits and any(e.kind == "execution_restarted" for e in events):
                    break
                await asyncio.sleep(0.02)
        assert parked_first == [True]
        waits = await runtime.store.waits(execution_id)
        # One wait: the new run's, not the first run's left behind.
        assert [(w.node, w.visit) for w in waits] == [("park", 2)]
        record = await runtime.store.get(execution_id)
        assert record is not None and Counter.model_validate_json(record.state).round == 1

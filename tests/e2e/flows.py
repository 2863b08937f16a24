"""The workflow the end-to-end tests run in real processes, loaded by path
(``<abs path>/flows.py:five_steps``).

Every step body records itself in the :class:`Effects` side table named by
``AGENT_NODE_TEST_EFFECTS`` and then sleeps ``AGENT_NODE_TEST_STEP_SLEEP``
seconds, so a test can watch progress from outside and stop or kill the
process while a body runs.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os

from pydantic import BaseModel
from support.effects import Effects

from agent_node import Workflow


class Trail(BaseModel):
    item: int = 0
    steps: list[str] = []


@functools.cache
def _effects(path: str) -> Effects:
    return Effects(path)


async def _body(state: Trail, name: str) -> Trail:
    _effects(os.environ["AGENT_NODE_TEST_EFFECTS"]).record()
    await asyncio.sleep(float(os.environ.get("AGENT_NODE_TEST_STEP_SLEEP", "0.005")))
    return state.model_copy(update={"steps": [*state.steps, name]})


five_steps = Workflow("five-steps", version="1")
five_steps.state(Trail)


@five_steps.step
async def step1(state: Trail) -> Trail:
    return await _body(state, "step1")


@five_steps.step
async def step2(state: Trail) -> Trail:
    return await _body(state, "step2")


@five_steps.step
async def step3(state: Trail) -> Trail:
    return await _body(state, "step3")


@five_steps.step
async def step4(state: Trail) -> Trail:
    return await _body(state, "step4")


@five_steps.step
async def step5(state: Trail) -> Trail:
    return await _body(state, "step5")


noisy = Workflow("noisy", version="1")
noisy.state(Trail)


@noisy.step
async def speak(state: Trail) -> Trail:
    """Logs a line from inside a node (what JSON logs must place), then fails
    when the item asks it to."""
    logging.getLogger("flows.noisy").warning("speaking for item %d", state.item)
    if state.item < 0:
        raise ValueError("negative items are refused")
    return state


class Log(BaseModel):
    item: int = 0
    n: int = 0
    lines: list[str] = []


#: Steps of ``growing``; each appends a line of about 1 KB, so its state
#: outgrows the execution's row and is kept as a snapshot and patches.
GROWING_STEPS = 100


def growing_line(item: int, n: int) -> str:
    return f"{item}:{n:03d}:" + "x" * 1000


growing = Workflow("growing", version="1")
growing.state(Log)


@growing.step(
    next=lambda state: "grow" if state.n < GROWING_STEPS else None,
    routes=["grow"],
)
async def grow(state: Log) -> dict[str, object]:
    _effects(os.environ["AGENT_NODE_TEST_EFFECTS"]).record()
    await asyncio.sleep(float(os.environ.get("AGENT_NODE_TEST_STEP_SLEEP", "0.005")))
    return {"n": state.n + 1, "lines": [*state.lines, growing_line(state.item, state.n)]}

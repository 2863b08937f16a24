"""Crash at each named fault point, recover, and prove nothing ran twice.

A crash here is :class:`InjectedCrash` (a BaseException the engine never
catches): the engine stops with its leases held, exactly like a killed
process. A new runtime on the same store plays the restarted process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from support.checks import assert_well_formed
from support.effects import Effects

from agent_node import Runtime, Workflow
from agent_node.engine import faults
from agent_node.engine.faults import InjectedCrash
from agent_node.store import Store, store_from_url


class Order(BaseModel):
    steps: list[str] = []
    approval: dict[str, Any] | None = None


def order_workflow(effects: Effects) -> Workflow:
    wf = Workflow("order", version="1")
    wf.state(Order)

    async def body(state: Order, name: str) -> Order:
        effects.record()
        return state.model_copy(update={"steps": [*state.steps, name]})

    @wf.step
    async def reserve(s: Order) -> Order:
        return await body(s, "reserve")

    @wf.step
    async def charge(s: Order) -> Order:
        return await body(s, "charge")

    wf.wait("approve", event="approved", output="approval")

    @wf.step
    async def ship(s: Order) -> Order:
        return await body(s, "ship")

    return wf


async def fresh_runtime(store: Store) -> Runtime:
    runtime = Runtime(store, poll_interval=0.05)
    await runtime.start()
    return runtime


@pytest.mark.parametrize(
    ("point", "node"),
    [
        ("after_create", None),
        ("after_claim", "reserve"),
        ("after_claim", "ship"),
        ("after_effect", "charge"),
        ("after_effect", "ship"),
        ("after_commit", "reserve"),
        ("after_commit", "charge"),
        ("in_wait_resolution", None),
        ("after_wait_resolution", None),
    ],
)
async def test_crash_at_fault_point_then_recover(
    point: str, node: str | None, store_url: str, tmp_path: Path
) -> None:
    effects = Effects(tmp_path / "effects.db")
    wf = order_workflow(effects).compile()
    store = store_from_url(store_url)
    first = await fresh_runtime(store)
    execution_id = "order-1"
    faults.arm(point, node=node)
    with pytest.raises(InjectedCrash):
        parked = await first.run(wf, Order(), execution_id=execution_id)
        assert parked.status == "waiting"
        await first.engine.control.signal(execution_id, "approved", {"by": "ops"})
        await first.run(wf, execution_id=execution_id)
    await first.engine.abandon()  # the process is gone: its leases stay held

    second = await fresh_runtime(store)
    try:
        result = await second.run(wf, execution_id=execution_id)
        if result.status == "waiting":
            await second.engine.control.signal(execution_id, "approved", {"by": "ops"})
            result = await second.run(wf, execution_id=execution_id)
    finally:
        await second.close()

    assert result.status == "completed", result.error
    assert result.state == Order(steps=["reserve", "charge", "ship"], approval={"by": "ops"})
    assert_well_formed(result.events)
    keys = [f"{execution_id}/{n}/1" for n in ("reserve", "charge", "ship")]
    assert effects.effects() == {key: 1 for key in keys}
    expected_runs = {key: 1 for key in keys}
    if point == "after_effect":
        expected_runs[f"{execution_id}/{node}/1"] = 2  # ran, crashed before commit, ran again
    assert effects.invocations() == expected_runs
    if point == "after_claim":
        # The interrupted attempt shows up; the body ran only in the next one.
        assert effects.attempts()[f"{execution_id}/{node}/1"] == [2]


async def test_faults_are_inert_unless_armed(tmp_path: Path) -> None:
    effects = Effects(tmp_path / "effects.db")
    wf = order_workflow(effects)
    faults.arm("after_claim", node="not-a-node")
    result = await wf.run(Order(), store="memory://")
    assert result.status == "waiting"
    with pytest.raises(ValueError, match="unknown fault point"):
        faults.arm("nowhere")

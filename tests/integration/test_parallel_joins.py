"""A join that can never fire fails its execution, on every store.

The compiler refuses a parallel whose branch can stop before its join, but
a workflow compiled before it did may still run: these build their IR past
that check. A walk found the execution then "waiting" for good, with no
wait, no work and nothing to resume (or, the other way round, completed
without its join ever running).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import BaseModel

from agent_node import Runtime
from agent_node.engine.context import current_node
from agent_node.workflow.compiled import CompiledWorkflow, StepFn
from agent_node.workflow.compiler import compile_workflow
from agent_node.workflow.ir import WorkflowIR, parse_node


class Trail(BaseModel):
    out: str = ""


def unchecked(nodes: dict[str, dict[str, Any]], functions: dict[str, StepFn]) -> CompiledWorkflow:
    """The workflow as it compiled before branches had to reach their join."""
    specs = {node_id: parse_node(node_id, raw) for node_id, raw in nodes.items()}
    schema = Trail.model_json_schema()
    ir = WorkflowIR(id="starved", version="1", state_schema=schema, start="a", nodes=specs)
    return CompiledWorkflow(ir=ir, state_model=Trail, functions=functions)


async def after(state: Trail) -> dict[str, str]:
    return {"out": "after ran"}


#: The walk's parallel_lost_join.yaml, its branch node ``b1`` gone to
#: ``side`` (a timer without ``next``): ``side`` ends first, ``b2`` then
#: arrives at ``j`` alone.
TIMERS = {
    "a": {"type": "parallel", "branches": ["side", "b2"], "join": "j"},
    "side": {"type": "wait", "duration": 0.05},
    "b2": {"type": "wait", "duration": 0.3, "next": "j"},
    "j": {"type": "join", "next": "after"},
    "after": {"type": "python", "next": "done"},
    "done": {"type": "end"},
}
#: ``stops`` has no ``next``; ``arrives`` goes to ``j``.
STEPS = {
    **TIMERS,
    "a": {"type": "parallel", "branches": ["stops", "arrives"], "join": "j"},
    "stops": {"type": "python"},
    "arrives": {"type": "python", "next": "j"},
}
del STEPS["side"], STEPS["b2"]


def in_order(runtime: Runtime, first: str, second: str) -> dict[str, StepFn]:
    """The steps of :data:`STEPS`, ``second`` done only once ``first`` is."""

    async def goes_first(state: Trail) -> None:
        return None

    async def goes_second(state: Trail) -> None:
        execution_id = current_node().execution_id
        while not any(
            e.kind == "node_completed" and e.node == first
            for e in await runtime.store.events(execution_id)
        ):
            await asyncio.sleep(0.01)

    return {first: goes_first, second: goes_second, "after": after}


@pytest.mark.parametrize("order", ["timers", "the stopped branch first", "the join first"])
async def test_a_join_no_branch_can_reach_any_more_fails_the_execution(
    store_url: str, runtime_factory: Any, order: str
) -> None:
    runtime: Runtime = await runtime_factory(store_url)
    if order == "timers":
        workflow = unchecked(TIMERS, {"after": after})
    elif order == "the stopped branch first":
        workflow = unchecked(STEPS, in_order(runtime, "stops", "arrives"))
    else:
        workflow = unchecked(STEPS, in_order(runtime, "arrives", "stops"))
    async with asyncio.timeout(30):  # it hung here for good
        result = await runtime.run(workflow, Trail())
    assert result.status == "failed"
    assert result.error == (
        "join 'j' can never fire: 1 of its 2 branch(es) arrived, and no other branch is"
        " running or waiting (a branch stopped before its join)"
    )
    assert "after" not in [r.node for r in result.timeline]
    assert result.events[-1].kind == "execution_failed"
    assert await runtime.store.work(result.execution_id) == []
    assert await runtime.store.waits(result.execution_id) == []


async def test_a_branch_at_its_join_while_the_other_waits_leaves_the_execution_waiting(
    store_url: str, runtime_factory: Any
) -> None:
    """A valid workflow. The execution said "running" once the step's
    branch reached the join after the other had parked: ``run`` did not
    return, and an A2A task never showed that it waited for its caller."""
    runtime: Runtime = await runtime_factory(store_url)
    nodes = {
        "a": {"type": "parallel", "branches": ["ask", "arrives"], "join": "j"},
        "ask": {"type": "wait", "event": "go", "next": "j"},
        "arrives": {"type": "python", "next": "j"},
        "j": {"type": "join", "next": "after"},
        "after": {"type": "python", "next": "done"},
        "done": {"type": "end"},
    }

    async def arrives(state: Trail) -> None:
        execution_id = current_node().execution_id
        while not await runtime.store.waits(execution_id):
            await asyncio.sleep(0.01)

    specs = unchecked(nodes, {}).ir
    workflow = compile_workflow(specs, Trail, functions={"arrives": arrives, "after": after})
    async with asyncio.timeout(30):
        parked = await runtime.run(workflow, Trail())
    assert parked.status == "waiting"
    await runtime.engine.control.signal(parked.execution_id, "go")
    async with asyncio.timeout(30):
        result = await runtime.run(workflow, execution_id=parked.execution_id)
    assert result.status == "completed", result.error
    assert result.state == Trail(out="after ran")

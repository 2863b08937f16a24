"""Stranded executions — going on by their status, with no work, wait or
delegation — are settled when an engine starts, on every store.

An older release left them so (a parallel branch that stopped before its
join: tests/e2e/test_stranded_upgrade.py runs that release). Here their
rows are written as it left them, through the store's own ``create``.
"""

from __future__ import annotations

import asyncio
import json
import time

from pydantic import BaseModel

from agent_node import Runtime
from agent_node.engine.stranded import settle_stranded
from agent_node.ids import new_id
from agent_node.store import Store, store_from_url
from agent_node.store.records import DelegationRecord, ExecutionRecord, WaitRecord, WorkItem
from agent_node.store.txn import Txn
from agent_node.workflow.compiled import CompiledWorkflow
from agent_node.workflow.compiler import compile_workflow
from agent_node.workflow.ir import WorkflowIR, parse_node

STARVED = (
    "join 'j' can never fire: 1 of its 2 branch(es) arrived, and no other branch is"
    " running or waiting (a branch stopped before its join)"
)


class Trail(BaseModel):
    out: str = ""


async def after(state: Trail) -> dict[str, str]:
    return {"out": "after ran"}


def joined() -> CompiledWorkflow:
    nodes = {
        "a": {"type": "parallel", "branches": ["b1", "b2"], "join": "j"},
        "b1": {"type": "wait", "duration": 0.01, "next": "j"},
        "b2": {"type": "wait", "duration": 0.01, "next": "j"},
        "j": {"type": "join", "next": "after"},
        "after": {"type": "python", "next": "done"},
        "done": {"type": "end"},
    }
    specs = {node_id: parse_node(node_id, raw) for node_id, raw in nodes.items()}
    schema = Trail.model_json_schema()
    ir = WorkflowIR(id="joined", version="1", state_schema=schema, start="a", nodes=specs)
    return compile_workflow(ir, Trail, functions={"after": after})


async def strand(
    store: Store,
    status: str = "waiting",
    joins: dict[str, list[int]] | None = None,
    *,
    left: str = "",
    created_at: float | None = None,
) -> str:
    """An execution of :func:`joined` as the old release left it: ``status``
    with open ``joins`` (one branch of ``j`` arrived, by default) and, as
    ``left`` says, a wait, a work item or a delegation still there."""
    execution_id = new_id()
    now = created_at if created_at is not None else time.time()
    later = now + 3600  # a work item or a poll not due while the test runs
    record = ExecutionRecord(
        execution_id,
        "joined",
        "1",
        None,
        "pending",
        '{"out":""}',
        "",
        0,
        None,
        None,
        None,
        now,
        now,
    )
    cursor = {"v": {"a": 1, "b1": 1, "b2": 1}, "j": {"j": [2, 1]} if joins is None else joins}

    def plan(txn: Txn) -> None:
        txn.event("execution_started", data='{"workflow":"joined@1","input":{"out":""}}')
        txn.input_logged = True
        txn.event("node_completed", "a", 1, data='{"next":["b1","b2"]}')
        txn.execution.status = status  # type: ignore[assignment]
        txn.execution.cursor = json.dumps(cursor, separators=(",", ":"))
        if left == "wait":
            txn.put_wait(WaitRecord(execution_id, "b1", 1, "event", "go", None))
        elif left == "work":
            txn.put_work(WorkItem(execution_id, "b1", 1, 0, later, None, None, 0))
        elif left == "delegation":
            row = DelegationRecord(execution_id, "b1", 1, "peer", "t1", "", "", None, now, later)
            txn.put_delegation(row)

    await store.create(record, plan)
    return execution_id


async def opened(url: str) -> Store:
    store = store_from_url(url)
    await store.open()
    return store


async def test_an_engine_that_starts_fails_a_stranded_execution_naming_its_join(
    store_url: str,
) -> None:
    runtime = Runtime(store_url, scope="all")  # a node's, a worker's, resume's
    await runtime.store.open()
    waiting = await strand(runtime.store, "waiting")
    running = await strand(runtime.store, "running")
    await runtime.start()
    try:
        for execution_id in (waiting, running):
            record = await runtime.store.get(execution_id)
            assert record is not None
            assert (record.status, record.error) == ("failed", STARVED)
            events = await runtime.store.events(execution_id)
            assert events[-1].kind == "execution_failed"
            assert json.loads(events[-1].data or "{}") == {"error": STARVED}
            assert await runtime.store.work(execution_id) == []
            assert await runtime.store.waits(execution_id) == []
    finally:
        await runtime.close()


async def test_a_stranded_join_whose_branches_all_arrived_goes_on(store_url: str) -> None:
    runtime = Runtime(store_url, scope="all")  # a node's, a worker's, resume's
    runtime.workflows.add(joined())
    await runtime.store.open()
    execution_id = await strand(runtime.store, "waiting", {"j": [2, 2]})
    await runtime.start()
    try:
        runtime.engine.drive(execution_id)
        async with asyncio.timeout(30):
            record = await runtime.engine.wait(execution_id, until="terminal")
        assert record.status == "completed", record.error
        assert json.loads((await runtime.store.get(execution_id) or record).state) == {
            "out": "after ran"
        }
        ran = [e.node for e in await runtime.store.events(execution_id) if e.kind == "node_started"]
        assert ran == ["j", "after", "done"]
    finally:
        await runtime.close()


async def test_executions_with_something_left_are_not_touched(store_url: str) -> None:
    store = await opened(store_url)
    try:
        kept = [
            await strand(store, "waiting", left="wait"),
            await strand(store, "running", left="work"),
            await strand(store, "waiting", left="delegation"),
            await strand(store, "completed"),
            await strand(store, "pending"),
        ]
        before = [await store.get(i) for i in kept]
        assert await settle_stranded(store) == []
        assert [await store.get(i) for i in kept] == before
    finally:
        await store.close()


async def test_the_sweep_reads_pages_and_settles_each_stranded_one(store_url: str) -> None:
    store = await opened(store_url)
    try:
        at = time.time()
        stranded, kept = [], []
        for n in range(7):  # some created at the same time: the id breaks the tie
            stranded.append(await strand(store, "waiting", created_at=at + n // 2))
            kept.append(await strand(store, "waiting", left="wait", created_at=at + n // 2))
        first = await store.stranded("waiting", None, 3)
        assert first.next is not None
        assert set(first.ids) <= set(stranded)
        settled = await settle_stranded(store, page=3)
        assert sorted(r.id for r in settled) == sorted(stranded)
        assert {r.status for r in settled} == {"failed"}
        for execution_id in kept:
            assert (await store.get(execution_id) or settled[0]).status == "waiting"
        assert (await store.stranded("waiting", None, 100)).ids == []
    finally:
        await store.close()


async def test_processes_starting_together_settle_each_execution_once(
    durable_url: str,
) -> None:
    """Two stores on one database (two processes' connections): one settles
    each execution, the other finds it settled."""
    first, second = await opened(durable_url), await opened(durable_url)
    try:
        ids = [await strand(first, "waiting") for _ in range(30)]
        mine, theirs = await asyncio.gather(
            settle_stranded(first, page=7), settle_stranded(second, page=7)
        )
        assert sorted(r.id for r in [*mine, *theirs]) == sorted(ids)
        for execution_id in ids:
            kinds = [e.kind for e in await first.events(execution_id)]
            assert kinds.count("execution_failed") == 1, kinds
    finally:
        await first.close()
        await second.close()


async def test_an_in_process_run_s_engine_leaves_the_store_s_others_be(store_url: str) -> None:
    """``Workflow.run`` and an app's ``Runtime`` drive their own executions:
    starting one reads no page of the store's others (a node, a worker or
    ``resume`` settles them)."""
    runtime = Runtime(store_url)
    await runtime.store.open()
    waiting = await strand(runtime.store, "waiting")
    await runtime.start()
    try:
        record = await runtime.store.get(waiting)
        assert record is not None and record.status == "waiting", record
        assert runtime.engine.settled == []
    finally:
        await runtime.close()

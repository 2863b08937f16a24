"""Commit observers (metrics, traces) hear what each commit wrote, on every
store: after the commit, in order, and nothing from a transaction that
failed."""

from __future__ import annotations

import time
from collections.abc import Sequence

import pytest

from agent_node.errors import Fenced
from agent_node.store import Store, Txn
from agent_node.store.base import Fence
from agent_node.store.records import EventRecord, ExecutionRecord, WorkItem


def _record(execution_id: str) -> ExecutionRecord:
    now = time.time()
    return ExecutionRecord(
        execution_id, "wf", "1", None, "pending", "{}", "", 0, None, None, None, now, now
    )


async def test_observers_hear_each_commit_with_its_events(store: Store) -> None:
    heard: list[tuple[str, str, list[str]]] = []

    def observer(execution: ExecutionRecord, events: Sequence[EventRecord]) -> None:
        heard.append((execution.id, execution.status, [e.kind for e in events]))

    stop = store.observe(observer)

    def start(txn: Txn) -> None:
        txn.event("execution_started", data='{"input":{}}')
        txn.put_work(WorkItem("obs-1", "a", 1, 0, 0.0, None, None, 0))

    await store.create(_record("obs-1"), start)

    def claimed(txn: Txn, items: object) -> None:
        txn.event("node_started", "a", 1, 1)
        txn.execution.status = "running"

    now = time.time()
    claims = await store.claim("w", now=now, lease_until=now + 30, limit=5, plan=claimed)
    assert [c.work.node for c in claims] == ["a"]

    def bad(txn: Txn) -> None:
        txn.event("node_completed", "a", 1)

    with pytest.raises(Fenced):  # a zombie's write: nothing committed, nothing heard
        await store.apply("obs-1", bad, fence=Fence("a", 1, 99, "w"))

    def done(txn: Txn) -> None:
        txn.event("node_completed", "a", 1, data='{"duration":0.5}')
        txn.event("execution_completed", data="{}")
        txn.delete_work("a", 1)
        txn.execution.status = "completed"

    item = claims[0].work
    await store.apply("obs-1", done, fence=Fence("a", 1, item.fence, "w"))
    stop()
    await store.apply("obs-1", lambda txn: txn.event("note"))
    assert heard == [
        ("obs-1", "pending", ["execution_started"]),
        ("obs-1", "running", ["node_started"]),
        ("obs-1", "completed", ["node_completed", "execution_completed"]),
    ]


async def test_a_failing_observer_does_not_fail_the_write(store: Store) -> None:
    def broken(execution: ExecutionRecord, events: Sequence[EventRecord]) -> None:
        raise RuntimeError("observer bug")

    store.observe(broken)
    await store.create(_record("obs-2"), lambda txn: txn.event("execution_started"))
    assert (await store.get("obs-2")) is not None

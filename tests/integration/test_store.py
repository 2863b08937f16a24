"""One suite, three stores: memory, SQLite, PostgreSQL (when a URL is set)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from agent_node.errors import Fenced, UnknownExecution
from agent_node.store import Store, Txn, store_from_url
from agent_node.store.base import Fence
from agent_node.store.records import ExecutionRecord, WaitRecord, WorkItem


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    s = store_from_url(store_url)
    await s.open()
    yield s
    await s.close()


def record(execution_id: str, *, created: float | None = None) -> ExecutionRecord:
    now = created if created is not None else time.time()
    return ExecutionRecord(
        execution_id, "wf", "1", None, "pending", '{"x":1}', "", 0, None, None, None, now, now
    )


def ready(execution_id: str, node: str = "a", visit: int = 1, at: float = 0.0) -> WorkItem:
    return WorkItem(execution_id, node, visit, 0, at, None, None, 0)


async def create_with_work(store: Store, execution_id: str, *items: WorkItem) -> None:
    def plan(txn: Txn) -> None:
        txn.event("execution_started", data='{"input":{}}')
        for item in items:
            txn.put_work(item)
        txn.execution.status = "running"

    await store.create(record(execution_id), plan)


def noop_start(txn: Txn, items: object) -> None:
    txn.event("node_started")


async def test_create_then_apply_appends_contiguous_events(store: Store) -> None:
    await create_with_work(store, "e1")
    await store.apply("e1", lambda txn: txn.event("node_started", "a", 1, 1))
    await store.apply("e1", lambda txn: txn.event("node_completed", "a", 1, data='{"next":null}'))
    events = await store.events("e1")
    assert [(e.seq, e.kind) for e in events] == [
        (1, "execution_started"),
        (2, "node_started"),
        (3, "node_completed"),
    ]
    assert [e.seq for e in await store.events("e1", after=2)] == [3]
    stored = await store.get("e1")
    assert stored is not None and stored.last_seq == 3 and stored.status == "running"


async def test_create_with_an_existing_id_writes_nothing(store: Store) -> None:
    await create_with_work(store, "e1")
    again = await store.create(record("e1"), lambda txn: txn.event("execution_started"))
    assert again is None
    assert len(await store.events("e1")) == 1


async def test_a_plan_that_raises_leaves_nothing_behind(store: Store) -> None:
    await create_with_work(store, "e1")

    def bad(txn: Txn) -> None:
        txn.event("node_started", "a", 1, 1)
        txn.execution.state = '{"x":999}'
        txn.put_wait(WaitRecord("e1", "w", 1, "event", "go", None))
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        await store.apply("e1", bad)
    stored = await store.get("e1")
    assert stored is not None and stored.state == '{"x":1}' and stored.last_seq == 1
    assert await store.waits("e1") == []
    assert len(await store.events("e1")) == 1


async def test_apply_on_unknown_execution(store: Store) -> None:
    with pytest.raises(UnknownExecution):
        await store.apply("nope", lambda txn: None)


async def test_claim_leases_ready_items_and_bumps_fence_and_attempt(store: Store) -> None:
    now = time.time()
    await create_with_work(store, "e1", ready("e1", "a"), ready("e1", "b", at=now + 60))
    claims = await store.claim("w1", now=now, lease_until=now + 30, limit=10, plan=noop_start)
    assert [(c.work.node, c.work.fence, c.work.attempt, c.work.lease_owner) for c in claims] == [
        ("a", 1, 1, "w1")
    ]
    assert claims[0].execution.last_seq == 2  # the plan's event is visible
    # Leased: nobody else gets it until the lease expires.
    assert await store.claim("w2", now=now, lease_until=now + 30, limit=10, plan=noop_start) == []
    later = now + 31
    again = await store.claim("w2", now=later, lease_until=later + 30, limit=10, plan=noop_start)
    assert [(c.work.node, c.work.fence, c.work.attempt) for c in again] == [("a", 2, 2)]


async def test_claim_respects_scope_and_limit(store: Store) -> None:
    for name in ("e1", "e2", "e3"):
        await create_with_work(store, name, ready(name))
    now = time.time()
    scoped = await store.claim(
        "w", now=now, lease_until=now + 5, limit=10, plan=noop_start, execution_ids=["e2"]
    )
    assert [c.work.execution_id for c in scoped] == ["e2"]
    limited = await store.claim("w", now=now, lease_until=now + 5, limit=1, plan=noop_start)
    assert len(limited) == 1


async def test_stale_fence_is_refused_and_writes_nothing(store: Store) -> None:
    await create_with_work(store, "e1", ready("e1"))
    now = time.time()
    (first,) = await store.claim("w1", now=now, lease_until=now + 0.01, limit=1, plan=noop_start)
    later = now + 1
    (second,) = await store.claim("w2", now=later, lease_until=later + 30, limit=1, plan=noop_start)
    zombie = Fence("a", 1, first.work.fence, "w1")
    with pytest.raises(Fenced):
        await store.apply("e1", lambda txn: txn.event("node_completed", "a", 1), fence=zombie)
    owner = Fence("a", 1, second.work.fence, "w2")
    await store.apply("e1", lambda txn: txn.event("node_completed", "a", 1), fence=owner)
    kinds = [e.kind for e in await store.events("e1")]
    assert kinds.count("node_completed") == 1


async def test_leases_extend_expire_and_owners(store: Store) -> None:
    await create_with_work(store, "e1", ready("e1", "a"), ready("e1", "b"))
    now = time.time()
    await store.claim("w1", now=now, lease_until=now + 5, limit=1, plan=noop_start)
    held = await store.extend_leases("w1", now + 100)
    assert len(held) == 1 and held[0][0] == "e1"
    assert await store.lease_owners() == ["w1"]
    assert await store.expire_leases(["w1"], now) == 1
    claims = await store.claim("w2", now=now + 0.5, lease_until=now + 30, limit=5, plan=noop_start)
    assert sorted(c.work.node for c in claims) == ["a", "b"]


async def test_related_rows_and_waits_with_deadlines(store: Store) -> None:
    await create_with_work(store, "e1", ready("e1"))
    now = time.time()

    def park(txn: Txn) -> None:
        assert txn.work is not None and txn.waits is not None
        assert [w.node for w in txn.work] == ["a"]
        txn.delete_work("a", 1)
        txn.put_wait(WaitRecord("e1", "w", 1, "event", "go", now - 1))
        txn.put_wait(WaitRecord("e1", "t", 1, "timer", None, now + 3600))

    await store.apply("e1", park, related=True)
    assert await store.work("e1") == []
    assert sorted(w.node for w in await store.waits("e1")) == ["t", "w"]
    due = await store.due_waits(now, 10)
    assert [(w.node, w.event) for w in due] == [("w", "go")]
    assert await store.due_waits(now, 10, execution_ids=["other"]) == []
    assert await store.next_due() == pytest.approx(now - 1)


async def test_list_executions_filters_newest_first(store: Store) -> None:
    for index, name in enumerate(["old", "mid", "new"]):
        await store.create(record(name, created=1000.0 + index), lambda txn: None)
    await store.apply("mid", lambda txn: setattr(txn.execution, "status", "completed"))
    rows = await store.list_executions()
    assert [r.id for r in rows] == ["new", "mid", "old"]
    done = await store.list_executions(status=["completed"])
    assert [r.id for r in done] == ["mid"]
    assert [r.id for r in await store.list_executions(limit=1, offset=1)] == ["mid"]
    assert await store.list_executions(workflow_id="other") == []

    def join_context(txn: Txn) -> None:
        txn.execution.context_id = "ctx-1"

    await store.apply("old", join_context)
    assert [r.id for r in await store.list_executions(context_id="ctx-1")] == ["old"]
    assert await store.count_executions() == 3
    assert await store.count_executions(status=["completed", "pending"], context_id="ctx-1") == 1


async def test_notifications_after_commit(store: Store) -> None:
    seen: list[tuple[str, str]] = []
    arrived = asyncio.Event()

    def listener(kind: str, execution_id: str) -> None:
        seen.append((kind, execution_id))
        arrived.set()

    unsubscribe = store.subscribe(listener)
    await create_with_work(store, "e1", ready("e1"))
    await asyncio.wait_for(arrived.wait(), 5)
    unsubscribe()
    assert ("work", "e1") in seen

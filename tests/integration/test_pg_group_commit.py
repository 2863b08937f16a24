"""PostgreSQL's group commit: concurrent commits share one statement, and an
item that may not (or cannot) commit fails alone while the others commit."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest

from agent_node.errors import Fenced
from agent_node.store import Txn
from agent_node.store.postgres import PostgresStore
from agent_node.store.records import Claim, ExecutionRecord, WaitRecord, WorkItem
from agent_node.store.txn import Fence

pytestmark = pytest.mark.postgres

OWNER = "worker-a"
IDS = ("e1", "e2", "e3", "e4")


@pytest.fixture
async def store(pg_url: str) -> AsyncIterator[PostgresStore]:
    opened = PostgresStore(pg_url, pg_url)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


def _record(execution_id: str) -> ExecutionRecord:
    now = time.time()
    return ExecutionRecord(
        execution_id, "wf", "1", None, "pending", '{"x":1}', "", 0, None, None, None, now, now
    )


async def _claimed(store: PostgresStore, *extra: WorkItem) -> dict[str, Claim]:
    """IDS created with a ready visit of ``a`` each (and ``extra`` rows),
    then claimed by OWNER: what each worker holds."""

    def plan(txn: Txn) -> None:
        txn.event("execution_started", data='{"input":{}}')
        txn.put_work(WorkItem(txn.execution.id, "a", 1, 0, 0.0, None, None, 0))
        for item in extra:
            if item.execution_id == txn.execution.id:
                txn.put_work(item)

    for execution_id in IDS:
        await store.create(_record(execution_id), plan)
    now = time.time()
    claims = await store.claim(
        OWNER,
        now=now,
        lease_until=now + 30,
        limit=10,
        plan=lambda txn, items: txn.event("node_started", "a", 1, 1),
        execution_ids=IDS,
    )
    return {c.work.execution_id: c for c in claims if c.work.node == "a"}


def _step(txn: Txn) -> int:
    """A node's commit: its result logged, its visit gone, the next leased."""
    txn.event("node_completed", "a", 1, 1, '{"next":"b"}')
    txn.delete_work("a", 1)
    now = txn.now
    txn.put_work(WorkItem(txn.execution.id, "b", 1, 1, now, OWNER, now + 30, 1))
    txn.event("node_started", "b", 1, 1)
    return txn.execution.last_seq


def _fence(claim: Claim) -> Fence:
    return Fence(claim.work.node, claim.work.visit, claim.work.fence, OWNER)


async def _commit_all(
    store: PostgresStore, claims: dict[str, Claim], plans: dict[str, object] | None = None
) -> dict[str, object]:
    """Every claim's commit, handed over at once."""
    plans = plans or {}
    results = await asyncio.gather(
        *(
            store.apply(eid, plans.get(eid, _step), fence=_fence(c), held=c)  # type: ignore[arg-type]
            for eid, c in claims.items()
        ),
        return_exceptions=True,
    )
    return dict(zip(claims, results, strict=True))


async def _kinds(store: PostgresStore, execution_id: str) -> list[str]:
    return [e.kind for e in await store.events(execution_id)]


async def test_concurrent_commits_share_one_statement(store: PostgresStore) -> None:
    claims = await _claimed(store)
    before = (store.group.statements, store.group.written)
    results = await _commit_all(store, claims)
    assert results == dict.fromkeys(IDS, 4)
    assert (store.group.statements, store.group.written) == (before[0] + 1, before[1] + 4)
    for eid in IDS:
        assert (await _kinds(store, eid))[-2:] == ["node_completed", "node_started"]
        assert [(w.node, w.lease_owner) for w in await store.work(eid)] == [("b", OWNER)]


async def test_a_fenced_out_item_fails_alone_while_the_others_commit(
    store: PostgresStore, pg_url: str
) -> None:
    claims = await _claimed(store)
    # e2's lease is taken over (its fence moved on) and nothing else changed.
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute(
            "UPDATE work SET fence = fence + 1, lease_owner = 'worker-b' WHERE execution_id = 'e2'"
        )
    finally:
        await conn.close()
    before = store.group.statements
    results = await _commit_all(store, claims)

    assert isinstance(results.pop("e2"), Fenced)
    assert results == dict.fromkeys(("e1", "e3", "e4"), 4)
    assert store.group.statements == before + 1  # one statement for all four
    assert await _kinds(store, "e2") == ["execution_started", "node_started"]
    assert [(w.node, w.lease_owner) for w in await store.work("e2")] == [("a", "worker-b")]
    for eid in ("e1", "e3", "e4"):
        assert (await _kinds(store, eid))[-2:] == ["node_completed", "node_started"]


async def test_an_item_that_breaks_the_statement_fails_alone(store: PostgresStore) -> None:
    claims = await _claimed(store)

    def duplicate_seq(txn: Txn) -> int:
        txn.execution.last_seq -= 1  # its event collides with one logged already
        return _step(txn)

    results = await _commit_all(store, claims, {"e3": duplicate_seq})

    assert isinstance(results.pop("e3"), asyncpg.UniqueViolationError)
    assert results == dict.fromkeys(("e1", "e2", "e4"), 4)
    assert await _kinds(store, "e3") == ["execution_started", "node_started"]
    assert [w.node for w in await store.work("e3")] == ["a"]
    for eid in ("e1", "e2", "e4"):
        assert (await _kinds(store, eid))[-2:] == ["node_completed", "node_started"]


async def test_a_row_another_writer_changed_runs_the_plan_again_on_it(
    store: PostgresStore,
) -> None:
    claims = await _claimed(store)
    await store.apply("e1", lambda txn: txn.event("note"))  # the runner's view is stale now
    results = await _commit_all(store, {"e1": claims["e1"]})
    assert results == {"e1": 5}
    events = await store.events("e1")
    assert [e.seq for e in events] == [1, 2, 3, 4, 5]
    assert [e.kind for e in events][2:] == ["note", "node_completed", "node_started"]


async def test_a_plan_that_needs_the_related_rows_sees_all_of_them(
    store: PostgresStore,
) -> None:
    """Held with ``related``, the plan assumes the held visit is the only
    row; a branch's second work row makes the statement refuse, and the
    plan runs again on the rows as they are."""
    branch = WorkItem("e4", "c", 1, 0, 0.0, None, None, 0)
    claims = await _claimed(store, branch)

    def count_work(txn: Txn) -> int:
        _step(txn)
        return len(txn.work or ())

    held = claims["e4"]
    seen = await store.apply("e4", count_work, fence=_fence(held), related=True, held=held)
    assert seen == 2
    alone = claims["e1"]
    assert await store.apply("e1", count_work, fence=_fence(alone), related=True, held=alone) == 1


async def test_concurrent_creates_of_one_id_create_it_once(store: PostgresStore) -> None:
    def plan(txn: Txn) -> str:
        txn.event("execution_started", data='{"input":{}}')
        return txn.execution.id

    results = await asyncio.gather(*(store.create(_record("same"), plan) for _ in range(5)))
    assert sorted(results, key=str) == [None, None, None, None, "same"]
    assert await _kinds(store, "same") == ["execution_started"]


async def test_a_grouped_commit_notifies_other_processes_after_it_committed(
    store: PostgresStore, pg_url: str
) -> None:
    other = PostgresStore(pg_url, pg_url)  # another replica, on its own LISTEN connection
    await other.open()
    try:
        heard: list[tuple[str, str]] = []
        other.subscribe(lambda kind, eid: heard.append((kind, eid)))

        def plan(txn: Txn) -> None:
            txn.event("execution_started", data='{"input":{}}')
            txn.put_work(WorkItem(txn.execution.id, "a", 1, 0, 0.0, None, None, 0))

        before = store.group.statements
        await asyncio.gather(*(store.create(_record(eid), plan) for eid in IDS))
        assert store.group.statements == before + 1
        for _ in range(100):
            if len(heard) == len(IDS):
                break
            await asyncio.sleep(0.02)
        assert sorted(heard) == [("work", eid) for eid in IDS]
    finally:
        await other.close()


async def test_a_visit_that_parks_is_one_grouped_statement(store: PostgresStore) -> None:
    claims = await _claimed(store)

    def park(txn: Txn) -> str:
        assert txn.work is not None and txn.waits == []  # held: the visit is its only row
        txn.delete_work("a", 1)
        txn.event("wait_started", "a", 1, data='{"kind":"event","event":"go"}')
        txn.put_wait(WaitRecord(txn.execution.id, "a", 1, "event", "go", None))
        txn.execution.status = "waiting"
        txn.notify("status")
        return txn.execution.status

    held = claims["e1"]
    before = store.group.statements
    assert await store.apply("e1", park, fence=_fence(held), related=True, held=held) == "waiting"
    assert store.group.statements == before + 1
    assert [(w.node, w.event) for w in await store.waits("e1")] == [("a", "go")]
    assert await store.work("e1") == []
    record = await store.get("e1")
    assert record is not None and record.status == "waiting"


async def test_a_create_run_again_after_a_deadlock_plans_on_the_record_as_given(
    store: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A state too large for the row takes the create's transaction (not the
    # group commit); its first run meets a deadlock, as two writers can.
    from agent_node.store import pg_writes

    flush, failed = pg_writes.flush_txn, []

    async def deadlocked_once(*args: object, **kwargs: object) -> None:
        if not failed:
            failed.append(True)
            raise asyncpg.exceptions.DeadlockDetectedError("deadlock detected")
        await flush(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(pg_writes, "flush_txn", deadlocked_once)
    record = _record("big")
    record.state = '{"x":"' + "y" * 5000 + '"}'

    def plan(txn: Txn) -> int:
        txn.event("execution_started", data='{"input":{}}')
        txn.put_work(WorkItem(txn.execution.id, "a", 1, 0, 0.0, None, None, 0))
        txn.execution.status = "running"
        return txn.execution.last_seq

    assert await store.create(record, plan) == 1
    assert failed  # the retry did happen
    events = await store.events("big")
    assert [(e.seq, e.kind) for e in events] == [(1, "execution_started")]
    stored = await store.get("big")
    assert stored is not None and stored.last_seq == 1 and stored.status == "running"
    assert record.last_seq == 0 and record.status == "pending"  # the caller's, untouched

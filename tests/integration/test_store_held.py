"""A node's commit planned on what its writer holds (``Store.apply(held=…)``),
on every store: written as planned while the row and the lease are as held,
planned again on the row as it is when another writer moved it on, refused
when the lease was taken over. The SQL stores skip reading the row when
they can: there the plan runs once while the hold is current, twice after."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from agent_node.errors import Fenced
from agent_node.store import Store, Txn
from agent_node.store.records import Claim, ExecutionRecord, WaitRecord, WorkItem
from agent_node.store.txn import Fence

OWNER = "worker-a"


def _record(execution_id: str) -> ExecutionRecord:
    now = time.time()
    return ExecutionRecord(
        execution_id, "wf", "1", None, "pending", '{"x":1}', "", 0, None, None, None, now, now
    )


async def _held(store: Store, execution_id: str, *extra: WorkItem) -> Claim:
    """``execution_id`` created with a ready visit of ``a`` (and ``extra``
    rows), claimed by OWNER: what its worker holds."""

    def plan(txn: Txn) -> None:
        txn.event("execution_started", data='{"input":{}}')
        txn.put_work(WorkItem(execution_id, "a", 1, 0, 0.0, None, None, 0))
        for item in extra:
            txn.put_work(item)

    await store.create(_record(execution_id), plan)
    now = time.time()
    claims = await store.claim(
        OWNER,
        now=now,
        lease_until=now + 30,
        limit=10,
        plan=lambda txn, items: txn.event("node_started", "a", 1, 1),
        execution_ids=[execution_id],
    )
    return next(c for c in claims if c.work.node == "a")


def _fence(claim: Claim) -> Fence:
    return Fence(claim.work.node, claim.work.visit, claim.work.fence, OWNER)


def _counted(runs: list[int], related: bool = False) -> Callable[[Txn], tuple[int, int]]:
    """A node's commit (its visit done, the next leased), counting its runs:
    the seq of its last event, and how many work rows it was shown."""

    def plan(txn: Txn) -> tuple[int, int]:
        runs.append(1)
        txn.event("node_completed", "a", 1, 1, '{"next":"b"}')
        txn.delete_work("a", 1)
        now = txn.now
        txn.put_work(WorkItem(txn.execution.id, "b", 1, 1, now, OWNER, now + 30, 1))
        txn.event("node_started", "b", 1, 1)
        return txn.execution.last_seq, len(txn.work or ())

    return plan


def _reads_rows(store_url: str) -> bool:
    return not store_url.startswith("memory")


async def test_a_current_hold_commits_as_planned(store: Store, store_url: str) -> None:
    held = await _held(store, "e1")
    runs: list[int] = []
    result = await store.apply("e1", _counted(runs), fence=_fence(held), held=held)
    assert result == (4, 0)
    assert len(runs) == 1
    assert [e.kind for e in await store.events("e1")][-2:] == ["node_completed", "node_started"]
    assert [(w.node, w.lease_owner) for w in await store.work("e1")] == [("b", OWNER)]

    # What the commit returns holds again: the next node commits the same way.
    record = await store.get("e1")
    assert record is not None
    runs.clear()

    def next_node(txn: Txn) -> int:
        runs.append(1)
        txn.event("node_completed", "b", 1, 1, "{}")
        txn.delete_work("b", 1)
        return txn.execution.last_seq

    item = (await store.work("e1"))[0]
    again = Claim(item, record)
    assert await store.apply("e1", next_node, fence=_fence(again), held=again) == 5
    assert len(runs) == 1


async def test_a_row_another_writer_moved_on_is_planned_again(store: Store, store_url: str) -> None:
    held = await _held(store, "e1")
    await store.apply("e1", lambda txn: txn.event("note"))  # the hold is stale now
    runs: list[int] = []
    result = await store.apply("e1", _counted(runs), fence=_fence(held), held=held)
    assert result == (5, 0)
    events = await store.events("e1")
    assert [e.seq for e in events] == [1, 2, 3, 4, 5]
    assert [e.kind for e in events][2:] == ["note", "node_completed", "node_started"]
    assert len(runs) == (2 if _reads_rows(store_url) else 1)


async def test_a_hold_whose_lease_was_taken_over_is_refused(store: Store) -> None:
    held = await _held(store, "e1")
    now = time.time()
    await store.expire_leases([OWNER], now - 1)
    taken = await store.claim(
        "worker-b", now=now, lease_until=now + 30, limit=10, plan=lambda txn, items: None
    )
    assert [c.work.node for c in taken] == ["a"]
    with pytest.raises(Fenced):
        await store.apply("e1", _counted([]), fence=_fence(held), held=held)
    assert [e.kind for e in await store.events("e1")] == ["execution_started", "node_started"]
    assert [(w.node, w.lease_owner) for w in await store.work("e1")] == [("a", "worker-b")]


async def test_a_plan_that_needs_the_related_rows_sees_all_of_them(
    store: Store, store_url: str
) -> None:
    """Held with ``related``, a plan may be shown the held visit as the only
    row; a branch's second work row makes the store plan again on the rows
    as they are."""
    branch = await _held(store, "e2", WorkItem("e2", "c", 1, 0, 0.0, None, None, 0))
    runs: list[int] = []
    seen = await store.apply("e2", _counted(runs), fence=_fence(branch), related=True, held=branch)
    assert seen == (4, 2)
    assert len(runs) == (2 if _reads_rows(store_url) else 1)
    alone = await _held(store, "e1")
    runs.clear()
    seen = await store.apply("e1", _counted(runs), fence=_fence(alone), related=True, held=alone)
    assert seen == (4, 1)
    assert len(runs) == 1


async def test_a_parked_branch_makes_a_related_plan_see_the_rows(
    store: Store, store_url: str
) -> None:
    """A wait of another branch is a related row too: the held view (no
    waits) is not the execution's, and the plan runs again on the rows."""
    held = await _held(store, "e3")
    await store.apply("e3", lambda txn: txn.put_wait(WaitRecord("e3", "w", 1, "event", "go", None)))
    record = await store.get("e3")
    assert record is not None
    held = Claim(held.work, record)  # current: only the wait makes it not alone
    runs: list[int] = []
    waits_seen: list[int] = []

    def plan(txn: Txn) -> tuple[int, int]:
        waits_seen.append(len(txn.waits or ()))
        return _counted(runs)(txn)

    assert await store.apply("e3", plan, fence=_fence(held), related=True, held=held) == (4, 1)
    assert waits_seen[-1] == 1  # the last run, the one written, saw the wait
    assert len(runs) == (2 if _reads_rows(store_url) else 1)
    assert [w.node for w in await store.waits("e3")] == ["w"]
    assert [e.kind for e in await store.events("e3")][-2:] == ["node_completed", "node_started"]

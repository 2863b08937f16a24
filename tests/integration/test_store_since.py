"""Listing and counting executions by their last change (store/listing.py):
the finished ones are found on ``finished_at``'s index, the live ones on
the status index; pages and counts must equal what a scan of every row
finds, whichever way the store goes about it (few finished matches or many,
the kept total less the earlier ones, filters on top)."""

from __future__ import annotations

import itertools
import json

import pytest
from support.raw_sql import run_sql

from agent_node.store import Store, Txn, listing
from agent_node.store.records import TERMINAL, ExecutionRecord

CALLERS = [None, "spiffe://t/alice", "spiffe://t/bob"]
STATUSES = ["pending", "running", "waiting", "completed", "failed", "canceled"]


def record(execution_id: str, caller: str | None, at: float) -> ExecutionRecord:
    metadata = None if caller is None else json.dumps({"caller": caller})
    return ExecutionRecord(
        execution_id, "wf", "1", None, "pending", "{}", "", 0, None, "ctx", metadata, at, at
    )


def moved(status: str, at: float):  # type: ignore[no-untyped-def]
    def plan(txn: Txn) -> None:
        txn.event("status", data=json.dumps({"to": status}))
        txn.execution.status = status
        txn.now = txn.execution.updated_at = at  # the store writes txn.now

    return plan


async def fill(store: Store) -> None:
    """40 executions created at 1..40; each changed at a time of its own
    (some finished, some live, one finished then reopened)."""
    for n in range(40):
        await store.create(record(f"e{n:02}", CALLERS[n % 3], float(n)), moved("running", n))
    for n in range(40):
        await store.apply(f"e{n:02}", moved(STATUSES[n % 6], 100.0 + (n * 7) % 40))
    await store.apply("e03", moved("running", 150.0))  # finished at 103, then reopened


@pytest.mark.parametrize("probe", [listing.PROBE, 3])
async def test_pages_and_counts_by_last_change_match_a_scan(
    store: Store, probe: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``probe`` 3: the "many finished match" paths run on a small store."""
    monkeypatch.setattr(listing, "PROBE", probe)
    await fill(store)
    every = await store.list_executions(limit=1000)
    assert 5 < len([r for r in every if r.updated_at >= 120.0]) < 35  # the times are ours
    for since, caller, status in itertools.product(
        [0.0, 100.0, 120.0, 135.0, 139.0, 150.0, 200.0],
        [None, "spiffe://t/alice"],
        [None, ["completed"], ["running", "waiting"], sorted(TERMINAL)],
    ):
        want = [
            r.id
            for r in every
            if r.updated_at >= since
            and (caller is None or r.caller == caller)
            and (status is None or r.status in status)
        ]
        filters = {"updated_after": since, "caller": caller, "status": status}
        got = [r.id for r in await store.list_executions(**filters, limit=1000)]
        assert got == want, filters
        assert await store.count_executions(**filters) == len(want), filters
        # Pages: keyset, three at a time, the same rows in the same order.
        paged: list[str] = []
        before = None
        while True:
            rows = await store.list_executions(**filters, limit=3, before=before)
            paged.extend(r.id for r in rows)
            if len(rows) < 3:
                break
            before = (rows[-1].created_at, rows[-1].id)
        assert paged == want, filters
        offset = await store.list_executions(**filters, limit=2, offset=3)
        assert [r.id for r in offset] == want[3:5], filters


async def test_finished_at_follows_the_status(durable_url: str) -> None:
    """The column the finished listing reads: the last change while
    finished, nothing while live — as the store writes it, and on
    PostgreSQL also as SQL run beside the store writes it (a trigger)."""
    from agent_node.store import store_from_url

    store = store_from_url(durable_url)
    await store.open()
    try:
        await store.create(record("a", None, 1.0), moved("running", 2.0))
        await store.apply("a", moved("completed", 3.0))
        await store.create(record("d", None, 9.0), moved("waiting", 9.5))
        done = ExecutionRecord(
            "e", "wf", "1", None, "failed", "{}", "", 0, None, None, None, 4.5, 4.5
        )
        await store.create(done, lambda txn: None)
        await store.apply("a", moved("running", 10.0))  # reopened
        await store.apply("a", moved("canceled", 11.0))
        rows = await run_sql(
            durable_url, [], "SELECT id, status, finished_at FROM executions ORDER BY id"
        )
        assert rows == [("a", "canceled", 11.0), ("d", "waiting", None), ("e", "failed", 4.5)]
        assert [r.id for r in await store.list_executions(updated_after=4.2)] == ["d", "e", "a"]
        assert [r.id for r in await store.list_executions(updated_after=6.0)] == ["d", "a"]
        if durable_url.startswith("sqlite"):
            return
        await run_sql(
            durable_url,
            [
                "INSERT INTO executions (id, workflow_id, workflow_version, status, state,"
                " cursor, last_seq, created_at, updated_at) VALUES"
                " ('b', 'wf', '1', 'failed', '{}', '', 0, 4.0, 5.0),"
                " ('c', 'wf', '1', 'running', '{}', '', 0, 4.0, 6.0)",
                "UPDATE executions SET status = 'canceled', updated_at = 7.0 WHERE id = 'c'",
                "UPDATE executions SET status = 'running' WHERE id = 'e'",
            ],
        )
        rows = await run_sql(
            durable_url,
            [],
            "SELECT id, finished_at FROM executions WHERE id IN ('b', 'c', 'e') ORDER BY id",
        )
        assert rows == [("b", 5.0), ("c", 7.0), ("e", None)]
    finally:
        await store.close()

"""``Store.count_open``: a caller's unfinished executions, counted up to a
bound on every store, read on the index of those alone
(``ix_executions_open``, schema 12) — what the cap on a caller's open tasks
costs a new task — and a store of schema 11 gets that index when opened."""

from __future__ import annotations

import time

from support.raw_sql import run_sql

from agent_node.store import Store, Txn, store_from_url
from agent_node.store.records import ExecutionRecord
from agent_node.store.schema import SCHEMA_VERSION
from agent_node.store.sql import Statements

#: Each caller's executions: (id, status).
MADE = {
    "alice": [("a1", "pending"), ("a2", "running"), ("a3", "waiting"), ("a4", "waiting")],
    "bob": [("b1", "waiting")],
}
#: Finished ones, and some without a caller.
DONE = [("a5", "completed"), ("a6", "failed"), ("a7", "canceled")]
NOBODY = [("n1", "waiting"), ("n2", "pending")]


def _record(execution_id: str, caller: str | None) -> ExecutionRecord:
    now = time.time()
    metadata = f'{{"caller":"{caller}"}}' if caller else None
    return ExecutionRecord(
        execution_id, "wf", "1", None, "pending", "{}", "", 0, None, None, metadata, now, now
    )


async def _make(store: Store, execution_id: str, caller: str | None, status: str) -> None:
    def started(txn: Txn) -> None:
        txn.event("execution_started", data='{"input":{}}')

    def moved(txn: Txn) -> None:
        txn.event("node_completed")
        txn.execution.status = status  # type: ignore[assignment]

    await store.create(_record(execution_id, caller), started)
    if status != "pending":
        await store.apply(execution_id, moved)


async def _fill(store: Store) -> None:
    for caller, made in MADE.items():
        for execution_id, status in made:
            await _make(store, execution_id, caller, status)
    for execution_id, status in DONE:
        await _make(store, execution_id, "alice", status)
    for execution_id, status in NOBODY:
        await _make(store, execution_id, None, status)


async def test_a_callers_unfinished_executions_are_counted_up_to_the_bound(store: Store) -> None:
    await _fill(store)
    assert await store.count_open("alice", 100) == 4
    assert await store.count_open("alice", 3) == 3  # no further than asked
    assert await store.count_open("bob", 100) == 1
    assert await store.count_open("carol", 100) == 0

    def finished(txn: Txn) -> None:
        txn.execution.status = "completed"

    await store.apply("a3", finished)
    assert await store.count_open("alice", 100) == 3
    await store.prune(time.time() + 1, 100)  # the finished go; the count stays
    assert await store.count_open("alice", 100) == 3


async def _plan(url: str) -> str:
    """How the database runs the count (PostgreSQL: as a prepared statement
    under the plan it would reuse for any caller)."""
    if url.startswith("sqlite"):
        sql = Statements(postgres=False).count_open.replace("?", "'alice'", 1).replace("?", "10")
        rows = await run_sql(url, [], f"EXPLAIN QUERY PLAN {sql}")
        return " ".join(str(r[-1]) for r in rows)
    setup = [
        "SET plan_cache_mode = force_generic_plan",
        "SET enable_seqscan = off",
        f"PREPARE counted (text, int) AS {Statements(postgres=True).count_open}",
    ]
    rows = await run_sql(url, setup, "EXPLAIN EXECUTE counted('alice', 10)")
    return " ".join(str(r[0]) for r in rows)


async def _filled(url: str) -> None:
    """:func:`_fill`, and on PostgreSQL the caller's finished executions of a
    long-lived store (which statistics tell the planner of)."""
    store = store_from_url(url)
    await store.open()
    try:
        await _fill(store)
    finally:
        await store.close()
    if not url.startswith("sqlite"):
        await run_sql(url, [_FINISHED_MANY, "ANALYZE executions"])


_FINISHED_MANY = (
    "INSERT INTO executions (id, workflow_id, workflow_version, status, state, cursor,"
    " last_seq, caller, created_at, updated_at)"
    " SELECT 'f' || g, 'wf', '1', 'completed', '{}', '', 1, 'alice', g, g"
    " FROM generate_series(1, 5000) g"
)


async def test_the_count_reads_the_index_of_open_executions(durable_url: str) -> None:
    await _filled(durable_url)
    plan = await _plan(durable_url)
    assert "ix_executions_open" in plan, plan
    definition = await run_sql(
        durable_url,
        [],
        "SELECT sql FROM sqlite_master WHERE name = 'ix_executions_open'"
        if durable_url.startswith("sqlite")
        else "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_executions_open'",
    )
    assert "caller IS NOT NULL" in definition[0][0], definition


async def test_a_version_11_store_gets_the_index_when_opened(durable_url: str) -> None:
    await _filled(durable_url)
    await run_sql(
        durable_url, ["DROP INDEX ix_executions_open", "UPDATE schema_info SET value = '11'"]
    )
    store = store_from_url(durable_url)
    await store.open()
    try:
        assert await store.count_open("alice", 100) == 4
    finally:
        await store.close()
    version = await run_sql(durable_url, [], "SELECT value FROM schema_info")
    assert version == [(str(SCHEMA_VERSION),)]
    assert "ix_executions_open" in await _plan(durable_url)

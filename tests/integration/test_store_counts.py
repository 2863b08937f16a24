"""Kept counts of executions (store/counts.py): ``count_executions`` by
caller, workflow and status is a sum of counts the stores keep as rows
change, and must always equal what a scan of the rows counts — through
creation, status changes, retention, hand-written SQL, an upgrade from a
store without counts, and (PostgreSQL) writers of several processes at once,
with compactions racing them."""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import time
from collections import Counter

import asyncpg
from support.raw_sql import run_sql

from agent_node.store import Store, Txn, store_from_url
from agent_node.store.postgres import PostgresStore
from agent_node.store.records import ExecutionRecord
from agent_node.store.schema import SCHEMA_VERSION

CALLERS = [None, "", "spiffe://t/alice", "spiffe://t/bob"]
WORKFLOWS = ["wf-a", "wf-b"]
STATUSES = ["pending", "running", "waiting", "completed", "failed", "canceled"]


def record(execution_id: str, workflow: str, caller: str | None, at: float) -> ExecutionRecord:
    metadata = None if caller is None else json.dumps({"caller": caller})
    return ExecutionRecord(
        execution_id, workflow, "1", None, "pending", "{}", "", 0, None, None, metadata, at, at
    )


def set_status(status: str):  # type: ignore[no-untyped-def]
    def plan(txn: Txn) -> None:
        txn.event("status", data=json.dumps({"to": status}))
        txn.execution.status = status

    return plan


async def scanned(store: Store) -> Counter[tuple[str | None, str, str]]:
    """Every execution's (caller, workflow, status), from the rows."""
    rows = await store.list_executions(limit=100_000)
    return Counter((r.caller, r.workflow_id, r.status) for r in rows)


async def assert_counts_match(store: Store) -> None:
    truth = await scanned(store)
    for caller, workflow, statuses in itertools.product(
        # None is no filter ("-" here): "no caller" is not a filter of the API.
        [*CALLERS[1:], "spiffe://t/nobody", "-"],
        [*WORKFLOWS, "wf-none", "-"],
        [None, ["completed"], ["running", "waiting"], STATUSES, []],
    ):
        want = sum(
            n
            for (c, w, s), n in truth.items()
            if (caller == "-" or c == caller)
            and (workflow == "-" or w == workflow)
            and (statuses is None or s in statuses)
        )
        got = await store.count_executions(
            status=statuses,
            workflow_id=None if workflow == "-" else workflow,
            caller=None if caller == "-" else caller,
        )
        assert got == want, (caller, workflow, statuses)


async def test_counts_follow_every_change_of_the_rows(store: Store) -> None:
    """Random creations, status changes (terminal ones included) and a prune:
    after each round every combination of filters counts what a scan does.
    A caller of ``""`` is not the absence of one."""
    rng = random.Random(7)
    ids: list[str] = []
    old = time.time() - 86_400
    for round_ in range(4):
        for n in range(12):
            execution_id = f"e{round_}-{n}"
            ids.append(execution_id)
            await store.create(
                record(execution_id, rng.choice(WORKFLOWS), rng.choice(CALLERS), old + len(ids)),
                set_status("running"),
            )
        for execution_id in rng.sample(ids, 10):
            current = await store.get(execution_id)
            if current is not None:
                await store.apply(execution_id, set_status(rng.choice(STATUSES)))
        if isinstance(store, PostgresStore) and round_ % 2:
            await store.compact_counts()
        await assert_counts_match(store)
    # Retention deletes finished executions: they leave the counts too.
    for execution_id in ids[:20]:
        await store.apply(execution_id, set_status("completed"))
    assert await store.prune(time.time() + 1, 1000) >= 20
    await assert_counts_match(store)
    assert await store.count_executions(status=["completed", "failed", "canceled"]) == 0


async def test_rows_written_by_hand_are_counted(durable_url: str) -> None:
    """The counts are kept by the database, not by our writes: SQL run beside
    the store (an operator's fix, a migration) moves them too."""
    store = store_from_url(durable_url)
    await store.open()
    try:
        await store.create(record("e1", "wf-a", "x", 1.0), set_status("running"))
        await run_sql(
            durable_url,
            [
                "UPDATE executions SET status = 'failed' WHERE id = 'e1'",
                "INSERT INTO executions (id, workflow_id, workflow_version, status, state,"
                " cursor, last_seq, created_at, updated_at, caller)"
                " VALUES ('e2', 'wf-a', '1', 'completed', '{}', '', 0, 2.0, 2.0, 'x')",
            ],
        )
        assert await store.count_executions(caller="x", status=["failed"]) == 1
        assert await store.count_executions(caller="x", status=["completed"]) == 1
        assert await store.count_executions(caller="x", status=["running"]) == 0
        await run_sql(durable_url, ["DELETE FROM executions WHERE id = 'e2'"])
        assert await store.count_executions(workflow_id="wf-a") == 1
    finally:
        await store.close()


async def test_a_version_7_store_is_counted_on_upgrade(durable_url: str) -> None:
    """A store from before the counts opens with its executions counted (and
    its finished ones' ``finished_at`` filled)."""
    store = store_from_url(durable_url)
    await store.open()
    for n in range(30):
        await store.create(
            record(f"e{n}", WORKFLOWS[n % 2], CALLERS[n % 4], float(n)), set_status("running")
        )
    for n in range(0, 30, 3):
        await store.apply(f"e{n}", set_status("completed"))
    await store.close()
    await run_sql(durable_url, _back_to_version_7(durable_url))
    assert await run_sql(durable_url, [], "SELECT COUNT(*) FROM executions") == [(30,)]

    upgraded = store_from_url(durable_url)
    await upgraded.open()
    try:
        await assert_counts_match(upgraded)
        assert await upgraded.count_executions(status=["completed"]) == 10
        # finished_at was filled: the finished ones are found by their last change.
        changed = await upgraded.list_executions(updated_after=0.0, status=["completed"])
        assert len(changed) == 10
        assert await upgraded.count_executions(updated_after=0.0, status=["completed"]) == 10
        await upgraded.create(record("new", "wf-a", None, 99.0), set_status("running"))
        assert await upgraded.count_executions(status=["running"]) == 21
    finally:
        await upgraded.close()
    version = await run_sql(durable_url, [], "SELECT value FROM schema_info")
    assert version == [(str(SCHEMA_VERSION),)]


async def test_writers_of_two_processes_never_wait_on_a_count(pg_url: str) -> None:
    """Two transactions open at once, each finishing executions with the
    same outcomes: neither waits for the other (each server process adds to
    count rows of its own), where one shared row per count would block the
    second until the first commits."""
    store = store_from_url(pg_url)
    await store.open()
    for n in range(4):
        await store.create(record(f"e{n}", "wf-a", "x", float(n)), set_status("running"))
    await store.close()
    one, two = await asyncpg.connect(pg_url), await asyncpg.connect(pg_url)
    try:
        first, second = one.transaction(), two.transaction()
        await first.start()
        await second.start()
        moves = [
            (one, "e0", "completed"),
            (two, "e1", "completed"),
            (one, "e2", "failed"),
            (two, "e3", "failed"),
        ]
        for conn, execution_id, status in moves:
            await asyncio.wait_for(
                conn.execute(
                    "UPDATE executions SET status = $1 WHERE id = $2", status, execution_id
                ),
                timeout=5,
            )
        await first.commit()
        await second.commit()
    finally:
        await one.close()
        await two.close()
    store = store_from_url(pg_url)
    await store.open()
    try:
        await assert_counts_match(store)
        assert await store.count_executions(status=["completed"]) == 2
    finally:
        await store.close()


async def test_replicas_writing_while_gone_shards_are_compacted(pg_url: str) -> None:
    """Two replicas finish executions; a third opens and closes its pool over
    and over; compactions run throughout. The counts end exact, and the
    shards of server processes that are gone end in shard 0."""
    stores: list[PostgresStore] = []
    for _ in range(2):
        s = store_from_url(pg_url)
        assert isinstance(s, PostgresStore)
        await s.open()
        stores.append(s)
    try:
        done = asyncio.Event()

        async def compact(store: PostgresStore) -> int:
            rounds = 0
            while not done.is_set():
                await store.compact_counts()
                rounds += 1
                await asyncio.sleep(0.01)
            return rounds

        async def write(prefix: str, store: Store | None = None) -> None:
            for n in range(30):
                own = store is None
                s = store_from_url(pg_url) if own else store
                if own:
                    await s.open()  # a fresh pool: fresh server processes
                execution_id = f"{prefix}{n}"
                await s.create(record(execution_id, "wf-a", "x", float(n)), set_status("running"))
                await s.apply(execution_id, set_status("waiting"))
                await s.apply(execution_id, set_status("completed"))
                if own:
                    await s.close()

        compactors = [asyncio.create_task(compact(s)) for s in stores]
        await asyncio.gather(write("a", stores[0]), write("b", stores[1]), write("c"))
        done.set()
        assert sum(await asyncio.gather(*compactors)) > 2
        await stores[0].compact_counts()
        for s in stores:
            assert await s.count_executions(status=["completed"]) == 90
            assert await s.count_executions(status=["running", "waiting", "pending"]) == 0
        shards = await run_sql(
            pg_url,
            [],
            "SELECT DISTINCT shard FROM execution_counts WHERE shard <> 0 AND shard NOT IN"
            " (SELECT pid FROM pg_stat_activity)",
        )
        assert shards == []
        assert await run_sql(
            pg_url, [], "SELECT COUNT(*) FROM execution_counts WHERE shard = 0"
        ) != [(0,)]
    finally:
        for s in stores:
            await s.close()


def _back_to_version_7(url: str) -> list[str]:
    """What version 8 added, gone (the store as version 7 left it)."""
    if url.startswith("sqlite"):
        return [
            "DROP TRIGGER executions_counted",
            "DROP TRIGGER executions_uncounted",
            "DROP TRIGGER executions_recounted",
            "DROP INDEX ix_executions_finished",
            "ALTER TABLE executions DROP COLUMN finished_at",
            "DROP TABLE execution_counts",
            "UPDATE schema_info SET value = '7'",
        ]
    return [
        "DROP TRIGGER executions_counted ON executions",
        "DROP TRIGGER executions_uncounted ON executions",
        "DROP TRIGGER executions_recounted ON executions",
        "DROP FUNCTION agent_node_count()",
        "DROP TRIGGER executions_finished ON executions",
        "DROP FUNCTION agent_node_finished()",
        "ALTER TABLE executions DROP COLUMN finished_at",  # its index goes with it
        "DROP TABLE execution_counts",
        "UPDATE schema_info SET value = '7'",
    ]

"""The indexes listings read. Those by caller and by context hold only the
executions that have one (schema 9): listings by caller or context still
read them (not the table), and a store of schema 8 gets them on upgrade.
Where filters meet, or a last change is asked, a listing reads the few rows
it needs on the right index, whatever SQLite knows of what its indexes hold
or whatever plan PostgreSQL would reuse for any values."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import asyncpg
from support.raw_sql import run_sql

from agent_node.store import Txn, store_from_url
from agent_node.store.listing import Filters, page
from agent_node.store.records import ExecutionRecord
from agent_node.store.schema import SCHEMA_VERSION
from agent_node.store.sql import numbered

INDEXES = ("ix_executions_caller", "ix_executions_context")


def _record(n: int, *, caller: str | None, context: str | None) -> ExecutionRecord:
    now = time.time()
    metadata = f'{{"caller":"{caller}"}}' if caller else None
    return ExecutionRecord(
        f"e{n}", "wf", "1", None, "pending", "{}", "", 0, None, context, metadata, now + n, now
    )


def _started(txn: Txn) -> None:
    txn.event("execution_started", data='{"input":{}}')


async def _fill(url: str) -> None:
    store = store_from_url(url)
    await store.open()
    try:
        for n in range(40):
            who = f"c{n % 2}" if n % 4 == 0 else None
            where = f"ctx{n % 3}" if n % 5 == 0 else None
            await store.create(_record(n, caller=who, context=where), _started)
    finally:
        await store.close()


def _literal(sql: str, params: Sequence[Any]) -> str:
    """``sql`` with its parameters written in as literals."""
    for value in params:
        sql = sql.replace("?", f"'{value}'" if isinstance(value, str) else str(value), 1)
    return sql


async def _listing_sql(url: str, filters: Filters) -> str:
    """The statement a listing with ``filters`` runs (as the store builds it;
    the counts it makes first answered by the store's database)."""
    seen: list[str] = []

    async def fetch(sql: str, params: Sequence[Any]) -> Sequence[Sequence[Any]]:
        seen.append(_literal(sql, params))
        return await run_sql(url, [], seen[-1]) if sql.startswith("SELECT COUNT(*)") else []

    await page(fetch, filters, limit=50, offset=0, before=None, sqlite=url.startswith("sqlite"))
    return seen[-1]


async def _plan(url: str, filters: Filters) -> str:
    """The query plan of that listing, as text."""
    sql = await _listing_sql(url, filters)
    if url.startswith("sqlite"):
        rows = await run_sql(url, [], f"EXPLAIN QUERY PLAN {sql}")
        return " ".join(str(r[-1]) for r in rows)
    # Off, a table scan is still chosen when no index can answer.
    rows = await run_sql(url, ["SET enable_seqscan = off"], f"EXPLAIN {sql}")
    return " ".join(str(r[0]) for r in rows)


async def _definitions(url: str) -> dict[str, str]:
    if url.startswith("sqlite"):
        rows = await run_sql(
            url, [], "SELECT name, sql FROM sqlite_master WHERE name LIKE 'ix_executions_c%'"
        )
    else:
        rows = await run_sql(
            url,
            [],
            "SELECT indexname, indexdef FROM pg_indexes WHERE indexname LIKE 'ix_executions_c%'",
        )
    return {name: sql for name, sql in rows if name in INDEXES}


async def _assert_partial_and_used(url: str) -> None:
    definitions = await _definitions(url)
    assert sorted(definitions) == sorted(INDEXES)
    for index, sql in definitions.items():
        assert "IS NOT NULL" in sql.upper(), (index, sql)
    by_caller = await _plan(url, Filters(caller="c1"))
    assert "ix_executions_caller" in by_caller, by_caller
    by_context = await _plan(url, Filters(context_id="ctx0", status=["pending"]))
    assert "ix_executions_context" in by_context, by_context
    store = store_from_url(url)
    await store.open()
    try:  # what the listings find: every execution of that caller or context
        found = {r.id for r in await store.list_executions(caller="c1")}
        assert found == {f"e{n}" for n in range(40) if n % 4 == 0 and n % 2 == 1}
        found = {r.id for r in await store.list_executions(context_id="ctx0")}
        assert found == {f"e{n}" for n in range(40) if n % 5 == 0 and n % 3 == 0}
        assert await store.count_executions(caller="c0") == 10
    finally:
        await store.close()


async def test_listings_by_caller_and_context_read_partial_indexes(durable_url: str) -> None:
    await _fill(durable_url)
    await _assert_partial_and_used(durable_url)


async def test_a_version_8_store_gets_the_partial_indexes(durable_url: str) -> None:
    await _fill(durable_url)
    full = [
        "DROP INDEX ix_executions_caller",
        "DROP INDEX ix_executions_context",
        "CREATE INDEX ix_executions_caller ON executions (caller, created_at, id)",
        "CREATE INDEX ix_executions_context ON executions (context_id, created_at, id)",
        "UPDATE schema_info SET value = '8'",
    ]
    await run_sql(durable_url, full)
    assert all("NOT NULL" not in sql.upper() for sql in (await _definitions(durable_url)).values())

    store = store_from_url(durable_url)
    await store.open()
    await store.close()
    version = await run_sql(durable_url, [], "SELECT value FROM schema_info")
    assert version == [(str(SCHEMA_VERSION),)]
    await _assert_partial_and_used(durable_url)


def _rows_filtered(plan: Any) -> int:
    """Rows a plan's nodes read and threw away ("Rows Removed by Filter")."""
    if isinstance(plan, list):
        return sum(_rows_filtered(p) for p in plan)
    if not isinstance(plan, dict):
        return 0
    removed = int(plan.get("Rows Removed by Filter", 0))
    return removed + sum(_rows_filtered(v) for v in plan.values() if isinstance(v, list | dict))


async def test_a_listing_by_last_change_reads_the_few_under_a_generic_plan(pg_url: str) -> None:
    """asyncpg prepares every statement, and PostgreSQL plans a prepared
    statement for any parameters after a few runs: that plan cannot know
    that few finished executions changed since ``T``. It must still read
    them on the index of finished times, not walk the newest-first index
    through every row to find them (0.3 s a listing with a million)."""
    store = store_from_url(pg_url)
    await store.open()
    await store.close()
    t0 = time.time() - 100_000
    # 20,000 finished executions, one a second, the 10 oldest finished last
    # (written by SQL, at once; PostgreSQL plans for 20,000 rows as for a
    # million).
    fill = (
        "INSERT INTO executions (id, workflow_id, workflow_version, status, state, cursor,"
        " last_seq, created_at, updated_at)"
        f" SELECT 'f' || lpad(n::text, 5, '0'), 'wf', '1', 'completed', '{{}}', '', 0,"
        f" {t0} + n, {t0} + n + CASE WHEN n < 10 THEN 50000 ELSE 0 END"
        " FROM generate_series(0, 19999) n"
    )
    await run_sql(pg_url, [fill, "ANALYZE executions"])  # as autovacuum would have

    conn = await asyncpg.connect(pg_url)
    plans: list[Any] = []

    async def fetch(sql: str, params: Sequence[Any]) -> Sequence[Sequence[Any]]:
        name = f"listing{len(plans)}"  # prepared in SQL: EXPLAIN EXECUTE shows its plan
        await conn.execute(f"PREPARE {name} AS {numbered(sql)}")
        call = f"EXECUTE {name}({', '.join(map(repr, params))})"
        plans.append(json.loads(await conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {call}")))
        return list(await conn.fetch(call))

    try:
        await conn.execute("SET plan_cache_mode = force_generic_plan")
        since = Filters(updated_after=t0 + 40_000)
        rows = await page(fetch, since, limit=5, offset=0, before=None, sqlite=False)
        assert [row[0] for row in rows] == [f"f{n:05d}" for n in (9, 8, 7, 6, 5)]
        none = Filters(updated_after=t0 + 90_000)
        assert await page(fetch, none, limit=5, offset=0, before=None, sqlite=False) == []
    finally:
        await conn.close()
    assert [_rows_filtered(plan) for plan in plans] == [0, 0, 0, 0], plans
    assert all("$1" in json.dumps(plan) for plan in plans)  # generic plans


#: Listings and counts by filters that each alone match many rows, or none,
#: with 200,000 finished executions of one workflow, 20 callers, all
#: finished in the last two days: the store must read the few rows they
#: need, on the right index, whatever SQLite knows or PostgreSQL would plan.
HARD_FILTERS = {
    "a status none has": {"status": ["failed"]},
    "a workflow all run, a status none has": {"workflow_id": "wf", "status": ["failed"]},
    "a caller with many, a status none has": {"caller": "c3", "status": ["failed"]},
    "changed in two days, a status none has": {"status": ["failed"], "updated_after": -2},
    "changed in two days, a caller none is": {"caller": "nobody", "updated_after": -2},
    "changed in the last minute, a common status": {"status": ["completed"], "updated_after": -1},
    "a workflow none runs": {"workflow_id": "none"},
}


#: Counts by filters that each match over a thousand rows (a count of one
#: context's 2,000 among 200,000 finished executions of one status).
HARD_COUNTS = {
    "a context, a status all have": {"status": ["completed"], "context_id": "x7"},
    "a context, a workflow all run": {"workflow_id": "wf", "context_id": "x7"},
}


async def test_listings_read_the_few_rows_they_need(durable_url: str) -> None:
    """Each listing and count of :data:`HARD_FILTERS`, its fastest of five
    runs, takes a few milliseconds (walking an index of 200,000 rows, as
    SQLite without statistics or a plan PostgreSQL reuses for any parameters
    would, takes ten times as long at the least). On PostgreSQL the database
    forces generic plans, the worst it could choose."""
    store = store_from_url(durable_url)
    await store.open()
    await store.close()
    now = time.time()
    t0 = now - 86_400
    rows = (
        "SELECT 'f' || n, 'wf', '1', 'completed', '{}', '', 0,"
        f" 'c' || (n % 20), 'x' || (n % 100), {t0} + n * 0.4, {t0} + n * 0.4, {t0} + n * 0.4"
    )
    columns = (
        "id, workflow_id, workflow_version, status, state, cursor, last_seq, caller,"
        " context_id, created_at, updated_at, finished_at"
    )
    if durable_url.startswith("sqlite"):
        series = "WITH RECURSIVE s(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM s WHERE n < 199999)"
        await run_sql(durable_url, [f"{series} INSERT INTO executions ({columns}) {rows} FROM s"])
    else:
        database = durable_url.rsplit("/", 1)[1]
        await run_sql(
            durable_url,
            [
                # Without the triggers (the counts: each row would update one
                # of theirs again, in one transaction).
                "SET session_replication_role = replica",
                f"INSERT INTO executions ({columns}) {rows} FROM generate_series(0, 199999) n",
                "ANALYZE executions",
                f'ALTER DATABASE "{database}" SET plan_cache_mode = force_generic_plan',
            ],
        )
    store = store_from_url(durable_url)
    await store.open()
    try:
        for name, asked in HARD_FILTERS.items():
            filters = dict(asked)
            if "updated_after" in filters:  # days (-2) or minutes (-1) back
                back = 2 * 86_400 if filters["updated_after"] == -2 else 60
                filters["updated_after"] = now - back
            for counted in (False, True):
                took = []
                for _ in range(5):
                    began = time.perf_counter()
                    if counted:
                        assert await store.count_executions(**filters) == 0, name
                    else:
                        assert await store.list_executions(limit=50, **filters) == [], name
                    took.append(time.perf_counter() - began)
                assert min(took) < 0.008, (name, counted, took)
        # A count reads every row of the index it reads: a context's 2,000,
        # not the status's 200,000 (SQLite chose that: 0.5 s with a million).
        for name, asked in HARD_COUNTS.items():
            took = []
            for _ in range(5):
                began = time.perf_counter()
                assert await store.count_executions(**asked) == 2000, name
                took.append(time.perf_counter() - began)
            # ~4 ms alone; reading the status's 200,000 takes ~85 ms: room for a
            # machine busy with other tests (min 15.6 ms seen under such load).
            assert min(took) < 0.03, (name, took)
    finally:
        await store.close()


#: Searches by the start of an id among 200,000 executions whose ids begin
#: with their creation order, as new ids do (:mod:`agent_node.ids`): the
#: ids that start alike are those of one stretch of time, here the oldest
#: (a walk from the newest would pass every other). Each: how many match.
ID_STARTS = {"f000": 1_000, "f00": 10_000, "f": 200_000, "g": 0, "f19999": 10}


async def test_a_search_by_the_start_of_an_id_reads_the_ids_that_match(
    durable_url: str,
) -> None:
    """Each search of :data:`ID_STARTS` finds its newest fifty, and counts
    its matches, in about the time reading those matches takes (walking the
    200,000 from the newest, or sorting them all, takes ten times as long)."""
    store = store_from_url(durable_url)
    await store.open()
    await store.close()
    rows = "SELECT 'f' || substr('00000' || n, -6, 6), 'wf', '1', 'completed', '{}', '', 0, n, n"
    if not durable_url.startswith("sqlite"):
        rows = rows.replace("substr('00000' || n, -6, 6)", "lpad(n::text, 6, '0')")
    columns = "id, workflow_id, workflow_version, status, state, cursor, last_seq, created_at"
    columns += ", updated_at"
    if durable_url.startswith("sqlite"):
        series = "WITH RECURSIVE s(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM s WHERE n < 199999)"
        await run_sql(durable_url, [f"{series} INSERT INTO executions ({columns}) {rows} FROM s"])
    else:
        await run_sql(
            durable_url,
            [
                "SET session_replication_role = replica",  # no counts (see above)
                f"INSERT INTO executions ({columns}) {rows} FROM generate_series(0, 199999) n",
                "ANALYZE executions",
            ],
        )
    store = store_from_url(durable_url)
    await store.open()
    try:
        for prefix, matching in ID_STARTS.items():
            newest = [f"f{n:06d}" for n in range(199_999, -1, -1) if f"f{n:06d}".startswith(prefix)]
            took = []
            for _ in range(5):
                began = time.perf_counter()
                found = await store.list_executions(id_prefix=prefix, limit=50)
                took.append(time.perf_counter() - began)
            assert [r.id for r in found] == newest[:50], prefix
            assert len(newest) == matching
            allowed = 0.008 + matching * 2e-6  # what reading the matches may take
            assert min(took) < allowed, (prefix, took)
            if matching <= 10_000:
                assert await store.count_executions(id_prefix=prefix) == matching
    finally:
        await store.close()


async def test_a_start_of_an_id_whatever_the_collation(pg_url: str) -> None:
    """PostgreSQL compares the key by the database's collation, where a start
    of an id need not be one range of the key's index: with punctuation
    passed over (glibc's en_US, ICU's "shifted"), "ab-" sorts with "ab" and
    "ab-1" between "ab0" and "ab2". A search reads the ids in code point
    order (their own index), so it finds exactly those that start so."""
    store = store_from_url(pg_url)
    await store.open()
    await store.close()
    await run_sql(
        pg_url,
        [
            "CREATE COLLATION shifted (provider = icu, locale = 'und-u-ka-shifted')",
            'ALTER TABLE executions ALTER COLUMN id TYPE text COLLATE "shifted"',
        ],
    )
    store = store_from_url(pg_url)
    await store.open()
    try:
        for n, name in enumerate(["ab-1", "ab0", "ab2", "ab-3", "ab", "ab.4", "aa-9", "ab-"]):
            await store.create(_record(n, caller=None, context=None), _started)
            await run_sql(pg_url, [f"UPDATE executions SET id = '{name}' WHERE id = 'e{n}'"])
        found = await store.list_executions(id_prefix="ab-")
        assert [r.id for r in found] == ["ab-", "ab-3", "ab-1"]
        assert await store.count_executions(id_prefix="ab-") == 3
        assert [r.id for r in await store.list_executions(id_prefix="ab.")] == ["ab.4"]
    finally:
        await store.close()
    plan = await _plan(pg_url, Filters(id_prefix="ab-"))
    assert "ix_executions_id" in plan, plan

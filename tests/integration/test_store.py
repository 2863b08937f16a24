"""One suite, three stores: memory, SQLite, PostgreSQL (when a URL is set)."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from agent_node.errors import Fenced, StoreError, UnknownExecution
from agent_node.store import Store, Txn, store_from_url
from agent_node.store.records import (
    DelegationRecord,
    ExecutionRecord,
    PushConfigRecord,
    WaitRecord,
    WorkItem,
)
from agent_node.store.schema import SCHEMA_VERSION, ddl
from agent_node.store.txn import Fence


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
    await create_with_work(store, "e1", ready("e1"))

    def plan(txn: Txn) -> str:
        txn.event("execution_started")
        txn.put_work(ready("e1", "b"))
        txn.execution.status = "completed"
        return "created"

    again = await store.create(record("e1"), plan)
    assert again is None
    assert len(await store.events("e1")) == 1
    assert [w.node for w in await store.work("e1")] == ["a"]
    stored = await store.get("e1")
    assert stored is not None and stored.status == "running"


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

    def join_context(txn: Txn) -> None:  # rare: written by a statement of its own
        txn.execution.context_id = "ctx-1"
        txn.execution.metadata = '{"joined": true}'

    await store.apply("old", join_context)
    assert [r.id for r in await store.list_executions(context_id="ctx-1")] == ["old"]
    joined = await store.get("old")
    assert joined is not None and joined.meta() == {"joined": True}
    assert await store.count_executions() == 3
    assert await store.count_executions(status=["completed", "pending"], context_id="ctx-1") == 1


async def test_list_executions_by_the_start_of_an_id(store: Store) -> None:
    """``id_prefix``: the ids that start with it, by code point (no
    collation's idea of equal letters or of punctuation to pass over),
    newest first, paged and counted like any filter."""
    names = ["ab-1", "ab-2", "abc", "ab", "aB-3", "ac", "b", "ab\u00e9", "ab\U0010ffff", "a\u00ff"]
    for index, name in enumerate(names):
        await store.create(record(name, created=1000.0 + index), lambda txn: None)
    await store.apply("ab-2", lambda txn: setattr(txn.execution, "status", "completed"))

    async def listed(prefix: str, **filters: Any) -> list[str]:
        rows = await store.list_executions(id_prefix=prefix, **filters)
        assert await store.count_executions(id_prefix=prefix, **filters) == len(rows)
        return [r.id for r in rows]

    assert await listed("ab-") == ["ab-2", "ab-1"]
    newest_first = ["ab\U0010ffff", "ab\u00e9", "ab", "abc", "ab-2", "ab-1"]
    assert await listed("ab") == newest_first
    assert await listed("ab\U0010ffff") == ["ab\U0010ffff"]
    assert await listed("a\u00ff") == ["a\u00ff"]
    assert await listed("aB") == ["aB-3"]
    assert await listed("abc") == ["abc"]
    assert await listed("abd") == []
    assert await listed("ab-", status=["completed"]) == ["ab-2"]
    assert await listed("") == [r.id for r in await store.list_executions()]
    page = await store.list_executions(id_prefix="ab", limit=2, before=(1000.0 + 7, "ab\u00e9"))
    assert [r.id for r in page] == ["ab", "abc"]


async def test_a_listing_without_the_state_reads_none(store: Store) -> None:
    """``state=False``: the rows as with it, their state "" — a large one is
    not rebuilt from its snapshot for a list that does not show it."""
    big = '{"blob":"' + "x" * 300_000 + '"}'
    for name, state in (("small", '{"x":1}'), ("large", big)):
        made = record(name, created=1000.0 + len(name))
        made.state = state
        await store.create(made, lambda txn: None)
    full = await store.list_executions()
    bare = await store.list_executions(state=False)
    assert [r.state for r in full] == ['{"x":1}', big]
    assert [r.state for r in bare] == ["", ""]
    for with_state, without in zip(full, bare, strict=True):
        without.state = with_state.state
        assert without == with_state
    assert [r.id for r in await store.list_executions(id_prefix="la", state=False)] == ["large"]


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


# -- push configs: the A2A push outbox ----------------------------------------


def push_config(task_id: str, config_id: str = "c1", *, created: float = 1.0) -> PushConfigRecord:
    config = f'{{"taskId":"{task_id}","id":"{config_id}","url":"https://hook.test/x"}}'
    return PushConfigRecord(task_id, config_id, config, "1.0", "caller-a", created)


async def set_status(store: Store, execution_id: str, status: str, events: int = 1) -> None:
    def plan(txn: Txn) -> None:
        for _ in range(events):
            txn.event("node_completed")
        txn.execution.status = status  # type: ignore[assignment]

    await store.apply(execution_id, plan)


async def test_push_configs_put_list_replace_delete(store: Store) -> None:
    await store.put_push_config(push_config("t1", "b", created=2.0))
    await store.put_push_config(push_config("t1", "a", created=1.0))
    await store.put_push_config(push_config("t2", "a"))
    assert [c.id for c in await store.push_configs("t1")] == ["a", "b"]
    replaced = push_config("t1", "b", created=2.0)
    replaced.config = replaced.config.replace("hook.test/x", "hook.test/y")
    await store.put_push_config(replaced)
    (stored,) = [c for c in await store.push_configs("t1") if c.id == "b"]
    assert stored == replaced and stored.settled is False
    assert await store.delete_push_config("t1", "b") is True
    assert await store.delete_push_config("t1", "b") is False
    assert [c.id for c in await store.push_configs("t1")] == ["a"]
    assert await store.push_configs("nobody") == []


async def test_a_push_config_past_the_limit_is_not_written_even_by_racing_adds(
    store: Store,
) -> None:
    for n in range(9):
        assert await store.put_push_config(push_config("t1", f"c{n}"), limit=10) is True
    # Connections ready (PostgreSQL), so that the adds below do meet in the store.
    await asyncio.gather(*(store.push_configs("t1") for _ in range(4)))
    racing = [store.put_push_config(push_config("t1", f"new{n}"), limit=10) for n in range(4)]
    assert sorted(await asyncio.gather(*racing)) == [False, False, False, True]
    assert len(await store.push_configs("t1")) == 10
    replaced = push_config("t1", "c0", created=9.0)
    assert await store.put_push_config(replaced, limit=10) is True  # not one more
    assert await store.put_push_config(push_config("t2", "c0"), limit=10) is True
    assert len(await store.push_configs("t1")) == 10


async def test_claim_pushes_only_parked_or_terminal_tasks_past_the_cursor(store: Store) -> None:
    for task in ("running", "parked", "done", "pushed"):
        await create_with_work(store, task)
        await store.put_push_config(push_config(task))
    await set_status(store, "parked", "waiting")
    await set_status(store, "done", "completed", events=2)
    await set_status(store, "pushed", "completed")
    (pushed,) = await store.push_configs("pushed")
    pushed.pushed_seq, pushed.settled = 2, True
    await store.put_push_config(pushed)
    await store.put_push_config(push_config("no-such-task"))

    now = time.time()
    claims = await store.claim_pushes("me", now=now, lease_until=now + 30, limit=10)
    assert sorted((c.config.task_id, c.last_seq, c.status) for c in claims) == [
        ("done", 3, "completed"),
        ("parked", 2, "waiting"),
    ]
    assert all(c.config.lease_owner == "me" for c in claims)
    # Leased: nobody else gets them until the lease expires.
    assert await store.claim_pushes("other", now=now, lease_until=now + 30, limit=10) == []
    later = now + 60
    retaken = await store.claim_pushes("other", now=later, lease_until=later + 30, limit=1)
    assert len(retaken) == 1


async def test_release_push_moves_the_cursor_and_needs_the_lease(store: Store) -> None:
    await create_with_work(store, "t1")
    await store.put_push_config(push_config("t1"))
    await set_status(store, "t1", "waiting")
    now = time.time()
    (claim,) = await store.claim_pushes("me", now=now, lease_until=now + 30, limit=5)
    config = claim.config
    config.attempts, config.next_attempt_at, config.last_error = 1, now + 1000, "HTTP 503"
    assert await store.release_push("thief", config) is False
    assert await store.release_push("me", config) is True
    assert await store.release_push("me", config) is False  # released: no longer held
    # Retry not due yet.
    assert await store.claim_pushes("me", now=now, lease_until=now + 30, limit=5) == []
    (stored,) = await store.push_configs("t1")
    assert (stored.attempts, stored.last_error, stored.lease_owner) == (1, "HTTP 503", None)

    (claim,) = await store.claim_pushes("me", now=now + 2000, lease_until=now + 2030, limit=5)
    config = claim.config
    config.pushed_seq, config.attempts, config.last_error = claim.last_seq, 0, None
    assert await store.release_push("me", config) is True
    # Delivered up to the task's last event: nothing more until it changes.
    assert await store.claim_pushes("me", now=now + 3000, lease_until=now + 3030, limit=5) == []
    await set_status(store, "t1", "completed")
    (claim,) = await store.claim_pushes("me", now=now + 3000, lease_until=now + 3030, limit=5)
    config = claim.config
    config.pushed_seq, config.settled = claim.last_seq, True
    assert await store.release_push("me", config) is True
    assert await store.claim_pushes("me", now=now + 4000, lease_until=now + 4030, limit=5) == []
    (stored,) = await store.push_configs("t1")
    assert stored.settled is True and stored.pushed_seq == 3


async def test_a_version_1_store_is_upgraded_in_place(durable_url: str) -> None:
    """A store written by the previous release (no push_configs) opens, keeps its
    rows and gains the new table."""
    v1_tables = ["executions", "events", "work", "waits", "schema_info"]
    dialect = "sqlite" if durable_url.startswith("sqlite") else "postgresql"
    statements = [*ddl(dialect, v1_tables), "INSERT INTO schema_info VALUES ('version', '1')"]
    await _run_sql(durable_url, statements)
    old = store_from_url(durable_url)
    await old.open()
    await create_with_work(old, "kept")
    await old.put_push_config(push_config("kept"))
    assert [c.id for c in await old.push_configs("kept")] == ["c1"]
    await old.close()
    version = await _run_sql(durable_url, [], "SELECT value FROM schema_info")
    assert version == str(SCHEMA_VERSION)


async def test_a_store_newer_than_the_code_is_refused(durable_url: str) -> None:
    s = store_from_url(durable_url)
    await s.open()
    await s.close()
    await _run_sql(durable_url, ["UPDATE schema_info SET value = '99'"])
    newer = store_from_url(durable_url)
    with pytest.raises(StoreError, match="version 99 is newer"):
        await newer.open()


async def test_a_store_newer_than_the_code_is_left_as_it_is(durable_url: str) -> None:
    s = store_from_url(durable_url)
    await s.open()
    await s.close()
    # As a newer version might: an index of ours dropped, the version raised.
    await _run_sql(
        durable_url, ["DROP INDEX ix_work_available", "UPDATE schema_info SET value = '99'"]
    )
    with pytest.raises(StoreError, match="version 99 is newer"):
        await store_from_url(durable_url).open()
    found = await _run_sql(durable_url, [], INDEX_QUERY[durable_url.split(":")[0]])
    assert found == 0  # our DDL did not run over it


#: Whether the work table's index of when work is due exists, per driver.
INDEX_QUERY = {
    "sqlite": "SELECT count(*) FROM sqlite_master WHERE name = 'ix_work_available'",
    "postgresql": "SELECT count(*) FROM pg_indexes WHERE indexname = 'ix_work_available'",
}


def test_a_current_sqlite_store_opens_without_its_ddl(tmp_path: Path) -> None:
    """Opening a store of this version runs no DDL: a command that reads it
    does not pay SQLAlchemy's import (what makes the DDL), ~0.2 s."""
    url = f"sqlite:///{tmp_path}/store.db"
    opened = (
        "import asyncio, sys\n"
        "from agent_node.store import store_from_url\n"
        "async def main():\n"
        "    store = store_from_url(sys.argv[1])\n"
        "    await store.open()\n"
        "    await store.close()\n"
        "asyncio.run(main())\n"
        "print('sqlalchemy' in sys.modules)\n"
    )
    run = [sys.executable, "-c", opened, url]
    made = subprocess.run(run, capture_output=True, text=True, check=True)
    assert made.stdout.strip() == "True", made  # a new store: its DDL made it
    reopened = subprocess.run(run, capture_output=True, text=True, check=True)
    assert reopened.stdout.strip() == "False", reopened


async def _run_sql(url: str, statements: list[str], query: str | None = None) -> object:
    """Run statements (and one query) with the driver directly, outside any store."""
    if url.startswith("sqlite"):
        path = url.removeprefix("sqlite:///")
        with sqlite3.connect(path) as conn:
            for statement in statements:
                conn.execute(statement)
            return conn.execute(query).fetchone()[0] if query else None
    conn = await asyncpg.connect(url)
    try:
        for statement in statements:
            await conn.execute(statement)
        return await conn.fetchval(query) if query else None
    finally:
        await conn.close()


def delegation(
    execution_id: str, node: str = "ask", *, task: str = "r1", at: float = 10.0, state: str = "sent"
) -> DelegationRecord:
    return DelegationRecord(
        execution_id,
        node,
        1,
        "writer",
        task,
        "https://w/a2a",
        "1.0",
        "spiffe://d/w",
        1.0,
        at,
        state=state,  # type: ignore[arg-type]
    )


async def test_delegations_are_written_with_the_wait_and_found_by_task(store: Store) -> None:
    await create_with_work(store, "e1")

    def park(txn: Txn) -> None:
        txn.put_wait(WaitRecord("e1", "ask", 1, "delegation", "delegation:r1", None))
        txn.put_delegation(delegation("e1", task="r1", at=10.0))
        txn.put_delegation(delegation("e1", "other", task="r2", at=20.0))

    await store.apply("e1", park, related=True)
    assert [d.node for d in await store.delegations_of_task("r1")] == ["ask"]
    assert await store.delegations_of_task("nope") == []
    assert [d.remote_task_id for d in await store.delegations("e1")] == ["r1", "r2"]
    assert await store.delegations("e2") == []
    assert (await store.delegation("e1", "ask", 1)) == delegation("e1", task="r1", at=10.0)
    assert await store.delegation("e1", "ask", 2) is None

    await store.apply("e1", lambda txn: txn.delete_delegation("other", 1), related=True)
    assert [d.remote_task_id for d in await store.delegations("e1")] == ["r1"]


async def test_a_transaction_reads_delegations_under_the_lock_and_updates_conditionally(
    store: Store,
) -> None:
    await create_with_work(store, "e1")
    await store.apply("e1", lambda txn: txn.put_delegation(delegation("e1", state="sending")))

    def answer(txn: Txn) -> None:
        (read,) = txn.delegations or []
        assert read.state == "sending"
        txn.update_delegation(replace(read, state="asked", question='{"id": "q1"}'), read)

    await store.apply("e1", answer, related=True)
    stored = await store.delegation("e1", "ask", 1)
    assert stored is not None and (stored.state, stored.question) == ("asked", '{"id": "q1"}')

    # A copy read before that change cannot be written back: the whole
    # transaction fails, and nothing of it stays.
    stale = delegation("e1", state="sending")

    def write_back(txn: Txn) -> None:
        txn.event("noted")
        txn.update_delegation(replace(stale, relay="lost?"), stale)

    with pytest.raises(StoreError, match="changed under a transaction"):
        await store.apply("e1", write_back, related=True)
    assert await store.delegation("e1", "ask", 1) == stored
    assert [e.kind for e in await store.events("e1")] == ["execution_started"]


async def test_claiming_delegations_moves_their_poll_time(store: Store) -> None:
    await create_with_work(store, "e1")

    def park(txn: Txn) -> None:
        for node, at in (("a", 10.0), ("b", 30.0), ("c", 5.0)):
            txn.put_delegation(delegation("e1", node, task=f"r-{node}", at=at))

    assert await store.next_delegation_at() is None
    await store.apply("e1", park)
    assert await store.next_delegation_at() == 5.0  # the watchdog sleeps until then
    claimed = await store.claim_delegations(now=15.0, lease_until=100.0, limit=10)
    assert await store.next_delegation_at() == 30.0
    assert sorted((d.node, d.next_poll_at, d.polls) for d in claimed) == [
        ("a", 100.0, 1),
        ("c", 100.0, 1),
    ]
    # Claimed rows are leased: a second watchdog gets only what is still due.
    assert await store.claim_delegations(now=15.0, lease_until=100.0, limit=10) == []
    first = next(d for d in claimed if d.node == "c")
    assert await store.reschedule_delegation(first, 12.0, "peer 'writer' unreachable") is True
    again = await store.claim_delegations(now=15.0, lease_until=200.0, limit=1)
    assert [(d.node, d.polls, d.next_poll_at, d.last_error) for d in again] == [
        ("c", 2, 200.0, "peer 'writer' unreachable")
    ]
    # A row that moved on (another state or turn) is not rescheduled from an old copy.
    assert await store.reschedule_delegation(replace(first, turn=1), 1.0) is False
    assert await store.drop_delegation(replace(first, state="canceling")) is False
    assert await store.drop_delegation(first) is True
    assert await store.reschedule_delegation(first, 12.0) is False  # gone
    assert sorted(d.node for d in await store.delegations("e1")) == ["a", "b"]


async def test_waking_a_peers_backed_off_delegations(store: Store) -> None:
    await create_with_work(store, "e1")

    def park(txn: Txn) -> None:
        for node in ("a", "b", "c"):
            txn.put_delegation(delegation("e1", node, at=0.0, state="sending"))

    await store.apply("e1", park)
    a, b, _being_sent = sorted(
        await store.claim_delegations(now=1.0, lease_until=100.0, limit=10), key=lambda d: d.node
    )
    await store.reschedule_delegation(a, 50.0, "unreachable")  # backed off
    await store.reschedule_delegation(b, 50.0)  # polled later, no failure
    # c is still claimed (being sent): waking must not hand it out twice.
    assert await store.wake_delegations("writer", "sending", 2.0, 60.0) == 1
    due = await store.claim_delegations(now=2.0, lease_until=100.0, limit=10)
    assert [d.node for d in due] == ["a"]
    assert await store.wake_delegations("someone-else", "sending", 2.0, 60.0) == 0


async def test_a_version_3_delegation_is_upgraded_as_sent(durable_url: str) -> None:
    """A delegation parked by the previous release keeps its row, read as
    ``sent`` (it was sent before it was written), with the new columns empty."""
    dialect = "sqlite" if durable_url.startswith("sqlite") else "postgresql"
    v3 = [
        *ddl(dialect, ["executions", "events", "work", "waits", "push_configs", "schema_info"]),
        "CREATE TABLE delegations (execution_id TEXT NOT NULL, node TEXT NOT NULL,"
        " visit INTEGER NOT NULL, peer TEXT NOT NULL, remote_task_id TEXT NOT NULL,"
        " endpoint TEXT NOT NULL, version TEXT NOT NULL, identity TEXT,"
        " sent_at DOUBLE PRECISION NOT NULL, next_poll_at DOUBLE PRECISION NOT NULL,"
        " polls INTEGER NOT NULL, relay TEXT, PRIMARY KEY (execution_id, node, visit))",
        "INSERT INTO delegations VALUES ('e', 'ask', 1, 'writer', 'r1', 'https://w/a2a', '1.0',"
        " NULL, 1.0, 2.0, 3, NULL)",
        "INSERT INTO schema_info VALUES ('version', '3')",
    ]
    await _run_sql(durable_url, v3)
    upgraded = store_from_url(durable_url)
    await upgraded.open()
    try:
        row = await upgraded.delegation("e", "ask", 1)
    finally:
        await upgraded.close()
    assert row is not None
    assert (row.state, row.turn, row.remote_task_id, row.polls, row.request) == (
        "sent",
        0,
        "r1",
        3,
        None,
    )
    version = await _run_sql(durable_url, [], "SELECT value FROM schema_info")
    assert version == str(SCHEMA_VERSION)


@pytest.mark.postgres
async def test_replicas_opening_an_empty_postgresql_database_together(pg_url: str) -> None:
    """Six replicas start at once on an empty database: one creates the
    schema, every one opens (it used to fail all but one on a duplicate key
    in schema_info)."""
    stores = [store_from_url(pg_url) for _ in range(6)]
    opened = await asyncio.gather(*(s.open() for s in stores), return_exceptions=True)
    try:
        assert [r for r in opened if r is not None] == []
        await create_with_work(stores[0], "e1")
        assert (await stores[5].get("e1")) is not None
    finally:
        for s in stores:
            await s.close()
    version = await _run_sql(pg_url, [], "SELECT value FROM schema_info")
    assert version == str(SCHEMA_VERSION)


async def test_a_version_5_store_gains_the_caller_column_filled_from_metadata(
    durable_url: str,
) -> None:
    """Executions written before version 6 are listed by caller after the
    upgrade: the new column is filled from their metadata, then indexed."""
    dialect = "sqlite" if durable_url.startswith("sqlite") else "postgresql"
    real = "DOUBLE PRECISION" if dialect == "postgresql" else "FLOAT"
    v5 = [
        *ddl(dialect, ["events", "work", "waits", "push_configs", "delegations", "schema_info"]),
        "CREATE TABLE executions (id TEXT PRIMARY KEY, workflow_id TEXT NOT NULL,"
        " workflow_version TEXT NOT NULL, workflow_ref TEXT, status TEXT NOT NULL,"
        " state TEXT NOT NULL, cursor TEXT NOT NULL, last_seq INTEGER NOT NULL, error TEXT,"
        f" context_id TEXT, metadata TEXT, created_at {real} NOT NULL,"
        f" updated_at {real} NOT NULL)",
        "INSERT INTO executions VALUES ('old-1', 'wf', '1', NULL, 'completed', '{}', '', 1,"
        """ NULL, NULL, '{"caller": "spiffe://x/alice"}', 1.0, 1.0)""",
        "INSERT INTO executions VALUES ('old-2', 'wf', '1', NULL, 'completed', '{}', '', 1,"
        " NULL, NULL, NULL, 2.0, 2.0)",
        "INSERT INTO schema_info VALUES ('version', '5')",
    ]
    await _run_sql(durable_url, v5)
    upgraded = store_from_url(durable_url)
    await upgraded.open()
    try:
        mine = await upgraded.list_executions(caller="spiffe://x/alice")
        await create_with_work(upgraded, "new-1")
        everyone = await upgraded.list_executions()
    finally:
        await upgraded.close()
    assert [r.id for r in mine] == ["old-1"]
    assert [r.id for r in everyone][-2:] == ["old-2", "old-1"]
    version = await _run_sql(durable_url, [], "SELECT value FROM schema_info")
    assert version == str(SCHEMA_VERSION)


async def test_prune_deletes_old_finished_executions_with_their_rows(store: Store) -> None:
    """Old finished executions go with their events and push configs; a
    recent one, a running one, one still owed a push and one with a
    delegation left stay."""
    for execution_id in ("old-1", "old-2", "owed", "held", "running", "recent"):
        await create_with_work(store, execution_id)

    def finish(txn: Txn) -> None:
        txn.event("execution_completed", data="{}")
        txn.delete_work("a", 1)
        txn.execution.status = "completed"

    for execution_id in ("old-1", "old-2", "owed", "held", "recent"):
        await store.apply(execution_id, finish)
    await store.put_push_config(push_config("owed"))
    await store.put_push_config(replace(push_config("old-1"), settled=True))
    await store.apply("held", lambda txn: txn.put_delegation(delegation("held", "d")))
    cut = time.time() + 0.001
    await asyncio.sleep(0.01)
    await store.apply("recent", lambda txn: txn.event("note"))
    assert await store.prune(cut, 1) == 1  # one batch of one: the oldest
    assert await store.get("old-1") is None
    assert await store.events("old-1") == []
    assert await store.push_configs("old-1") == []
    assert await store.prune(cut, 100) == 1
    assert await store.get("old-2") is None
    kept = {r.id for r in await store.list_executions()}
    assert kept == {"owed", "held", "running", "recent"}
    assert len(await store.events("recent")) == 3
    assert await store.prune(cut, 100) == 0

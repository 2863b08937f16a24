"""PostgreSQL: the executions table keeps room on its pages for the new
versions of its rows, so that a step's update of its execution is a HOT
update (no index written): set when a store is made, and on an older store
when it is opened — unless its lock would be waited for, or the role does
not own the table, and the store opens anyway."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from pydantic import BaseModel

from agent_node import Runtime, Workflow
from agent_node.store.postgres import PostgresStore
from agent_node.store.schema import EXECUTIONS_STORAGE
from agent_node.workflow.compiled import CompiledWorkflow

pytestmark = pytest.mark.postgres

WANTED = [f"{name}={value}" for name, value in EXECUTIONS_STORAGE.items()]


class State(BaseModel):
    n: int = 0


async def _step(state: State) -> dict[str, int]:
    return {"n": state.n + 1}


def _steps(count: int) -> CompiledWorkflow:
    wf = Workflow(f"storage{count}", version="1")
    wf.state(State)
    for i in range(count):
        wf.step(_step, name=f"s{i}")
    return wf.compile()


async def _sql(url: str, sql: str) -> Any:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


async def _storage(url: str) -> list[str]:
    """The executions table's storage parameters."""
    found = await _sql(url, "SELECT reloptions FROM pg_class WHERE oid = 'executions'::regclass")
    return list(found or [])


async def _opened_and_closed(url: str) -> None:
    store = PostgresStore(url, url)
    await store.open()
    await store.close()


async def test_a_new_store_keeps_room_and_most_step_updates_are_hot(pg_url: str) -> None:
    async with Runtime(pg_url) as rt:
        assert await _storage(pg_url) == WANTED
        steps = _steps(5)
        results = await asyncio.gather(*(rt.run(steps, State()) for _ in range(100)))
    assert {r.status for r in results} == {"completed"}
    conn = await asyncpg.connect(pg_url)
    try:
        deadline = time.monotonic() + 10
        while True:  # the server's counts are flushed a moment after the commits
            updates, hot = await conn.fetchrow(
                "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables"
                " WHERE relname = 'executions'"
            )
            if updates >= 500 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
    finally:
        await conn.close()
    assert updates >= 500, updates  # five updates an execution (four steps and its end)
    # The four steps of each execution can be HOT, its end (a new status)
    # cannot. Here ~60 % were on a quiet machine, 26 % beside the whole
    # suite; with full pages (fillfactor 100) 3 % (16 of 500).
    assert hot / updates > 0.1, (hot, updates)


async def test_an_older_store_gets_it_when_opened(pg_url: str) -> None:
    await _opened_and_closed(pg_url)
    await _sql(pg_url, "ALTER TABLE executions RESET (fillfactor)")
    assert await _storage(pg_url) == []
    await _opened_and_closed(pg_url)
    assert await _storage(pg_url) == WANTED


async def test_a_locked_table_is_left_to_the_next_open(pg_url: str) -> None:
    await _opened_and_closed(pg_url)
    await _sql(pg_url, "ALTER TABLE executions RESET (fillfactor)")
    holder = await asyncpg.connect(pg_url)
    try:
        transaction = holder.transaction()
        await transaction.start()
        # The lock a VACUUM takes: the store's ALTER would wait behind it.
        await holder.execute("LOCK TABLE executions IN SHARE UPDATE EXCLUSIVE MODE")
        began = time.monotonic()
        async with Runtime(pg_url) as rt:
            assert (await rt.run(_steps(2), State())).status == "completed"
        assert time.monotonic() - began < 10
        await transaction.rollback()
    finally:
        await holder.close()
    assert await _storage(pg_url) == []
    await _opened_and_closed(pg_url)
    assert await _storage(pg_url) == WANTED


@pytest.fixture
async def guest_url(pg_url: str) -> AsyncIterator[str]:
    """``pg_url`` as a role that may use the store's tables but owns none."""
    await _opened_and_closed(pg_url)
    role = f"an_guest_{uuid.uuid4().hex[:10]}"
    owner = await asyncpg.connect(pg_url)
    database = urlsplit(pg_url).path.lstrip("/")
    try:
        await owner.execute(f"CREATE ROLE {role} LOGIN")
        await owner.execute(f'GRANT CONNECT ON DATABASE "{database}" TO {role}')
        await owner.execute(f"GRANT USAGE ON SCHEMA public TO {role}")
        await owner.execute(f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {role}")
        await owner.execute(f"GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {role}")
        parts = urlsplit(pg_url)
        host = parts.netloc.rsplit("@", 1)[-1]
        yield urlunsplit(parts._replace(netloc=f"{role}@{host}"))
    finally:
        await owner.execute(f"DROP OWNED BY {role}")
        await owner.execute(f"DROP ROLE {role}")
        await owner.close()


async def test_a_role_that_does_not_own_the_table_opens_the_store(
    pg_url: str, guest_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    await _sql(pg_url, "ALTER TABLE executions RESET (fillfactor)")
    async with Runtime(guest_url) as rt:
        assert (await rt.run(_steps(2), State())).status == "completed"
    assert await _storage(pg_url) == []
    assert "ALTER TABLE executions SET (fillfactor = 70)" in caplog.text

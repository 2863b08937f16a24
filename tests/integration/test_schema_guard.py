"""An engine whose store a newer agent-node upgraded stops: it takes no
more work, cuts what runs here, lets its leases go, says so once at ERROR,
and its waiters learn why — found by reading the store's schema version
while it runs, at once when a claim fails."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time

import asyncpg
import pytest
from pydantic import BaseModel

from agent_node import Runtime, Workflow
from agent_node.engine.status import EngineState
from agent_node.errors import StoreOutdated
from agent_node.store.schema import SCHEMA_VERSION

NEWER = SCHEMA_VERSION + 1
SAID = f"upgraded to schema {NEWER} by a newer agent-node; this one ({SCHEMA_VERSION}) stops"


class S(BaseModel):
    done: bool = False


async def run_sql(url: str, *statements: str) -> None:
    """What a newer agent-node's upgrade does to the store, from outside it."""
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        try:
            for statement in statements:
                conn.execute(statement)
            conn.commit()
        finally:
            conn.close()
        return
    pg = await asyncpg.connect(url)
    try:
        for statement in statements:
            await pg.execute(statement)
    finally:
        await pg.close()


async def test_an_engine_stops_once_a_newer_agent_node_upgraded_its_store(
    durable_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    wf = Workflow("guarded", version="1")
    wf.state(S)
    started = asyncio.Event()

    @wf.step(next=None)
    async def hang(s: S) -> S:
        started.set()
        await asyncio.Event().wait()
        return s

    told: list[StoreOutdated] = []
    stopped = asyncio.Event()
    async with Runtime(durable_url, poll_interval=0.05) as runtime:
        runtime.engine.schema.every = 0.05
        runtime.engine.outdated_hooks.append(lambda error: (told.append(error), stopped.set()))
        execution_id = await runtime.start_execution(wf, S())
        await asyncio.wait_for(started.wait(), 10)
        waiting = asyncio.create_task(runtime.wait(execution_id))
        await run_sql(durable_url, f"UPDATE schema_info SET value = '{NEWER}'")
        await asyncio.wait_for(stopped.wait(), 10)
        with pytest.raises(StoreOutdated, match=re.escape(SAID)):
            await waiting
        assert runtime.engine.state is EngineState.OUTDATED
        assert told == [runtime.engine.crash]
        # Cut here, and its lease let go: a process of the newer release takes it at once.
        (work,) = await runtime.store.work(execution_id)
        assert work.lease_expires_at is not None and work.lease_expires_at <= time.time()
    said = [r for r in caplog.records if SAID in r.getMessage()]
    assert [r.levelname for r in said] == ["ERROR"]


async def test_a_failing_claim_has_the_version_read_at_once(durable_url: str) -> None:
    """What a newer schema looks like to an older engine: its claims fail.
    The guard then reads the version at once, not at its next round."""
    async with Runtime(durable_url, scope="all", poll_interval=0.05) as runtime:
        runtime.engine.schema.every = 3600.0
        await run_sql(
            durable_url,
            f"UPDATE schema_info SET value = '{NEWER}'",
            "ALTER TABLE work RENAME TO work_moved",
        )
        started = time.monotonic()
        while runtime.engine.state is EngineState.RUNNING and time.monotonic() - started < 5:
            await asyncio.sleep(0.02)
        assert runtime.engine.state is EngineState.OUTDATED
        assert isinstance(runtime.engine.crash, StoreOutdated)

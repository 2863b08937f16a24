"""A waiter takes the record its execution's last commit wrote
(:meth:`agent_node.engine.status.StatusWatch.ended`) instead of reading the
row again, and gets what the read would have given."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest
from pydantic import BaseModel

from agent_node import Runtime, Workflow
from agent_node.errors import PermanentFailure
from agent_node.store.records import ExecutionRecord
from agent_node.store.snapshots import ROW_LIMIT


class Tally(BaseModel):
    n: int = 0
    blob: str = ""


def workflows() -> tuple[Any, Any]:
    good = Workflow("handoff_good", version="1")
    good.state(Tally)

    @good.step
    async def one(s: Tally) -> dict[str, Any]:
        return {"n": s.n + 1}

    @good.step
    async def two(s: Tally) -> dict[str, Any]:
        return {"n": s.n + 10}

    bad = Workflow("handoff_bad", version="1")
    bad.state(Tally)

    @bad.step
    async def boom(s: Tally) -> None:
        raise PermanentFailure("no way")

    return good.compile(), bad.compile()


def counting_reads(runtime: Runtime) -> list[str]:
    """The ids the store's ``get`` is asked for from now on."""
    store, reads = runtime.store, []
    read = store.get

    async def get(execution_id: str) -> ExecutionRecord | None:
        reads.append(execution_id)
        return await read(execution_id)

    store.get = get  # type: ignore[method-assign]
    return reads


def fields(record: ExecutionRecord) -> dict[str, Any]:
    return {f.name: getattr(record, f.name) for f in dataclasses.fields(record) if f.compare}


async def test_a_waiter_takes_the_record_its_execution_ended_with(
    store_url: str, runtime_factory: Any
) -> None:
    runtime: Runtime = await runtime_factory(store_url)
    good, bad = workflows()
    reads = counting_reads(runtime)
    engine = runtime.engine
    for workflow, status in ((good, "completed"), (bad, "failed")):
        ids = [(await engine.submit(workflow, Tally(), watch=True))[0] for _ in range(20)]
        ended = await asyncio.gather(*(engine.wait(execution_id) for execution_id in ids))
        waiters_read, reads[:] = list(reads), []
        for execution_id in ids:
            engine.release(execution_id)
        read = [await runtime.store.get(execution_id) for execution_id in ids]
        reads.clear()
        for record, row in zip(ended, read, strict=True):
            assert row is not None and record.status == status
            assert fields(record) == fields(row)
            assert record == row
        assert ended[0].state == '{"n":11,"blob":""}' if status == "completed" else ended[0].error
        if not store_url.startswith("postgresql"):
            # The commit's results come before its notices: no waiter read a row.
            # (PostgreSQL's notices come on another connection, often first.)
            assert waiters_read == []
    assert engine._status._ended == {}


async def test_a_state_kept_outside_the_row_is_read(store_url: str, runtime_factory: Any) -> None:
    runtime: Runtime = await runtime_factory(store_url)
    good, _ = workflows()
    reads = counting_reads(runtime)
    blob = "x" * (ROW_LIMIT + 1000)
    result = await runtime.run(good, Tally(blob=blob))
    assert result.status == "completed"
    assert result.state == Tally(n=11, blob=blob)
    assert reads == [result.execution_id]


async def test_a_watch_released_unwaited_keeps_nothing(runtime_factory: Any, tmp_path: Any) -> None:
    runtime: Runtime = await runtime_factory(f"sqlite:///{tmp_path}/store.db")
    good, _ = workflows()
    engine = runtime.engine
    ids = [(await engine.submit(good, Tally(), watch=True))[0] for _ in range(10)]
    for execution_id in ids[:5]:  # released before they end
        engine.release_status_watch(execution_id)
    for execution_id in ids[5:]:  # and after
        while (await runtime.store.get(execution_id)).status != "completed":  # type: ignore[union-attr]
            await asyncio.sleep(0.01)
        engine.release_status_watch(execution_id)
    assert engine._status._ended == {}
    assert engine._status.waiters == {}


@pytest.mark.parametrize("until", ["parked", "terminal"])
async def test_a_waiter_that_comes_late_reads_the_row(
    until: str, runtime_factory: Any, tmp_path: Any
) -> None:
    runtime: Runtime = await runtime_factory(f"sqlite:///{tmp_path}/store.db")
    good, _ = workflows()
    engine = runtime.engine
    execution_id, _ = await engine.submit(good, Tally())  # not watched: nothing handed
    while (await runtime.store.get(execution_id)).status != "completed":  # type: ignore[union-attr]
        await asyncio.sleep(0.01)
    reads = counting_reads(runtime)
    record = await engine.wait(execution_id, until=until)  # type: ignore[arg-type]
    assert record.status == "completed" and reads == [execution_id]
    assert engine._status._ended == {}

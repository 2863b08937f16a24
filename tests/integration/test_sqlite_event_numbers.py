"""SQLite logs an execution's events as rows ``num << 32 | seq`` (schema
version 10). A commit takes ``num`` from the record it writes, carried from
the row's insert or read through the runner's steps, and looks it up in the
row only when the record does not know it: either way every event lands in
its own execution's range."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from pydantic import BaseModel

from agent_node import Runtime, Workflow
from agent_node.store import Txn, store_from_url
from agent_node.store.sql import EXECUTION_COLUMNS
from agent_node.store.sql_rows import execution_from_row
from agent_node.store.sqlite_events import write_log_txn
from agent_node.store.sqlite_txn import LOCK_EXECUTION

RUNS = 20
STEPS = 5
#: The lookup of an execution's number an event's INSERT makes when its
#: record does not carry it (store/sqlite_events.py).
LOOKUP = "SELECT num FROM executions WHERE id"


class Count(BaseModel):
    n: int = 0


def _logs(db: Path) -> tuple[dict[str, int], dict[int, list[tuple[int, str]]]]:
    """Each execution's number, and the raw log: (seq, kind) by number."""
    with sqlite3.connect(db) as conn:
        nums = {str(i): int(n) for i, n in conn.execute("SELECT id, num FROM executions")}
        logs: dict[int, list[tuple[int, str]]] = {}
        for high, seq, kind in conn.execute(
            "SELECT id >> 32, id & 4294967295, kind FROM events ORDER BY id"
        ):
            logs.setdefault(high, []).append((seq, kind))
    return nums, logs


async def test_concurrent_runs_log_under_the_numbers_their_records_carry(
    traced: tuple[Runtime, list[str]], tmp_path: Path
) -> None:
    rt, statements = traced
    db = tmp_path / "store.db"
    wf = Workflow("chain", version="1")
    wf.state(Count)
    for i in range(STEPS):

        async def step(state: Count) -> dict[str, int]:
            await asyncio.sleep(0)  # the runs' commits share batches
            return {"n": state.n + 1}

        wf.step(step, name=f"s{i}")
    compiled = wf.compile()
    results = await asyncio.gather(*(rt.run(compiled, Count()) for _ in range(RUNS)))
    assert [r.status for r in results] == ["completed"] * RUNS
    assert all(r.state == Count(n=STEPS) for r in results)
    inserts = [s for s in statements if s.startswith("INSERT INTO events")]
    assert len(inserts) >= RUNS * STEPS
    # No commit had to look its execution's number up.
    assert [s for s in statements if LOOKUP in s] == []
    nums, logs = _logs(db)
    assert len(set(nums.values())) == RUNS
    assert set(logs) == set(nums.values())  # no event outside an execution's range
    for result in results:
        log = logs[nums[result.execution_id]]
        assert [seq for seq, _ in log] == list(range(1, len(log) + 1))
        assert log[0][1] == "execution_started" and log[-1][1] == "execution_completed"
        assert [s for s, k in log if k == "node_completed"] != []


async def test_a_record_that_does_not_know_its_number_logs_in_its_range(tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    url = f"sqlite:///{db}"
    wf = Workflow("one", version="1")
    wf.state(Count)

    @wf.step
    async def only(state: Count) -> dict[str, int]:
        return {"n": 1}

    async with Runtime(url) as rt:
        ids = [(await rt.run(wf.compile(), Count())).execution_id for _ in range(3)]
        before = {x: [(e.seq, e.kind) for e in await rt.store.events(x)] for x in ids}
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        select = f"SELECT {EXECUTION_COLUMNS} FROM executions WHERE id = ?"
        unknown = Txn(execution_from_row(conn.execute(select, (ids[1],)).fetchone()), 1.0)
        assert unknown.execution.num == 0
        unknown.event("noted", data='"a"')
        unknown.event("noted", data='"b"')
        known = Txn(execution_from_row(conn.execute(LOCK_EXECUTION, (ids[0],)).fetchone()), 1.0)
        assert known.execution.num > 0
        known.event("noted", data='"c"')
        for txn in (unknown, known):
            write_log_txn(conn, txn)
        conn.execute("COMMIT")
    finally:
        conn.close()
    store = store_from_url(url)
    await store.open()
    try:
        after = {x: [(e.seq, e.kind, e.data) for e in await store.events(x)] for x in ids}
    finally:
        await store.close()
    assert {x: [(seq, kind) for seq, kind, _ in log] for x, log in after.items()} == {
        ids[0]: [*before[ids[0]], (len(before[ids[0]]) + 1, "noted")],
        ids[1]: [*before[ids[1]], *((len(before[ids[1]]) + i, "noted") for i in (1, 2))],
        ids[2]: before[ids[2]],
    }
    assert [d for _, k, d in after[ids[0]] + after[ids[1]] if k == "noted"] == ['"c"', '"a"', '"b"']

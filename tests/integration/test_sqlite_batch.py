"""A batch of the SQLite writer's jobs in one transaction
(store/sqlite_batch.py): replayable jobs (a node's commit, a new execution)
run without savepoints; one that fails before it wrote needs no undo, one
that fails after it wrote has the batch rolled back and run again, each job
in a savepoint. Either way each job's outcome is its own and nothing is
written twice or left half done."""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

from pydantic import BaseModel

from agent_node import Runtime, Workflow
from agent_node.errors import Fenced, UnknownExecution
from agent_node.store import Txn
from agent_node.store.records import ExecutionRecord
from agent_node.store.sqlite import SqliteStore
from agent_node.store.txn import Fence

RUNS = 20
STEPS = 5


class Count(BaseModel):
    n: int = 0
    trail: list[str] = []


def chain(steps: int = STEPS) -> Any:
    wf = Workflow(f"chain{steps}", version="1")
    wf.state(Count)
    for i in range(steps):

        async def step(state: Count, name: str = f"s{i}") -> dict[str, Any]:
            await asyncio.sleep(0)  # the runs' commits share batches
            # An append: a patch that, applied twice, shows.
            return {"n": state.n + 1, "trail": [*state.trail, name]}

        wf.step(step, name=f"s{i}")
    return wf.compile()


def parked() -> Any:
    wf = Workflow("parked", version="1")
    wf.state(Count)
    wf.wait("w", event="go")
    return wf.compile()


def noted(text: str) -> Any:
    def plan(txn: Txn) -> int:
        return txn.event("noted", data=f'"{text}"').seq

    return plan


def scratch_table(conn: sqlite3.Connection) -> tuple[None, list[Any]]:
    conn.execute("CREATE TABLE scratch (x)")
    return None, []


async def failing_after_a_write(store: SqliteStore) -> tuple[list[int], Any]:
    """A job that writes a row of a scratch table, then raises; and a list
    that grows by one each time it runs."""
    await store._writer.submit(scratch_table)
    runs: list[int] = []

    def half_done(conn: sqlite3.Connection) -> tuple[None, list[Any]]:
        runs.append(1)
        conn.execute("INSERT INTO scratch VALUES (1)")
        raise RuntimeError("failed after a write")

    return runs, half_done


async def parked_runs(rt: Runtime, count: int) -> tuple[SqliteStore, list[str]]:
    """The store, and ``count`` executions parked on an event."""
    assert isinstance(rt.store, SqliteStore)
    return rt.store, [(await rt.run(parked(), Count())).execution_id for _ in range(count)]


async def assert_noted_once_and_no_scratch(rt: Runtime, ids: list[str]) -> None:
    """Each of ``ids`` has its note once; the failed job's row is gone."""
    for x in ids:
        assert await notes_of(rt, x) == [f'"note {x}"']
    assert isinstance(rt.store, SqliteStore)
    with sqlite3.connect(rt.store.path) as conn:
        assert conn.execute("SELECT count(*) FROM scratch").fetchone() == (0,)


async def notes_of(rt: Runtime, execution_id: str) -> list[str | None]:
    return [e.data for e in await rt.store.events(execution_id) if e.kind == "noted"]


async def test_concurrent_commits_share_batches_without_savepoints(
    traced: tuple[Runtime, list[str]],
) -> None:
    rt, statements = traced
    results = await asyncio.gather(*(rt.run(chain(), Count()) for _ in range(RUNS)))
    assert [r.status for r in results] == ["completed"] * RUNS
    trail = [f"s{i}" for i in range(STEPS)]
    assert all(r.state == Count(n=STEPS, trail=trail) for r in results)
    for result in results:
        assert [e.seq for e in result.events] == list(range(1, len(result.events) + 1))
    commits = [s for s in statements if s == "COMMIT"]
    updates = [s for s in statements if s.startswith("UPDATE executions")]
    assert len(commits) < len(updates) / 2  # batches of several jobs
    assert [s for s in statements if "SAVEPOINT" in s or "ROLLBACK" in s] == []


async def test_a_job_that_fails_before_it_writes_needs_no_undo(
    traced: tuple[Runtime, list[str]],
) -> None:
    rt, statements = traced
    ids = [(await rt.run(parked(), Count())).execution_id for _ in range(6)]
    statements.clear()
    lost = Fence("w", 1, 999, "nobody")
    outcomes = await asyncio.gather(
        *(rt.store.apply(x, noted(f"note {x}")) for x in ids[:5]),
        rt.store.apply(ids[5], noted("fenced"), fence=lost),
        rt.store.apply("no-such-execution", noted("unknown")),
        return_exceptions=True,
    )
    assert [type(o) for o in outcomes[5:]] == [Fenced, UnknownExecution]
    assert all(isinstance(o, int) for o in outcomes[:5])
    assert statements.count("BEGIN IMMEDIATE") == 1  # one batch
    assert [s for s in statements if "SAVEPOINT" in s or "ROLLBACK" in s] == []
    for x in ids[:5]:
        assert await notes_of(rt, x) == [f'"note {x}"']
    assert await notes_of(rt, ids[5]) == []


async def test_a_job_that_fails_after_it_wrote_has_the_batch_run_again(
    traced: tuple[Runtime, list[str]],
) -> None:
    rt, statements = traced
    store, ids = await parked_runs(rt, 5)
    runs, half_done = await failing_after_a_write(store)

    statements.clear()
    new = ExecutionRecord(
        "made-in-the-batch", "parked", "1", None, "pending", "{}", "", 0, None, None, None, 1.0, 1.0
    )
    outcomes = await asyncio.gather(
        *(store.apply(x, noted(f"note {x}")) for x in ids),
        store.create(new, noted("created")),
        store._writer.submit(half_done, replayable=True),  # after the others: they ran
        return_exceptions=True,
    )
    assert all(isinstance(o, int) for o in outcomes[:5])
    assert outcomes[5] == 1
    assert isinstance(outcomes[6], RuntimeError)
    assert runs == [1, 1]  # run, rolled back with the batch, run again (guarded)
    assert statements.count("BEGIN IMMEDIATE") == 2
    assert "ROLLBACK" in statements and "ROLLBACK TO job" in statements
    await assert_noted_once_and_no_scratch(rt, ids)  # each job's writes once
    assert await notes_of(rt, "made-in-the-batch") == ['"created"']
    made = await store.get("made-in-the-batch")
    assert made is not None and made.last_seq == 1


async def test_a_batch_with_a_job_that_cannot_run_again_keeps_savepoints(
    traced: tuple[Runtime, list[str]],
) -> None:
    rt, statements = traced
    store, ids = await parked_runs(rt, 3)
    runs, half_done = await failing_after_a_write(store)

    statements.clear()
    outcomes = await asyncio.gather(
        *(store.apply(x, noted(f"note {x}")) for x in ids),
        store._writer.submit(half_done),  # not replayable: run once, in its savepoint
        return_exceptions=True,
    )
    assert isinstance(outcomes[3], RuntimeError)
    assert runs == [1]
    assert statements.count("BEGIN IMMEDIATE") == 1
    assert statements.count("SAVEPOINT job") == 4 and "ROLLBACK TO job" in statements
    await assert_noted_once_and_no_scratch(rt, ids)


async def test_node_commits_run_again_from_their_rows(traced: tuple[Runtime, list[str]]) -> None:
    """Workflows run while a job that fails after its write joins their
    batches: each batch it joins is run again, the runner's commits (planned
    on what the runner held) planned again on their rows, written once."""
    rt, statements = traced
    store = rt.store
    assert isinstance(store, SqliteStore)
    runs, half_done = await failing_after_a_write(store)

    async def spoil(done: asyncio.Event) -> int:
        """Join each batch the runs' commits start, after them."""
        failed, loop = 0, asyncio.get_running_loop()
        while not done.is_set():
            if not store._writer._pending.get(loop):
                await asyncio.sleep(0)
                continue
            try:
                await store._writer.submit(half_done, replayable=True)
            except RuntimeError:
                failed += 1
        return failed

    done = asyncio.Event()
    spoiler = asyncio.create_task(spoil(done))
    steps = 4 * STEPS  # a batch (one wave of the runs' steps) each
    try:
        results = await asyncio.gather(*(rt.run(chain(steps), Count()) for _ in range(RUNS)))
    finally:
        done.set()
        failed = await spoiler
    assert [r.status for r in results] == ["completed"] * RUNS
    trail = [f"s{i}" for i in range(steps)]
    assert all(r.state == Count(n=steps, trail=trail) for r in results)
    for result in results:
        seqs = [e.seq for e in result.events]
        assert seqs == list(range(1, len(seqs) + 1))
        kinds = [(e.kind, e.node) for e in result.events]
        assert len(kinds) == len(set(kinds))  # no visit logged twice
    replayed = len(runs) - failed
    assert replayed >= 5  # batches run again, with the runs' commits in them
    assert statements.count("ROLLBACK") >= replayed
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("SELECT count(*) FROM scratch").fetchone() == (0,)

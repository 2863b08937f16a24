"""A store's new SQLite file has small pages (a commit writes each page it
changed whole); a file made with other pages keeps them and works; a step
changes no page it need not."""

from __future__ import annotations

import itertools
import sqlite3
import statistics
import time
from pathlib import Path

import pytest
from pydantic import BaseModel

from agent_node import Runtime, Workflow, current_node
from agent_node.store import Txn, store_from_url
from agent_node.store.records import ExecutionRecord
from agent_node.store.sqlite_open import PAGE_SIZE


def _page_size(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("PRAGMA page_size").fetchone()[0])
    finally:
        conn.close()


async def _create_and_read(url: str, execution_id: str) -> ExecutionRecord | None:
    store = store_from_url(url)
    await store.open()
    try:
        now = time.time()
        record = ExecutionRecord(
            execution_id, "wf", "1", None, "running", "{}", "", 0, None, None, None, now, now
        )

        def plan(txn: Txn) -> None:
            txn.event("execution_started", data='{"n": 1}')

        await store.create(record, plan)
        return await store.get(execution_id)
    finally:
        await store.close()


async def test_a_new_store_file_has_small_pages(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    assert await _create_and_read(f"sqlite:///{path}", "e1") is not None
    assert _page_size(path) == PAGE_SIZE == 1024


@pytest.mark.parametrize("journal", ["wal", "delete"])
async def test_a_file_with_other_pages_keeps_them(tmp_path: Path, journal: str) -> None:
    # As an earlier version made it (SQLite's default 4 KiB), with a table in
    # it already, or only switched to WAL: the store's pragma must not fail,
    # and nothing may be rewritten.
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA page_size=4096")
    conn.execute(f"PRAGMA journal_mode={journal}")
    if journal == "delete":
        conn.execute("CREATE TABLE unrelated (x)")
    conn.commit()
    conn.close()
    read = await _create_and_read(f"sqlite:///{path}", "e2")
    assert read is not None and read.id == "e2"
    assert _page_size(path) == 4096
    again = await _create_and_read(f"sqlite:///{path}", "e3")  # opened a second time
    assert again is not None and _page_size(path) == 4096


class Count(BaseModel):
    n: int = 0


def _written() -> int:
    """Bytes this process has written (the WAL's frames, the checkpoints')."""
    text = Path("/proc/self/io").read_text()
    return int(next(line for line in text.splitlines() if line.startswith("wchar:")).split()[1])


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="counts bytes from /proc/self/io")
async def test_a_step_of_a_task_with_a_context_writes_no_page_more(tmp_path: Path) -> None:
    # An A2A task has a context id, which an index holds: a step that SET it
    # (unchanged) rewrote its index entry, a 1 KiB page more a step.
    marks: dict[str, list[int]] = {}
    wf = Workflow("ticks", version="1")
    wf.state(Count)
    for i in range(12):

        async def tick(state: Count) -> dict[str, int]:
            marks.setdefault(current_node().execution_id, []).append(_written())
            return {"n": state.n + 1}

        wf.step(tick, name=f"t{i}")
    compiled = wf.compile()
    contexts: dict[str, str | None] = {}
    async with Runtime(f"sqlite:///{tmp_path}/steps.db") as rt:
        for context in [None, "ctx-1"] * 4:
            metadata = {
                "caller": "tester",
                "traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01",
            }
            execution_id, _ = await rt.engine.submit(
                compiled, Count(), context_id=context, metadata=metadata
            )
            try:
                assert (await rt.engine.wait(execution_id)).status == "completed"
            finally:
                rt.engine.release(execution_id)
            contexts[execution_id] = context
    steps: dict[bool, list[int]] = {True: [], False: []}
    for execution_id, seen in list(marks.items())[2:]:  # the first of each warms up
        steps[contexts[execution_id] is not None].extend(b - a for a, b in itertools.pairwise(seen))
    with_context, without = (statistics.median(steps[k]) for k in (True, False))
    assert without > 1024  # a step writes pages: the measure sees them
    assert with_context < without + 512, (with_context, without)

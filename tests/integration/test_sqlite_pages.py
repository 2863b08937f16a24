"""A store's new SQLite file has small pages (a commit writes each page it
changed whole); a file made with other pages keeps them and works."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from agent_node.store import Txn, store_from_url
from agent_node.store.records import ExecutionRecord
from agent_node.store.sqlite_writer import PAGE_SIZE


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

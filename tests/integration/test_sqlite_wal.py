"""The SQLite write-ahead log is cut back while the store is open: a burst of
writes does not leave a log of its size behind for the life of the node."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from agent_node.store import Txn, store_from_url
from agent_node.store.records import ExecutionRecord


async def test_the_wal_shrinks_to_its_limit_after_a_burst(tmp_path: Path) -> None:
    path = tmp_path / "wal.db"
    store = store_from_url(f"sqlite:///{path}?wal_limit_mib=1")
    await store.open()
    wal = path.with_name("wal.db-wal")
    big = '{"blob": "' + "x" * 40_000 + '"}'
    try:

        async def one(n: int) -> None:
            now = time.time()
            record = ExecutionRecord(
                f"e{n}", "wf", "1", None, "waiting", big, "", 0, None, None, None, now, now
            )

            def plan(txn: Txn) -> None:
                txn.event("execution_started", data=big)

            await store.create(record, plan)

        for start in range(0, 200, 20):  # ~16 MB through the log
            await asyncio.gather(*(one(n) for n in range(start, start + 20)))
        grown = wal.stat().st_size
        deadline = time.monotonic() + 10
        while wal.exists() and wal.stat().st_size > 1024 * 1024:
            assert time.monotonic() < deadline, f"the WAL stayed at {wal.stat().st_size} bytes"
            await asyncio.sleep(0.05)
        assert (await store.get("e199")) is not None
    finally:
        await store.close()
    assert grown > 1024 * 1024  # it did grow past the limit first

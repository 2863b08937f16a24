"""The SQLite write-ahead log is cut back while the store is open: a burst of
writes does not leave a log of its size behind for the life of the node."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from agent_node.errors import StoreError
from agent_node.store import Store, sqlite_checkpoints, store_from_url
from agent_node.store.records import ExecutionRecord

BIG = '{"blob": "' + "x" * 40_000 + '"}'


async def burst(store: Store, prefix: str) -> None:
    """~16 MB through the log: 200 new executions of 40 KB, 20 at a time."""

    async def one(n: int) -> None:
        now = time.time()
        record = ExecutionRecord(
            f"{prefix}{n}", "wf", "1", None, "waiting", BIG, "", 0, None, None, None, now, now
        )
        await store.create(record, lambda txn: txn.event("execution_started", data=BIG))

    for start in range(0, 200, 20):
        await asyncio.gather(*(one(n) for n in range(start, start + 20)))


async def shrinks(wal: Path, limit: int = 1024 * 1024, within: float = 15) -> None:
    deadline = time.monotonic() + within
    while wal.exists() and wal.stat().st_size > limit:
        assert time.monotonic() < deadline, f"the WAL stayed at {wal.stat().st_size} bytes"
        await asyncio.sleep(0.05)


async def test_the_wal_shrinks_to_its_limit_after_a_burst(tmp_path: Path) -> None:
    path = tmp_path / "wal.db"
    store = store_from_url(f"sqlite:///{path}?wal_limit_mib=1")
    await store.open()
    wal = path.with_name("wal.db-wal")
    try:
        await burst(store, "e")
        grown = wal.stat().st_size
        await shrinks(wal)
        assert (await store.get("e199")) is not None
    finally:
        await store.close()
    assert grown > 1024 * 1024  # it did grow past the limit first


async def test_the_wal_shrinks_after_a_reader_held_it_though_no_commit_follows(
    tmp_path: Path,
) -> None:
    # A round that cannot cut the log back (a reader's snapshot holds its
    # frames) comes again by itself: after a burst, no commit may follow.
    path = tmp_path / "held.db"
    store = store_from_url(f"sqlite:///{path}?wal_limit_mib=1")
    await store.open()
    wal = path.with_name("held.db-wal")
    reader = sqlite3.connect(path, isolation_level=None)
    try:
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM executions").fetchall()  # a snapshot, kept
        await burst(store, "r")
        await asyncio.sleep(1.5)  # rounds ran: the reader kept the log
        assert wal.stat().st_size > 1024 * 1024
        reader.execute("COMMIT")  # and nothing is written after it
        await shrinks(wal)
        assert (await store.get("r199")) is not None
    finally:
        reader.close()
        await store.close()


async def test_the_log_starts_over_while_writes_go_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Commits that never pause (a sequential workflow's steps) left no moment
    # in which a passive checkpoint had copied the whole log: it never started
    # over, and grew to the truncation limit (64 MiB), its index in shared
    # memory with it.
    monkeypatch.setattr(sqlite_checkpoints, "_CHECKPOINT_DELAY", 0.01)
    monkeypatch.setattr(sqlite_checkpoints, "_CATCH_UP_FRAMES", 64)
    path = tmp_path / "busy.db"
    store = store_from_url(f"sqlite:///{path}?wal_limit_mib=1024")
    await store.open()
    wal = path.with_name("busy.db-wal")
    commits, largest = 0, 0
    try:
        began = time.monotonic()
        while time.monotonic() - began < 1.5:
            commits += 1
            now = time.time()
            record = ExecutionRecord(
                f"e{commits}", "wf", "1", None, "waiting", "{}", "", 0, None, None, None, now, now
            )
            await store.create(record, lambda txn: txn.event("execution_started"))
            if commits % 50 == 0:
                largest = max(largest, wal.stat().st_size)
    finally:
        await store.close()
    # Each commit writes several pages (its row, the indexes, its event):
    # a log that never started over would hold them all.
    assert commits > 1000
    assert largest < commits * 1024, f"{commits} commits, the log reached {largest} bytes"


async def test_a_store_closes_without_waiting_out_the_checkpoint_delay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A commit arms the checkpoint thread's delay; closing must not wait for
    # it (it did: every close of a store that had written took the delay).
    monkeypatch.setattr(sqlite_checkpoints, "_CHECKPOINT_DELAY", 60.0)
    store = store_from_url(f"sqlite:///{tmp_path / 'close.db'}")
    await store.open()
    now = time.time()
    record = ExecutionRecord(
        "e1", "wf", "1", None, "waiting", "{}", "", 0, None, None, None, now, now
    )
    await store.create(record, lambda txn: txn.event("execution_started"))
    began = time.monotonic()
    await asyncio.wait_for(store.close(), timeout=30)
    assert time.monotonic() - began < 10


async def test_a_new_file_switches_to_wal_while_another_connection_writes(tmp_path: Path) -> None:
    """SQLite refuses the switch to WAL at once (no busy handler) while another
    connection holds a write lock on a file still in rollback mode: the state
    of a new file that a second process is creating at that moment. The store
    waits for it instead of failing to open."""
    path = tmp_path / "new.db"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("CREATE TABLE theirs (a)")
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO theirs VALUES (1)")
    probe = sqlite3.connect(path, isolation_level=None, timeout=5)
    with pytest.raises(sqlite3.OperationalError, match="locked"):  # the fault is real
        probe.execute("PRAGMA journal_mode=WAL")
    probe.close()
    released = threading.Timer(0.3, other.execute, ("COMMIT",))
    released.start()
    store = store_from_url(f"sqlite:///{path}")
    began = time.monotonic()
    try:
        await store.open()
        assert time.monotonic() - began >= 0.25  # it waited for the lock, then went on
        mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
        assert mode == "wal"
    finally:
        released.join()
        other.close()
        await store.close()


async def test_stores_opening_one_new_file_at_once_all_open(tmp_path: Path) -> None:
    for round_ in range(3):
        url = f"sqlite:///{tmp_path}/race{round_}.db"
        stores = [store_from_url(url) for _ in range(6)]
        outcomes = await asyncio.gather(*(s.open() for s in stores), return_exceptions=True)
        for store in stores:
            await store.close()
        assert outcomes == [None] * 6, outcomes


async def test_a_store_error_keeps_sqlites_own_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"not a database, but a file someone pointed the store at" * 100)
    store = store_from_url(f"sqlite:///{path}")
    with pytest.raises(StoreError, match="not a database") as failed:
        await store.open()
    assert isinstance(failed.value.__cause__, sqlite3.DatabaseError)
    assert failed.value.__cause__.sqlite_errorname == "SQLITE_NOTADB"

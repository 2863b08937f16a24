"""Where the SQLite writer commits (agent_node.store.sqlite_writer): on the
event loop when nothing waits, on its thread when a commit must wait for
another connection's lock or fsyncs — the loop is never blocked."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from agent_node.errors import StoreError
from agent_node.store import sqlite_writer
from agent_node.store.notify import Notifier
from agent_node.store.sqlite_writer import Job, Notices, Writer


def _writer(path: Path, synchronous: str = "NORMAL") -> Writer:
    writer = Writer(f"sqlite:///{path}", path, Notifier(), synchronous=synchronous, cache_kib=2048)
    writer.start()
    return writer


def _insert(value: int) -> Job:
    def job(conn: sqlite3.Connection) -> tuple[str, Notices]:
        conn.execute("CREATE TABLE IF NOT EXISTS t (v INTEGER)")
        conn.execute("INSERT INTO t VALUES (?)", (value,))
        return threading.current_thread().name, []

    return job


def _values(path: Path) -> list[int]:
    with sqlite3.connect(path) as conn:
        return [row[0] for row in conn.execute("SELECT v FROM t ORDER BY v")]


async def test_an_idle_writer_commits_on_the_loop(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    writer = _writer(path)
    try:
        await writer.submit(_insert(0))  # the thread opens the connection first
        ran = await writer.submit(_insert(1))
        assert ran == threading.current_thread().name
        batch = await asyncio.gather(*(writer.submit(_insert(v)) for v in range(2, 12)))
        assert set(batch) == {threading.current_thread().name}  # one batch, here
    finally:
        await writer.stop()
    assert _values(path) == list(range(12))


async def test_a_store_that_fsyncs_commits_on_its_thread(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    writer = _writer(path, synchronous="FULL")
    try:
        await writer.submit(_insert(0))
        ran = await writer.submit(_insert(1))
        assert ran.startswith("sqlite:")
    finally:
        await writer.stop()
    assert _values(path) == [0, 1]


async def test_a_locked_file_is_waited_for_on_the_thread_not_the_loop(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    writer = _writer(path)
    await writer.submit(_insert(0))
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process writing, say
        pending = asyncio.ensure_future(writer.submit(_insert(1)))
        ticks = 0
        for _ in range(20):  # the loop keeps running while the job waits
            await asyncio.sleep(0.01)
            ticks += 1
        assert ticks == 20 and not pending.done()
        other.execute("COMMIT")
        ran = await asyncio.wait_for(pending, 10)
        assert ran.startswith("sqlite:")
        # Nothing waits any more: the next commit is the loop's again.
        assert await writer.submit(_insert(2)) == threading.current_thread().name
    finally:
        other.close()
        await writer.stop()
    assert _values(path) == [0, 1, 2]


async def test_a_failing_job_rolls_back_alone_on_the_loop(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    writer = _writer(path)

    def failing(conn: sqlite3.Connection) -> tuple[None, Notices]:
        conn.execute("INSERT INTO t VALUES (99)")
        raise ValueError("no")

    try:
        await writer.submit(_insert(0))
        results = await asyncio.gather(
            writer.submit(_insert(1)), writer.submit(failing), return_exceptions=True
        )
        assert results[0] == threading.current_thread().name
        assert isinstance(results[1], ValueError)
    finally:
        await writer.stop()
    assert _values(path) == [0, 1]


async def test_the_batchs_first_job_hands_it_over_itself(tmp_path: Path) -> None:
    # Committed inline, a job's result is there when its submitter resumes:
    # one pass of the loop per commit, not one to commit and one to wake.
    path = tmp_path / "a.db"
    writer = _writer(path)
    loop = asyncio.get_running_loop()
    passes = 0

    def count() -> None:
        nonlocal passes
        passes += 1
        loop.call_soon(count)

    try:
        await writer.submit(_insert(0))
        loop.call_soon(count)
        before = passes
        await writer.submit(_insert(1))
        assert passes - before == 1
    finally:
        await writer.stop()
    assert _values(path) == [0, 1]


async def test_a_lone_job_is_committed_without_a_pass_of_the_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Nothing else ready to run (a sequential workflow's step): no job could
    # join its batch, so the submitter does not yield to the loop first (the
    # loop had a pass recently enough: the next test is about that bound).
    monkeypatch.setattr(sqlite_writer, "_PASS_EVERY", 60.0)
    path = tmp_path / "a.db"
    writer = _writer(path)
    try:
        await writer.submit(_insert(0))
        await asyncio.sleep(0.05)  # whatever else was scheduled has run
        lone = writer.submit(_insert(1))
        try:
            with pytest.raises(StopIteration) as done:
                lone.send(None)  # yields to the loop if it waits for a pass
            assert done.value.value == threading.current_thread().name
        finally:
            lone.close()
        # With other work ready, jobs still wait one pass and share a batch.
        results = await asyncio.gather(*(writer.submit(_insert(v)) for v in range(2, 6)))
        assert set(results) == {threading.current_thread().name}
    finally:
        await writer.stop()
    assert _values(path) == [0, 1, 2, 3, 4, 5]


async def test_a_long_run_of_lone_jobs_still_lets_the_loop_poll(tmp_path: Path) -> None:
    # A sequential workflow whose steps never wait commits one lone job after
    # another; the loop must still run its timers and read its sockets.
    path = tmp_path / "a.db"
    writer = _writer(path)
    loop = asyncio.get_running_loop()
    committed = 0
    seen: list[int] = []
    try:
        await writer.submit(_insert(0))
        loop.call_later(0.001, lambda: seen.append(committed))
        started = loop.time()
        while loop.time() - started < 0.5 and not seen:
            committed += 1
            await writer.submit(_insert(committed))
        assert seen, "the loop never ran its timer while the jobs were committed"
    finally:
        await writer.stop()
    assert _values(path) == list(range(committed + 1))


async def test_a_cancelled_first_job_does_not_strand_its_batch(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    writer = _writer(path)
    try:
        await writer.submit(_insert(0))
        first = asyncio.ensure_future(writer.submit(_insert(1)))
        await asyncio.sleep(0)  # it started the batch and lets the loop run once
        second = asyncio.ensure_future(writer.submit(_insert(2)))  # joins the batch
        first.cancel()
        assert await asyncio.wait_for(second, 10) == threading.current_thread().name
        assert first.cancelled()
    finally:
        await writer.stop()
    # The cancelled job still ran with its batch (as a job cancelled while
    # awaiting its commit does): its submitter only stopped waiting.
    assert _values(path) == [0, 1, 2]


def _rolled_back(conn: sqlite3.Connection) -> tuple[None, Notices]:
    """A job whose statement failed after SQLite rolled the whole transaction
    back itself, as it does when a page cannot be spilled to a full disk."""
    conn.execute("INSERT INTO t VALUES (99)")
    conn.execute("ROLLBACK")
    raise sqlite3.OperationalError("database or disk is full")


async def test_a_transaction_sqlite_rolled_back_fails_its_jobs_with_its_error(
    tmp_path: Path,
) -> None:
    path = tmp_path / "a.db"
    writer = _writer(path)
    try:
        await writer.submit(_insert(0))
        with pytest.raises(StoreError, match="disk is full"):  # alone: no savepoint
            await asyncio.wait_for(writer.submit(_rolled_back), 10)
        together = await asyncio.wait_for(
            asyncio.gather(
                writer.submit(_insert(1)), writer.submit(_rolled_back), return_exceptions=True
            ),
            10,
        )
        # The first job's writes went with the transaction: it is told so too.
        assert [str(r) for r in together] == [str(together[1])] * 2
        assert "disk is full" in str(together[1])
        assert await writer.submit(_insert(2)) == threading.current_thread().name
    finally:
        await writer.stop()
    assert _values(path) == [0, 2]


def _timed(path: Path, synchronous: str) -> tuple[Writer, list[tuple[float, int]]]:
    """A writer whose commit timer notes what it is told."""
    told: list[tuple[float, int]] = []
    notifier = Notifier()
    notifier.observe(lambda commits: None, lambda took, writes: told.append((took, writes)))
    writer = Writer(f"sqlite:///{path}", path, notifier, synchronous=synchronous, cache_kib=2048)
    writer.start()
    return writer, told


def _slow(seconds: float) -> Job:
    def job(conn: sqlite3.Connection) -> tuple[None, Notices]:
        time.sleep(seconds)
        conn.execute("INSERT INTO t VALUES (-1)")
        return None, []

    return job


async def test_the_commit_timer_is_told_each_batch_once_with_its_writes(tmp_path: Path) -> None:
    writer, told = _timed(tmp_path / "a.db", "NORMAL")
    try:
        await writer.submit(_insert(0))
        told.clear()
        await writer.submit(_insert(1))  # alone: a batch of one, on the loop
        await asyncio.gather(*(writer.submit(_insert(v)) for v in range(2, 12)))
        await asyncio.gather(writer.submit(_slow(0.05)), writer.submit(_insert(12)))
    finally:
        await writer.stop()
    assert [writes for _, writes in told] == [1, 10, 2]
    assert all(took >= 0 for took, _ in told)
    assert told[-1][0] >= 0.05  # the batch waited for its slow job


async def test_the_commit_timer_counts_each_write_once_from_the_thread(tmp_path: Path) -> None:
    writer, told = _timed(tmp_path / "a.db", "FULL")  # every batch on the thread
    try:
        await writer.submit(_insert(0))
        told.clear()

        async def batch(first: int) -> None:
            # 10 ms apart: a loop stalled that long (a loaded machine) would
            # hand two over in one iteration, and they would be told as one.
            await asyncio.sleep(0.002 * first)
            await asyncio.gather(*(writer.submit(_insert(v)) for v in range(first, first + 5)))

        # Batches handed over while the thread runs a slow one: it commits
        # them together, and each is timed from when it was submitted.
        slow = asyncio.ensure_future(writer.submit(_slow(0.2)))
        await asyncio.sleep(0.01)
        await asyncio.gather(*(batch(first) for first in range(1, 40, 5)))
        await slow
    finally:
        await writer.stop()
    assert sum(writes for _, writes in told) == 41
    assert len(told) == 9  # each loop iteration's batch, told apart
    assert max(took for took, _ in told) >= 0.2
    assert all(took >= 0 for took, _ in told)

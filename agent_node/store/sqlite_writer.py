"""The SQLite store's writer: one connection, group commit, on the event
loop when it can be and on a thread when it must wait.

SQLite allows one writer per file, so the store owns one connection and
feeds it a queue of jobs. The writer takes every job waiting in
the queue and runs them in a single ``BEGIN IMMEDIATE … COMMIT``
(:mod:`.sqlite_batch`): a job that raises rolls back alone, the others
commit together. Under load this turns hundreds of
concurrent node completions into one commit (group commit).

Jobs are handed over once per event-loop iteration, not one by one: every
job submitted while the loop runs its ready callbacks goes to the writer as
one batch. Handed over singly, the thread woke for the first job and
committed it alone — on a busy core nine batches in ten held one job, and a
commit (its WAL writes) costs more than the rest of a job.

A batch is committed on the event loop itself when the thread has nothing
queued or running and no other connection holds the write lock: a
commit that does not fsync (``synchronous=NORMAL``, the default, or OFF)
takes tens of microseconds, less than the two thread wake-ups and GIL
hand-overs it would cost to hop to the thread and back. Measured
(``bench/ours.py``, alternating runs): seq200 +55 %, conc200 a few %
faster than with every batch on the thread — on two cores the loop and
the thread mostly took turns on the GIL anyway. The thread keeps what
must not block the loop: a batch that has to wait for another process's
lock (``BEGIN IMMEDIATE`` is tried once here, waited for there, see
:meth:`Writer._begin`), every batch of a store that fsyncs its commits
(``synchronous=FULL``), and batches submitted while one is in flight.

Why not aiosqlite: it hops threads per statement and commits per call, which
caps a step at the cost of several hops. The durability contract is the same
— a job's result is returned only after its transaction committed.

Checkpoints run on a thread of their own (:mod:`.sqlite_checkpoints`).

``synchronous=NORMAL`` (the default, WAL) survives a killed process; FULL
survives power loss as well (the store's URL says which).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from agent_node import collector
from agent_node.errors import StoreError
from agent_node.store.notify import Notifier
from agent_node.store.sqlite_batch import run_alone, run_guarded, run_unguarded
from agent_node.store.sqlite_checkpoints import Checkpoints, catch_up
from agent_node.store.sqlite_errors import is_busy, store_error
from agent_node.store.sqlite_open import BUSY_MS, open_writer
from agent_node.store.txn import Txn

__all__ = ["Job", "Notices", "Writer"]

log = logging.getLogger(__name__)

Notices = list[tuple[str, str] | Txn]
#: A job: what it returns, and the notices to publish once it committed.
Job = Callable[[sqlite3.Connection], tuple[Any, Notices]]
#: A job submitted: the job, its future and loop, whether it may be run
#: again after its transaction rolled back (:mod:`.sqlite_batch`), and when
#: its batch began (``time.monotonic()`` of the batch's first job; 0.0 for
#: the jobs that joined it, which came in the same iteration of the loop).
_Entry = tuple[Job, "asyncio.Future[Any]", asyncio.AbstractEventLoop, bool, float]
#: The batches of one loop in what the thread committed: when each began
#: and how many jobs it had (for the store's commit timers).
_Began = list[tuple[float, int]]
_MAX_BATCH = 512
#: Put in the queue by the checkpoint thread: run sqlite_checkpoints.catch_up.
_CATCH_UP: list[_Entry] = []
#: Longest a submitter goes without letting its loop poll (seconds): see submit().
_PASS_EVERY = 0.002


class Writer:
    """The thread that writes ``path``, fed jobs by :meth:`submit` (module
    doc); the notices of committed jobs go to ``notifier``."""

    def __init__(
        self,
        url: str,
        path: Path,
        notifier: Notifier,
        *,
        synchronous: str,
        cache_kib: int,
        wal_limit: int = 64 * 1024 * 1024,
    ) -> None:
        self.url = url
        self.path = path
        self.wal_limit = wal_limit
        self.synchronous = synchronous
        self.cache_kib = cache_kib
        self._notifier = notifier
        self._jobs: queue.SimpleQueue[list[_Entry] | None] = queue.SimpleQueue()
        #: Jobs submitted in the current iteration of each event loop.
        self._pending: dict[asyncio.AbstractEventLoop, list[_Entry]] = {}
        #: When each loop last had a pass (polled its sockets) in submit().
        self._passed: dict[asyncio.AbstractEventLoop, float] = {}
        self._thread: threading.Thread | None = None
        self._checkpoints = Checkpoints(path, wal_limit, lambda: self._jobs.put(_CATCH_UP))
        #: The writer's connection (opened by its thread), and who holds it:
        #: the thread while it runs a batch, the event loop while it runs one
        #: inline (:meth:`_hand_over`).
        self._conn: sqlite3.Connection | None = None
        self._holding = threading.Lock()
        #: Batches handed to the thread, and batches it finished: equal when
        #: none waits (each counter has one writer; a lost update only ever
        #: makes a batch go to the thread).
        self._handed = 0
        self._finished = 0
        #: A commit without an fsync is quick enough to run on the event loop.
        self._inline = synchronous.upper() in ("OFF", "NORMAL")

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        """Start the writer thread (jobs may be submitted from now on)."""
        self._thread = threading.Thread(target=self._serve, name=f"sqlite:{self.path}", daemon=True)
        self._thread.start()

    def start_checkpoints(self) -> None:
        """Start the checkpoint thread (once the schema is there)."""
        self._checkpoints.start()

    async def stop(self) -> None:
        """Run what was submitted, then stop both threads."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        for batch in self._pending.values():  # submitted but not yet handed over
            self._jobs.put(batch)
        self._pending.clear()
        self._passed.clear()
        self._jobs.put(None)
        await asyncio.to_thread(thread.join)
        await self._checkpoints.stop()

    def _serve(self) -> None:
        try:
            conn = open_writer(self.path, self.synchronous, self.cache_kib, self.wal_limit)
        except sqlite3.Error as exc:  # a full disk, a directory we may not write
            # Fail every job (open()'s schema job first) until close().
            error = store_error(self.path, exc)
            while (batch := self._jobs.get()) is not None:
                self._settle(batch, [(False, error)] * len(batch), [])
            return
        self._conn = conn
        try:
            while (first := self._jobs.get()) is not None:
                catching_up = first is _CATCH_UP
                batch, taken = list(first), 0 if catching_up else 1
                while len(batch) < _MAX_BATCH:
                    try:
                        more = self._jobs.get_nowait()
                    except queue.Empty:
                        break
                    if more is None:
                        self._jobs.put(None)
                        break
                    if more is _CATCH_UP:
                        catching_up = True
                        continue
                    batch.extend(more)
                    taken += 1
                with self._holding:
                    ran = self._run_batch(conn, batch, self._begin) if batch else None
                    if catching_up:
                        catch_up(conn)
                # Before the results reach the loop: their awaiters' next
                # commits find the thread idle.
                self._finished += taken
                if ran is not None:
                    self._settle(batch, *ran)
                    self._checkpoints.committed()
        finally:
            with self._holding:
                self._conn = None
                conn.close()

    @staticmethod
    def _begin(conn: sqlite3.Connection) -> bool:
        """``BEGIN IMMEDIATE``, waiting up to :data:`BUSY_MS` for another
        connection's write (another process's, a checkpoint's truncation).
        In WAL mode only this statement waits: once it holds the write
        lock, the transaction's reads and its commit need no other."""
        deadline, pause = time.monotonic() + BUSY_MS / 1000, 0.001
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                return True
            except sqlite3.OperationalError as exc:
                if not is_busy(exc) or time.monotonic() > deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 2, 0.05)

    @staticmethod
    def _try_begin(conn: sqlite3.Connection) -> bool:
        """``BEGIN IMMEDIATE`` at once, or False when another connection writes."""
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if is_busy(exc):
                return False
            raise
        return True

    def _run_batch(
        self,
        conn: sqlite3.Connection,
        batch: list[_Entry],
        begin: Callable[[sqlite3.Connection], bool],
    ) -> tuple[list[tuple[bool, Any]], Notices] | None:
        """Run ``batch`` in one transaction: each job's outcome and the
        notices of those that committed; None (nothing run) when ``begin``
        would not wait. An error after which SQLite rolled the whole
        transaction back itself (a full disk, an I/O error: a page that could
        not be spilled to the log) fails every job of the batch with it."""
        outcomes: list[tuple[bool, Any]] = []
        notices: Notices = []
        try:
            if not begin(conn):
                return None
            if len(batch) == 1:  # the transaction is the job's: no savepoint
                outcomes, notices = run_alone(conn, batch[0][0], self._error)
            else:
                jobs = [entry[0] for entry in batch]
                ran = None
                if all(entry[3] for entry in batch):
                    ran = run_unguarded(conn, jobs, self._error)
                    if ran is None:  # one failed after it wrote: all again, guarded
                        conn.execute("ROLLBACK")
                        if not begin(conn):
                            return None
                outcomes, notices = ran or run_guarded(conn, jobs, self._error)
            if conn.in_transaction:
                conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            outcomes = [(False, store_error(self.path, exc))] * len(batch)
            notices = []
        return outcomes, notices

    def _error(self, exc: BaseException) -> BaseException:
        return store_error(self.path, exc) if isinstance(exc, sqlite3.Error) else exc

    def _settle(
        self, batch: list[_Entry], outcomes: list[tuple[bool, Any]], notices: Notices
    ) -> None:
        """Hand each job's outcome to the event loop that awaits it."""
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], bool, Any]]] = {}
        for (_, future, loop, _, _), (ok, value) in zip(batch, outcomes, strict=True):
            by_loop.setdefault(loop, []).append((future, ok, value))
        began = _began_by_loop(batch) if self._notifier.observed else {}
        for loop, results in by_loop.items():
            try:
                loop.call_soon_threadsafe(self._deliver, results, notices, began.get(loop, ()))
            except RuntimeError:
                pass  # that loop is closed: nobody awaits these results any more

    def _deliver(
        self,
        results: list[tuple[asyncio.Future[Any], bool, Any]],
        notices: Notices,
        began: Sequence[tuple[float, int]] = (),
    ) -> None:
        """On the loop: each job's outcome to its awaiter, then the notices,
        the commit timers (``began``: when each of the loop's batches began,
        and its jobs — a batch committed on the loop is timed by
        :meth:`_hand_over`) and the commit observers."""
        for future, ok, value in results:
            if future.done():
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)
        committed: list[Txn] = []
        for notice in notices:
            if isinstance(notice, Txn):
                committed.append(notice)
            else:
                self._notifier.publish(*notice)
        if began:
            now = time.monotonic()
            for at, jobs in began:
                self._notifier.took(now - at, jobs)
        if committed and self._notifier.observed:
            self._notifier.committed(committed)

    async def submit(self, job: Job, *, replayable: bool = False) -> Any:
        """``job``'s result once it committed. ``replayable``: it may be run
        again from the start after its transaction rolled back (it changes
        nothing but through ``conn``, or only what it makes anew on each
        run), so it needs no savepoint of its own (:mod:`.sqlite_batch`)."""
        if self._thread is None:
            raise StoreError(f"the store {self.url} is not open")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        pending = self._pending.get(loop)
        if pending is not None:  # a batch of this iteration: its first job hands it over
            pending.append((job, future, loop, replayable, 0.0))
            return await future
        now = time.monotonic()
        self._pending[loop] = [(job, future, loop, replayable, now)]
        if not getattr(loop, "_ready", True) and now - self._passed.get(loop, 0.0) < _PASS_EVERY:
            # Nothing else is ready to run before the loop polls again (a
            # sequential workflow's step): no job can join this batch, so it
            # is handed over now, a pass of the loop sooner. But the loop
            # still polls its sockets every _PASS_EVERY: a long run of steps
            # that never wait must not starve its requests. (asyncio's own
            # loop keeps its ready callbacks in ``_ready``; a loop that does
            # not has the pass.)
            self._hand_over(loop)
            return await future
        self._passed[loop] = now
        # The first job of a batch lets the loop run once (every job submitted
        # meanwhile joins the batch), then hands the batch over itself: a
        # batch committed inline has its result at once, where a callback
        # that committed it would wake this task in one more iteration (an
        # epoll and a pass of the loop per sequential step). No young
        # collector passes meanwhile: they would find the batch's objects
        # all alive (agent_node/collector.py); back on in the next iteration,
        # after the awaiters the commit woke.
        collector.pause()
        try:
            await asyncio.sleep(0)
        except BaseException:
            future.cancel()  # as awaiting it would have: nobody reads its result
            raise
        finally:
            self._hand_over(loop)  # cancelled or not: the others wait on the batch
            collector.resume_soon(loop)
        return await future

    def _hand_over(self, loop: asyncio.AbstractEventLoop) -> None:
        """Commit this loop iteration's jobs, as one batch: here, on the loop,
        when the thread has none and no other connection is writing (module
        doc); else on the thread."""
        batch = self._pending.pop(loop, None)
        if not batch:
            return
        if (
            self._inline
            and self._finished >= self._handed
            and self._holding.acquire(blocking=False)
        ):
            try:
                conn = self._conn
                ran = None if conn is None else self._run_batch(conn, batch, self._try_begin)
            finally:
                self._holding.release()
            if ran is not None:
                results = [
                    (f, ok, v) for (_, f, _, _, _), (ok, v) in zip(batch, ran[0], strict=True)
                ]
                self._deliver(results, ran[1])
                if self._notifier.observed:
                    self._notifier.took(time.monotonic() - batch[0][4], len(batch))
                self._checkpoints.committed()
                return
        self._handed += 1
        self._jobs.put(batch)


def _began_by_loop(batch: list[_Entry]) -> dict[asyncio.AbstractEventLoop, _Began]:
    """When each loop's batches in ``batch`` began, and their sizes (a job
    that joined a batch follows it, in the order the loop handed them over)."""
    found: dict[asyncio.AbstractEventLoop, _Began] = {}
    for _, _, loop, _, began in batch:
        mine = found.setdefault(loop, [])
        if began or not mine:
            mine.append((began, 1))
        else:
            mine[-1] = (mine[-1][0], mine[-1][1] + 1)
    return found

"""Checkpoints of the SQLite store's write-ahead log, on a thread of their own.

A checkpoint copies the WAL into the database file, with an fsync. It runs
a quarter second after commits, never in a commit: SQLite's automatic
checkpoint would stall the writer — and every request waiting on it — for
the length of an fsync every thousand pages. A WAL file never shrinks by
itself: once a checkpoint leaves it larger than the limit (``wal_limit``,
64 MiB by default) it is truncated (``TRUNCATE``, which waits a moment for
readers and holds the writer only while it copies what the passive
checkpoint just left), so a burst does not keep its size forever; a round
that could not cut it back (a reader's snapshot, a busy writer) comes again
by itself, a commit or not. While
commits go on without a pause, a pass that leaves a long log asks the
writer to finish it between two of its transactions (:func:`catch_up`),
so that the log starts over: it holds about a pass's worth of commits, not
the limit's.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

__all__ = ["Checkpoints"]

log = logging.getLogger(__name__)

#: How long commits accumulate before the checkpoint thread runs (seconds).
_CHECKPOINT_DELAY = 0.25
#: A log longer than this (frames) after a pass is started over (catch_up).
_CATCH_UP_FRAMES = 4096
#: The longest wait before a round that could not cut the log back is tried
#: again without a commit to bring it (seconds; it doubles from the delay).
_RETRY_AT_MOST = 8.0


class Checkpoints:
    """The thread that checkpoints ``path``'s WAL a moment after commits."""

    def __init__(
        self, path: Path, wal_limit: int, catch_up: Callable[[], None] | None = None
    ) -> None:
        self.path = path
        self.wal_limit = wal_limit
        #: Asks the writer to run :func:`catch_up` between its transactions.
        self._catch_up = catch_up
        #: Set after each commit, and to stop the thread.
        self._committed = threading.Event()
        #: Set to stop the thread, also while it waits out the delay (a
        #: closing store does not wait for it).
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._closing.clear()
        self._thread = threading.Thread(
            target=self._run, name=f"sqlite checkpoints:{self.path}", daemon=True
        )
        self._thread.start()

    def committed(self) -> None:
        """A commit happened: checkpoint a moment from now."""
        # Set already: the thread has not cleared it, so the checkpoint it
        # runs after clearing takes this commit too. Event.set takes a lock
        # and notifies, ~3 % of a sequential step (bench/ours.py seq200).
        if not self._committed.is_set():
            self._committed.set()

    async def stop(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            self._closing.set()
            self._committed.set()
            await asyncio.to_thread(thread.join)

    def _run(self) -> None:
        """Checkpoint the WAL a moment after commits (PASSIVE: never blocks the writer)."""
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout=1000")  # a TRUNCATE waits for readers this long
        wal = self.path.with_name(self.path.name + "-wal")
        failing = False
        retry = _CHECKPOINT_DELAY
        try:
            while True:
                self._committed.wait()
                if self._closing.wait(_CHECKPOINT_DELAY):
                    return
                # Clear, then look: close() sets the flag before the event, so
                # a close at any point is seen now or wakes the next wait.
                self._committed.clear()
                if self._closing.is_set():
                    return
                try:
                    ((_, frames, _),) = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    if frames > _CATCH_UP_FRAMES and self._catch_up is not None:
                        self._catch_up()
                    if _size(wal) > self.wal_limit:
                        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
                except sqlite3.Error as exc:  # busy, I/O, disk full: tried again
                    if not failing:  # once, not four times a second while the disk is full
                        log.warning("SQLite %s: checkpoint failed: %s", self.path, exc)
                    failing = True
                else:
                    failing = False
                if not failing and _size(wal) <= self.wal_limit:
                    retry = _CHECKPOINT_DELAY
                    continue
                # Not cut back (a reader's snapshot, the writer's own pass, a
                # full disk): after a burst no commit may follow to bring the
                # next round, so it comes by itself, later each time (a
                # commit brings it as soon as ever; close() sets both events).
                self._committed.wait(retry)
                retry = min(retry * 2, _RETRY_AT_MOST)
                self._committed.set()
        finally:
            conn.close()


def catch_up(conn: sqlite3.Connection) -> None:
    """Checkpoint on the writer's own connection, between its transactions.

    SQLite starts the log over (writes from its first frame again) only when
    a write transaction begins with every frame already copied to the
    database. The checkpoint thread's pass never gets there while commits
    follow each other without a pause (a sequential workflow's steps): the
    writer appends frames while it copies. Then the log grew to the
    truncation limit (64 MiB by default, 82 MB in four seconds of
    ``bench/ours.py`` seq200), with its index in shared memory (32 KiB per
    4,096 frames, kept mapped for the life of the store). Here no frame can
    follow before the writer's next transaction: this copies what the pass
    left, a few milliseconds of commits, and that transaction starts the log
    over."""
    try:
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
    except sqlite3.Error as exc:  # busy (the thread's pass runs), I/O: the next one
        log.debug("SQLite: the writer's checkpoint failed: %s", exc)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0

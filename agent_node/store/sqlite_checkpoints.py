"""Checkpoints of the SQLite store's write-ahead log, on a thread of their own.

A checkpoint copies the WAL into the database file, with an fsync. It runs
a quarter second after commits, never in a commit: SQLite's automatic
checkpoint would stall the writer — and every request waiting on it — for
the length of an fsync every thousand pages. A WAL file never shrinks by
itself: once a checkpoint leaves it larger than the limit (``wal_limit``,
64 MiB by default) it is truncated (``TRUNCATE``, which waits a moment for
readers and holds the writer only while it copies what the passive
checkpoint just left), so a burst does not keep its size forever.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from pathlib import Path

__all__ = ["Checkpoints"]

log = logging.getLogger(__name__)

#: How long commits accumulate before the checkpoint thread runs (seconds).
_CHECKPOINT_DELAY = 0.25


class Checkpoints:
    """The thread that checkpoints ``path``'s WAL a moment after commits."""

    def __init__(self, path: Path, wal_limit: int) -> None:
        self.path = path
        self.wal_limit = wal_limit
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
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    if _size(wal) > self.wal_limit:
                        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
                except sqlite3.Error as exc:  # busy, I/O, disk full: the next round tries again
                    if not failing:  # once, not four times a second while the disk is full
                        log.warning("SQLite %s: checkpoint failed: %s", self.path, exc)
                    failing = True
                else:
                    failing = False
        finally:
            conn.close()


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0

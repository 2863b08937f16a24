"""Opening the SQLite writer's connection (:class:`~.sqlite_writer.Writer`):
the file's page size and WAL mode, and the pragmas the writer counts on."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

__all__ = ["BUSY_MS", "PAGE_SIZE", "open_writer"]

#: How long a statement waits for another process's lock (milliseconds).
BUSY_MS = 30_000
#: The page size of a store's new file (one that exists keeps its own).
#: A commit writes each page it changed whole to the WAL (and a checkpoint
#: copies it again), with a checksum over it; a step changes a few hundred
#: bytes on each of five or six pages (its execution's row, its work row and
#: index, its two events). With SQLite's 4 KiB, a sequential step wrote
#: ~20 KB; with 1 KiB ~7.5 KB, and took ~10 % less time (bench/ours.py
#: seq200; conc200, whose commits share pages, unchanged). A 1 MB state
#: kept as patches went from 1,308 to 3,965 steps/s (bench/state_bench.py
#: big): its snapshot and patches are written as 1 KiB overflow pages, each
#: one once. Rows larger than a page spill into overflow pages, as before.
PAGE_SIZE = 1024


def open_writer(path: Path, synchronous: str, cache_kib: int, wal_limit: int) -> sqlite3.Connection:
    """The writer's connection to ``path`` (made in WAL mode when new)."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout={BUSY_MS}")
        # Before the switch to WAL, which writes the new file's header:
        # a no-op on a file that has pages already.
        conn.execute(f"PRAGMA page_size={PAGE_SIZE}")
        _switch_to_wal(conn)
        conn.execute(f"PRAGMA synchronous={synchronous}")
        conn.execute(f"PRAGMA cache_size=-{cache_kib}")
        conn.execute("PRAGMA wal_autocheckpoint=0")  # the checkpoint thread does it
        # When the log starts over after a checkpoint, it is cut to this.
        conn.execute(f"PRAGMA journal_size_limit={wal_limit}")
        # Waiting for another connection's lock is the writer's own (BUSY_MS,
        # in BEGIN IMMEDIATE on its thread), so that a commit run on the event
        # loop never waits.
        conn.execute("PRAGMA busy_timeout=0")
    except BaseException:
        conn.close()
        raise
    return conn


def _switch_to_wal(conn: sqlite3.Connection) -> None:
    """``PRAGMA journal_mode=WAL``, waiting out other connections doing the same.

    Two processes opening one new file at once both try to switch it; the
    switch needs an exclusive lock, and SQLite answers SQLITE_BUSY at once
    instead of calling the busy handler (it holds a shared lock while it asks,
    so waiting could deadlock). The loser retries here until the winner is
    done: then the file is in WAL mode already and the pragma only reads it.
    """
    deadline = time.monotonic() + BUSY_MS / 1000
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL").fetchall()
            return
        except sqlite3.OperationalError as exc:
            code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
            if code != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                raise
            time.sleep(0.005)

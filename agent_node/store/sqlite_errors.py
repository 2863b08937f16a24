"""SQLite's errors as the store reports them.

What a failed statement means to a caller — a full disk, a lock another
connection holds, anything else — apart from the writer that meets most of
them (:mod:`.sqlite_writer`), as every SQLite connection of the store
(:mod:`.sqlite_conn`) reports its errors the same way.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from agent_node.errors import StoreError, StoreFull

__all__ = ["disk_full", "is_busy", "store_error"]


def is_busy(exc: sqlite3.Error) -> bool:
    return (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF == sqlite3.SQLITE_BUSY


def store_error(path: Path, exc: sqlite3.Error) -> StoreError:
    """``exc`` as a StoreError; a full disk as :class:`StoreFull`. SQLite says
    SQLITE_FULL when a write finds no space, but a bare "disk I/O error" when
    the ``-shm`` file cannot grow (SQLITE_IOERR_SHMSIZE) — on a full disk,
    the usual error of the first write after a restart."""
    code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
    if code == sqlite3.SQLITE_FULL or (code == sqlite3.SQLITE_IOERR and disk_full(path)):
        return StoreFull(f"the store could not write, its disk is full: SQLite {path}: {exc}")
    error = StoreError(f"SQLite {path}: {exc}")
    error.__cause__ = exc  # which statement, which code: kept for whoever logs it
    return error


def disk_full(path: Path) -> bool:
    try:
        return os.statvfs(path.absolute().parent).f_bavail == 0
    except OSError:
        return False

"""A side table that counts step bodies and their effects, in its own SQLite
file, so crash tests can prove what ran how often across processes."""

from __future__ import annotations

import os
import sqlite3
from collections import Counter
from pathlib import Path

from agent_node import current_node


class Effects:
    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        with self._connect() as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS invocations"
                " (key TEXT, attempt INTEGER, pid INTEGER, at REAL DEFAULT (julianday('now')))"
            )
            conn.execute("CREATE TABLE IF NOT EXISTS effects (key TEXT PRIMARY KEY, pid INTEGER)")

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        return conn

    def record(self) -> None:
        """Call at the top of a step body: one invocation, one keyed effect."""
        node = current_node()
        with self._connect() as conn:
            conn.execute(
                "INSERT INTO invocations (key, attempt, pid) VALUES (?, ?, ?)",
                (node.idempotency_key, node.attempt, os.getpid()),
            )
            conn.execute(
                "INSERT OR IGNORE INTO effects (key, pid) VALUES (?, ?)",
                (node.idempotency_key, os.getpid()),
            )

    def invocations(self) -> Counter[str]:
        with self._connect() as conn:
            return Counter(row[0] for row in conn.execute("SELECT key FROM invocations"))

    def attempts(self) -> dict[str, list[int]]:
        found: dict[str, list[int]] = {}
        with self._connect() as conn:
            for key, attempt in conn.execute("SELECT key, attempt FROM invocations ORDER BY rowid"):
                found.setdefault(key, []).append(attempt)
        return found

    def effects(self) -> Counter[str]:
        with self._connect() as conn:
            return Counter(row[0] for row in conn.execute("SELECT key FROM effects"))

    def pids(self) -> set[int]:
        with self._connect() as conn:
            return {row[0] for row in conn.execute("SELECT DISTINCT pid FROM invocations")}

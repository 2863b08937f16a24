"""The SQLite store has sqlite3 bind None through a registered adapter, not
its search for one (agent_node/store/sqlite_conn.py), and None is still
stored as NULL, by the store's connections and by anyone else's."""

from __future__ import annotations

import sqlite3

from agent_node.store import sqlite_conn


def test_none_binds_through_the_store_s_adapter_as_null() -> None:
    assert sqlite3.adapters.get((type(None), sqlite3.PrepareProtocol)) is sqlite_conn._null
    conn = sqlite3.connect(":memory:")
    try:
        conn.execute("CREATE TABLE t (a, b)")
        conn.executemany("INSERT INTO t VALUES (?, ?)", [(None, 1), (2, None)])
        rows = conn.execute("SELECT a, typeof(a), b, typeof(b) FROM t ORDER BY rowid").fetchall()
        assert rows == [(None, "null", 1, "integer"), (2, "integer", None, "null")]
        assert conn.execute("SELECT count(*) FROM t WHERE a IS ?", (None,)).fetchone() == (1,)
    finally:
        conn.close()

"""How long opening a SQLite file of schema version 9 takes: the upgrade to
version 10 rewrites its event log and work table once (store/sqlite_events.py,
store/sqlite_work.py).

Builds a version 9 file of ``--executions`` finished executions with
``--events`` events each (the old tables, as version 9 made them), then opens
it with the store, which upgrades it in one transaction, and prints the
seconds the open took.

    .venv/bin/python bench/stores/upgrade_bench.py [--executions 100000] [--events 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import tempfile
import time
import uuid
from pathlib import Path

from agent_node.store import store_from_url
from agent_node.store.schema import ddl

_V9_EVENTS = (
    "CREATE TABLE events (execution_id TEXT NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL,"
    " node TEXT, visit INTEGER, attempt INTEGER, at FLOAT NOT NULL, data TEXT,"
    " PRIMARY KEY (execution_id, seq)) WITHOUT ROWID"
)
_V9_WORK = (
    "CREATE TABLE work (execution_id TEXT NOT NULL, node TEXT NOT NULL, visit INTEGER NOT NULL,"
    " attempt INTEGER NOT NULL, available_at FLOAT NOT NULL, lease_owner TEXT,"
    " lease_expires_at FLOAT, fence INTEGER NOT NULL, PRIMARY KEY (execution_id, node, visit))"
    " WITHOUT ROWID"
)
_PATCH = json.dumps({"duration": 0.001, "patch": {"n": 1}, "next": "s2"})


def build_v9(path: Path, executions: int, events: int) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA page_size = 1024")
    conn.execute("PRAGMA journal_mode = wal")
    for statement in ddl("sqlite"):
        head = statement.split("(")[0]
        if " events" in head or " work" in head or "ux_executions_num" in head:
            continue
        conn.execute(statement)
    conn.execute("ALTER TABLE executions DROP COLUMN num")
    conn.execute(_V9_EVENTS)
    conn.execute(_V9_WORK)
    conn.execute("CREATE INDEX ix_work_available ON work (available_at)")
    conn.execute("INSERT INTO schema_info VALUES ('version', '9')")
    conn.execute("BEGIN")
    for _ in range(executions):
        eid = str(uuid.uuid4())
        conn.execute(
            "INSERT INTO executions (id, workflow_id, workflow_version, status, state, cursor,"
            " last_seq, created_at, updated_at) VALUES (?, 'w', '1', 'completed', '{}', '{}', ?,"
            " 1, 1)",
            (eid, events),
        )
        conn.executemany(
            "INSERT INTO events VALUES (?, ?, 'node_completed', 's1', 1, 1, 1.5, ?)",
            [(eid, seq, _PATCH) for seq in range(1, events + 1)],
        )
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--executions", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "v9.db"
        build_v9(path, args.executions, args.events)
        store = store_from_url(f"sqlite:///{path}")
        started = time.perf_counter()
        await store.open()
        opened = time.perf_counter() - started
        try:
            sample = await store.list_executions(limit=1)
            log = await store.events(sample[0].id) if sample else []
        finally:
            await store.close()
    total = args.executions * args.events
    print(
        json.dumps(
            {
                "executions": args.executions,
                "events": total,
                "open_s": round(opened, 2),
                "s_per_million_events": round(opened / total * 1e6, 2),
                "events_of_one_after": len(log),
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())

"""SQLite keeps each work row in a slot of its execution (schema version 10):
the commit that ends a visit and leases the next moves the row in place,
every other write still leaves one row per ready visit, and a version 9
file's rows are carried over into slots."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from agent_node import Runtime, Workflow
from agent_node.store import sqlite_events, store_from_url
from agent_node.store.records import WorkItem
from agent_node.store.schema import SCHEMA_VERSION
from agent_node.store.txn import Txn
from agent_node.workflow.retry import RetryPolicy


class Count(BaseModel):
    n: int = 0


def _fork(wf: Workflow, names: str, body: Any, retry: RetryPolicy) -> None:
    """Branches ``names`` from a fork to a join ``meet``, each running
    ``body(state, name)`` under ``retry``."""
    wf.parallel("fan", list(names), join="meet")
    for name in names:

        async def branch(state: Any, _name: str = name) -> dict[str, str]:
            changed: dict[str, str] = await body(state, _name)
            return changed

        wf.step(branch, name=name, next="meet", retry=retry)
    wf.join("meet")


def _rows(db: Path, execution_id: str | None = None) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        where, params = ("WHERE execution_id = ?", (execution_id,)) if execution_id else ("", ())
        sql = (
            "SELECT execution_id, slot, node, visit, attempt, available_at, lease_owner, fence"
            f" FROM work {where} ORDER BY execution_id, slot"
        )
        return conn.execute(sql, params).fetchall()


async def test_a_sequential_step_moves_its_work_row_in_place(tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    seen: list[list[tuple[Any, ...]]] = []
    wf = Workflow("chain", version="1")
    wf.state(Count)
    for i in range(5):

        async def step(state: Count) -> dict[str, int]:
            seen.append(_rows(db))  # committed rows, read beside the store
            return {"n": state.n + 1}

        wf.step(step, name=f"s{i}")
    async with Runtime(f"sqlite:///{db}") as rt:
        result = await rt.run(wf.compile(), Count())
    assert result.status == "completed" and result.state == Count(n=5)
    assert [[(r[1], r[2], r[3], r[6] is not None) for r in rows] for rows in seen] == [
        [(1, f"s{i}", 1, True)] for i in range(5)
    ]
    # one row all along, in its first place in the queue: moved, never re-made
    assert len({rows[0][5] for rows in seen}) == 1
    assert _rows(db) == []


async def test_fork_retry_and_join_keep_one_row_per_ready_visit(tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    tries: list[str] = []
    during: list[list[tuple[Any, ...]]] = []

    class Par(BaseModel):
        a: str = ""
        b: str = ""
        c: str = ""
        after: int = 0

    wf = Workflow("fork", version="1")
    wf.state(Par)

    async def branch(state: Par, name: str) -> dict[str, str]:
        tries.append(name)
        during.append(_rows(db))
        if name == "b" and tries.count("b") == 1:
            raise ConnectionError("b fails once")
        return {name: name.upper()}

    _fork(wf, "abc", branch, RetryPolicy(max_attempts=2, initial_delay=0.01, jitter=0))

    @wf.step
    async def after(state: Par) -> dict[str, int]:
        during.append(_rows(db))
        return {"after": state.after + 1}

    async with Runtime(f"sqlite:///{db}") as rt:
        result = await rt.run(wf.compile(), Par())
    assert result.status == "completed", result.error
    assert result.state == Par(a="A", b="B", c="C", after=1)
    assert sorted(tries) == ["a", "b", "b", "c"]
    for rows in during:  # never two rows of one visit, never two visits in one slot
        visits = [(r[2], r[3]) for r in rows]
        slots = [r[1] for r in rows]
        assert len(set(visits)) == len(visits) and len(set(slots)) == len(slots)
    assert [(r[2], r[3]) for r in during[-1]] == [("after", 1)]  # the join's row moved on
    assert _rows(db) == []


async def test_writes_of_work_that_are_not_moves(tmp_path: Path) -> None:
    """Puts and deletes as any plan may make them: a visit made ready again
    keeps its row; a move onto a visit that has a row of its own updates
    that row and deletes the ended one; extra visits take new slots."""
    wf = Workflow("w", version="1")
    wf.state(Count)

    @wf.step
    async def only(state: Count) -> None:
        return None

    rt = Runtime(f"sqlite:///{tmp_path}/store.db")
    store = rt.store
    await store.open()  # and no engine: nothing claims the rows
    try:
        eid, _, _ = await rt.engine.control.create(wf.compile(), Count(), None, None)
        assert [(r[1], r[2], r[3]) for r in _rows(tmp_path / "store.db")] == [(1, "only", 1)]

        def item(node: str, visit: int, owner: str | None = None) -> WorkItem:
            return WorkItem(eid, node, visit, 1, 5.0, owner, 9.0 if owner else None, 3)

        def plan(*, put: list[WorkItem], delete: list[tuple[str, int]]) -> Any:
            def apply(txn: Txn) -> None:
                for node, visit in delete:
                    txn.delete_work(node, visit)
                for w in put:
                    txn.put_work(w)

            return apply

        # more visits: new slots after the last
        await store.apply(eid, plan(put=[item("x", 1), item("y", 1)], delete=[]))
        assert [(r[1], r[2]) for r in _rows(tmp_path / "store.db")] == [
            (1, "only"),
            (2, "x"),
            (3, "y"),
        ]
        # ended and made ready again: the same row, updated
        await store.apply(eid, plan(put=[item("x", 1, "me")], delete=[("x", 1)]))
        assert [(r[1], r[2], r[6]) for r in _rows(tmp_path / "store.db")][1] == (2, "x", "me")
        # a leased move onto a visit that has its own row: that row is
        # updated, the ended one deleted
        await store.apply(eid, plan(put=[item("y", 1, "me")], delete=[("only", 1)]))
        assert [(r[1], r[2], r[6]) for r in _rows(tmp_path / "store.db")] == [
            (2, "x", "me"),
            (3, "y", "me"),
        ]
        # a move to a visit made ready for anyone takes its time in the queue
        await store.apply(
            eid, plan(put=[WorkItem(eid, "z", 1, 0, 7.5, None, None, 0)], delete=[("x", 1)])
        )
        assert [(r[1], r[2], r[5], r[6]) for r in _rows(tmp_path / "store.db")] == [
            (2, "z", 7.5, None),
            (3, "y", 5.0, "me"),
        ]
        assert {(w.node, w.visit) for w in await store.work(eid)} == {("z", 1), ("y", 1)}
    finally:
        await store.close()


_V9_EVENTS = (
    "CREATE TABLE events (execution_id TEXT NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL,"
    " node TEXT, visit INTEGER, attempt INTEGER, at FLOAT NOT NULL, data TEXT,"
    " PRIMARY KEY (execution_id, seq)) WITHOUT ROWID"
)
_V9_WORK = (
    "CREATE TABLE work (execution_id TEXT NOT NULL, node TEXT NOT NULL,"
    " visit INTEGER NOT NULL, attempt INTEGER NOT NULL, available_at FLOAT NOT NULL,"
    " lease_owner TEXT, lease_expires_at FLOAT, fence INTEGER NOT NULL,"
    " PRIMARY KEY (execution_id, node, visit)) WITHOUT ROWID",
    "CREATE INDEX ix_work_available ON work (available_at)",
)


async def test_a_version_9_file_keeps_its_ready_work_and_its_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Work rows of a version 9 file (keyed by their visit) are numbered in
    slots by the upgrade, its log (keyed by execution id and seq) is copied
    under the executions' new numbers, and the executions run on."""
    db = tmp_path / "store.db"
    failing = {"on": True}

    class Par(BaseModel):
        a: str = ""
        b: str = ""

    wf = Workflow("later", version="1")
    wf.state(Par)

    async def branch(state: Par, name: str) -> dict[str, str]:
        if failing["on"]:
            raise ConnectionError("not yet")
        return {name: name.upper()}

    _fork(wf, "ab", branch, RetryPolicy(max_attempts=3, initial_delay=3600, jitter=0))
    compiled = wf.compile()
    async with Runtime(f"sqlite:///{db}") as rt:
        ids = [await rt.start_execution(compiled, Par()) for _ in range(2)]
        for _ in range(500):  # until both branches of both failed once: rows due in an hour
            rows = _rows(db)
            if len(rows) == 4 and not any(r[6] for r in rows):
                break
            await asyncio.sleep(0.01)
        logs = {eid: await rt.store.events(eid) for eid in ids}
    before = sorted((r[0], r[2], r[3], r[4], r[7]) for r in _rows(db))
    assert len(before) == 4 and {r[3] for r in before} == {1}
    with sqlite3.connect(db) as conn:  # the same rows, due now, in a version 9 file
        conn.execute("DROP INDEX ux_executions_num")
        conn.execute("ALTER TABLE executions DROP COLUMN num")
        conn.execute("ALTER TABLE events RENAME TO events_v10")
        conn.execute(_V9_EVENTS)
        conn.execute(
            "INSERT INTO events SELECT x.id, e.id & 4294967295, e.kind, e.node, e.visit,"
            " e.attempt, e.at, e.data FROM events_v10 e JOIN executions x"
            " ON e.id >> 32 = (SELECT count(*) FROM executions y WHERE y.rowid <= x.rowid)"
        )
        conn.execute("DROP TABLE events_v10")
        conn.execute("ALTER TABLE work RENAME TO work_v10")
        conn.execute("DROP INDEX ix_work_available")
        for statement in _V9_WORK:
            conn.execute(statement)
        conn.execute(
            "INSERT INTO work SELECT execution_id, node, visit, attempt, 0, lease_owner,"
            " lease_expires_at, fence FROM work_v10"
        )
        conn.execute("DROP TABLE work_v10")
        conn.execute("UPDATE schema_info SET value = '9' WHERE key = 'version'")
    monkeypatch.setattr(sqlite_events, "_LOUD_COPY", 1)  # a large copy says so
    store = store_from_url(f"sqlite:///{db}")
    with caplog.at_level(logging.WARNING, logger=sqlite_events.__name__):
        await store.open()
    await store.close()
    copied = sum(len(log) for log in logs.values())
    assert f"copying its {copied} events" in caplog.text
    assert f"{copied} events copied in" in caplog.text
    after = _rows(db)
    reopened = store_from_url(f"sqlite:///{db}")
    await reopened.open()
    try:
        assert {eid: await reopened.events(eid) for eid in ids} == logs
    finally:
        await reopened.close()
    assert sorted((r[0], r[2], r[3], r[4], r[7]) for r in after) == before
    assert sorted((r[0], r[1]) for r in after) == sorted((e, s) for e in ids for s in (1, 2))
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT value FROM schema_info").fetchall() == [(str(SCHEMA_VERSION),)]
        assert (
            conn.execute("SELECT name FROM sqlite_master WHERE name = 'work_v9'").fetchall() == []
        )
    failing["on"] = False
    async with Runtime(f"sqlite:///{db}") as rt:
        results = [await rt.run(compiled, execution_id=eid) for eid in ids]
    assert [r.state for r in results] == [Par(a="A", b="B")] * 2
    assert _rows(db) == []

"""A store of schema version 6 (the whole state in each execution's row),
written by hand, is opened by this version: its executions keep working —
read whole, resumed, finished — and a large state leaves the row the first
time it is written."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from pydantic import BaseModel
from support.raw_sql import run_sql

from agent_node import Runtime, Workflow
from agent_node.store.schema import SCHEMA_VERSION, ddl

BLOB = "v6" * 2000  # 4 KB: more than a row keeps since version 7


class Doc(BaseModel):
    blob: str = ""
    n: int = 0
    lines: list[str] = []
    note: str | None = None


def workflow() -> Workflow:
    wf = Workflow("upgraded", version="1")
    wf.state(Doc)

    @wf.step
    async def first(state: Doc) -> dict[str, Any]:
        return {"n": state.n + 1, "lines": [*state.lines, "one"]}

    wf.wait("ask", event="go", output="note")

    @wf.step(next=None)
    async def after(state: Doc) -> dict[str, Any]:
        return {"lines": [*state.lines, f"after {state.note}"]}

    return wf


_SQLITE_V9_EVENTS = (
    "CREATE TABLE events (execution_id TEXT NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL,"
    " node TEXT, visit INTEGER, attempt INTEGER, at FLOAT NOT NULL, data TEXT,"
    " PRIMARY KEY (execution_id, seq)) WITHOUT ROWID"
)


def _v6(dialect: str) -> list[str]:
    real = "DOUBLE PRECISION" if dialect == "postgresql" else "FLOAT"
    parked = Doc(blob=BLOB, n=1, lines=["one"]).model_dump_json()
    cursor = json.dumps({"v": {"first": 1, "ask": 1}})
    started = json.dumps({"workflow": "upgraded@1", "input": Doc(blob=BLOB).model_dump()})
    patch = json.dumps({"duration": 0.01, "patch": {"n": 1, "lines": ["one"]}, "next": "ask"})
    events = [
        (1, "execution_started", None, None, started),
        (2, "node_started", "first", 1, None),
        (3, "node_completed", "first", 1, patch),
        (4, "node_started", "ask", 1, None),
        (5, "wait_started", "ask", 1, '{"kind":"event","event":"go"}'),
    ]
    # SQLite's log as it was until version 10 (keyed by execution id and seq)
    log = ["events"] if dialect == "postgresql" else []
    old_log = [] if log else [_SQLITE_V9_EVENTS]
    return [
        *ddl(dialect, [*log, "work", "waits", "push_configs", "delegations", "schema_info"]),
        *old_log,
        "CREATE TABLE executions (id TEXT PRIMARY KEY, workflow_id TEXT NOT NULL,"
        " workflow_version TEXT NOT NULL, workflow_ref TEXT, status TEXT NOT NULL,"
        " state TEXT NOT NULL, cursor TEXT NOT NULL, last_seq INTEGER NOT NULL, error TEXT,"
        f" context_id TEXT, metadata TEXT, created_at {real} NOT NULL,"
        f" updated_at {real} NOT NULL, caller TEXT)",
        "CREATE INDEX ix_executions_created ON executions (created_at, id)",
        "INSERT INTO executions VALUES ('parked', 'upgraded', '1', NULL, 'waiting',"
        f" '{parked}', '{cursor}', 5, NULL, NULL, NULL, 1.0, 2.0, NULL)",
        "INSERT INTO executions VALUES ('done', 'upgraded', '1', NULL, 'completed',"
        """ '{"blob":"","n":7,"lines":[],"note":"old"}', '{"v":{}}', 9, NULL, NULL, NULL,"""
        " 0.5, 0.5, NULL)",
        *(
            "INSERT INTO events VALUES ('parked', {}, '{}', {}, {}, NULL, 1.5, {})".format(
                seq,
                kind,
                f"'{node}'" if node else "NULL",
                visit if visit else "NULL",
                f"'{data}'" if data else "NULL",
            )
            for seq, kind, node, visit, data in events
        ),
        "INSERT INTO waits VALUES ('parked', 'ask', 1, 'event', 'go', NULL)",
        "INSERT INTO schema_info VALUES ('version', '6')",
    ]


async def test_a_version_6_store_keeps_its_executions_working(
    durable_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "agent_node.store")
    dialect = "sqlite" if durable_url.startswith("sqlite") else "postgresql"
    await run_sql(durable_url, _v6(dialect))
    wf = workflow().compile()
    async with Runtime(durable_url) as rt:
        rt.workflows.add(wf)
        done = await rt.store.get("done")
        parked = await rt.store.get("parked")
        assert done is not None and json.loads(done.state)["n"] == 7
        assert parked is not None and Doc.model_validate_json(parked.state) == Doc(
            blob=BLOB, n=1, lines=["one"]
        )
        listed = {r.id: r.state for r in await rt.store.list_executions()}
        assert listed == {"done": done.state, "parked": parked.state}
        await rt.engine.control.signal("parked", "go", "hi")
        result = await rt.run(wf, execution_id="parked")
    assert result.status == "completed"
    assert result.state == Doc(blob=BLOB, n=1, lines=["one", "after hi"], note="hi")
    rows = await run_sql(
        durable_url, [], "SELECT id, state, snapshot_seq FROM executions ORDER BY id"
    )
    assert rows[0] == ("done", '{"blob":"","n":7,"lines":[],"note":"old"}', 0)  # untouched
    assert rows[1][:2] == ("parked", "")  # too large for the row since version 7
    kept = await run_sql(durable_url, [], "SELECT seq FROM snapshots")
    assert [seq for (seq,) in kept] == [rows[1][2]] and rows[1][2] > 5
    version = await run_sql(durable_url, [], "SELECT value FROM schema_info")
    assert version == [(str(SCHEMA_VERSION),)]
    # An operator reads that it happened (an operator's walk found no line).
    assert f"upgraded the store schema from version 6 to {SCHEMA_VERSION}" in caplog.text

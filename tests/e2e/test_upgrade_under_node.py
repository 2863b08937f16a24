"""A serving node whose store a newer agent-node upgraded stops: it says so
once at ERROR, /readyz answers 503 ``outdated`` with the reason while it
drains, and it exits with status 75 for its supervisor to start it again
(with the new release). Before, an old node on an upgraded file spun on
"claiming failed" (144,000 lines a minute) and answered every request
-32603, for as long as it ran; an old PostgreSQL replica failed steps
silently."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import asyncpg
import httpx
import pytest
from e2e.procs import CLI, Spawn, child_env, wait_until

from agent_node.store.schema import SCHEMA_VERSION

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

NEWER = SCHEMA_VERSION + 1
REASON = (
    f"was upgraded to schema {NEWER} by a newer agent-node; this one ({SCHEMA_VERSION})"
    " stops: upgrade it"
)
WORKFLOW = """\
workflow:
  id: parked
  version: "1"
  start: ask
  state_schema: {answer: {}}
nodes:
  ask: {type: wait, event: go, output: answer, next: done}
  done: {type: end}
"""


def node_config(tmp_path: Path, store: str) -> Path:
    (tmp_path / "parked.yaml").write_text(WORKFLOW)
    path = tmp_path / "agent-node.yaml"
    path.write_text(
        "name: upgraded\nlisten: {host: 127.0.0.1, port: 0}\n"
        f"store: {store}\ntelemetry: {{drain_seconds: 3}}\n"
        "skills:\n  - {id: parked, workflow: parked.yaml, default: true}\n"
    )
    return path


async def upgrade(url: str) -> None:
    """What a newer agent-node's upgrade leaves: the version raised."""
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        try:
            conn.execute("UPDATE schema_info SET value = ?", (str(NEWER),))
            conn.commit()
        finally:
            conn.close()
        return
    pg = await asyncpg.connect(url)
    try:
        await pg.execute("UPDATE schema_info SET value = $1", str(NEWER))
    finally:
        await pg.close()


async def test_a_node_stops_with_status_75_once_a_newer_agent_node_upgraded_its_store(
    spawn: Spawn, tmp_path: Path, durable_url: str
) -> None:
    conf = node_config(tmp_path, durable_url)
    node = spawn(
        "node",
        [*CLI, "serve", "--insecure-dev", "--config", str(conf)],
        child_env(tmp_path / "effects.db", 0.0),
    )
    await wait_until(lambda: "listening on" in node.out(), "the node", timeout=30, alive=[node])
    url = node.out().splitlines()[0].split()[-1]
    async with httpx.AsyncClient(base_url=url, timeout=5) as client:
        assert (await client.get("/readyz")).json() == {"status": "ready"}
        await upgrade(durable_url)

        async def outdated() -> bool:
            return (await client.get("/readyz")).status_code == 503

        await wait_until(outdated, "/readyz to say outdated", timeout=10, alive=[node])
        answer = await client.get("/readyz")
    # Said to anyone who asks: which versions, not where the store is (a URL may hold a password).
    assert answer.json() == {"status": "outdated", "reason": f"the store {REASON}"}
    assert node.wait(30) == 75, node.describe()
    assert node.err().count(REASON) == 1, node.err()  # once, at ERROR
    assert "ERROR" in next(line for line in node.err().splitlines() if REASON in line)
    assert "stopped: its store is newer (exit 75)" in node.out()


async def test_a_worker_stops_with_status_75_too(spawn: Spawn, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/worker.db"
    worker = spawn(
        "worker", [*CLI, "worker", "--store", url], child_env(tmp_path / "effects.db", 0.0)
    )
    await wait_until(lambda: "stop with SIGTERM" in worker.out(), "the worker", timeout=30)
    await upgrade(url)
    assert worker.wait(30) == 75, worker.describe()
    assert worker.err().count(REASON) == 1 and "the store is newer" in worker.out()

"""The command line on a served node's store, the node SIGKILLed: ``signal``
says who carries the execution on, ``resume`` without the node's config
leaves a tool node to the node instead of failing the execution, and with
``--config`` runs it as the node would (its ``mcp:`` servers)."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import httpx
import pytest
from e2e.procs import CLI, Spawn, child_env, opened, run_cli, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

MCP_SERVER = Path(__file__).resolve().parents[1] / "support" / "mcp_server.py"

WORKFLOW = """\
workflow:
  id: asktool
  version: "1"
  start: ask
  state_schema: {topic: string, answer: {}, slept: {}}
nodes:
  ask: {type: wait, event: go, output: answer, next: slowtool}
  slowtool:
    type: tool
    tool: sleep
    arguments: {seconds: 0.5}
    output: slept
    next: done
  done: {type: end}
"""


def node_config(tmp_path: Path, store: str) -> Path:
    (tmp_path / "asktool.yaml").write_text(WORKFLOW)
    path = tmp_path / "agent-node.yaml"
    path.write_text(
        "name: toolnode\nlisten: {host: 127.0.0.1, port: 0}\n"
        f"store: {store}\nskills:\n  - {{id: asktool, workflow: asktool.yaml, default: true}}\n"
        f"mcp:\n  - {{name: local, command: [{sys.executable}, '{MCP_SERVER}']}}\n"
    )
    return path


async def test_resume_leaves_a_tool_node_to_the_node_and_runs_it_with_its_config(
    spawn: Spawn, tmp_path: Path
) -> None:
    store = f"sqlite:///{tmp_path}/node.db"
    conf = node_config(tmp_path, store)
    node = spawn(
        "node",
        [*CLI, "serve", "--insecure-dev", "--config", str(conf)],
        child_env(tmp_path / "effects.db", 0.0),
    )
    await wait_until(lambda: "listening on" in node.out(), "the node", timeout=30, alive=[node])
    url = node.out().splitlines()[0].split()[-1]
    message = {"messageId": "m1", "role": "ROLE_USER", "parts": [{"data": {"topic": "t"}}]}
    body = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {"message": message}}
    answer = httpx.post(f"{url}/a2a", json=body, headers={"A2A-Version": "1.0"}, timeout=10)
    task_id = answer.json()["result"]["task"]["id"]

    async def waiting() -> bool:
        async with opened(store) as opened_store:
            record = await opened_store.get(task_id)
            return record is not None and record.status == "waiting"

    await wait_until(waiting, "the execution to wait", timeout=30)
    node.send(signal.SIGKILL)
    assert node.wait(10) == -signal.SIGKILL

    signaled = run_cli(tmp_path, "signal", task_id, "go", "--data", "{}", "--store", store)
    assert signaled.returncode == 0, signaled.stderr
    hint = signaled.stdout.splitlines()[-1]
    # Its next node needs the node's mcp: servers: a bare `resume` cannot run it.
    assert "serve --config" in hint and "resume --config" in hint, signaled.stdout

    bare = run_cli(tmp_path, "resume", "--store", store, "--idle-timeout", "5")
    assert bare.returncode == 0, bare.stdout + bare.stderr
    said = "left 1 execution(s) for a process that can run them (a node configured with mcp:/peers:"
    assert said in bare.stdout, bare.stdout
    assert "serve --config" in bare.stdout
    assert "failed" not in bare.stdout.replace("0 failed", "")
    async with opened(store) as opened_store:
        record = await opened_store.get(task_id)
        assert record is not None and record.status == "running", record
        events = await opened_store.events(task_id)
    assert not [e for e in events if e.kind == "node_failed"], events

    configured = run_cli(tmp_path, "resume", "--config", str(conf), "--idle-timeout", "30")
    assert configured.returncode == 0, configured.stdout + configured.stderr
    assert "1 completed" in configured.stdout, configured.stdout
    async with opened(store) as opened_store:
        record = await opened_store.get(task_id)
        assert record is not None and record.status == "completed", record
        assert json.loads(record.state)["slept"] == {"result": 0.5}

"""The tool node and its MCP pool against a real MCP server
(``tests/support/mcp_server.py``): started over stdio by the pool, and run as
a streamable-HTTP server in a subprocess on a loopback port."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from support.mcp_http import http_server
from support.ports import free_port

from agent_node import NodeFailed, Runtime, WorkflowDefinitionError
from agent_node.cli.main import cli
from agent_node.config import McpServerConfig
from agent_node.integrations.mcp import McpPool, PoolState
from agent_node.nodes.tool import IDEMPOTENCY_META, ToolExecutor
from agent_node.workflow.compiled import CompiledWorkflow
from agent_node.workflow.yaml_loader import load_yaml_text

TESTS = Path(__file__).resolve().parents[1]
SERVER = TESTS / "support" / "mcp_server.py"
COMMAND = [sys.executable, str(SERVER)]
STATE = {
    "a": {"type": "integer", "default": 2},
    "city": {"type": "string", "default": "Oslo"},
    "sum": {},
    "said": {},
    "weather": {},
    "seen": {},
}


def workflow(nodes: str, start: str, state: dict[str, Any] = STATE) -> CompiledWorkflow:
    header = {"id": "tools", "version": "1", "state_schema": state, "start": start}
    return load_yaml_text(f"workflow: {json.dumps(header)}\nnodes:\n{nodes}")


PIPELINE = workflow(
    """
  add: {type: tool, server: local, tool: add, arguments: {a: "{{ state.a }}", b: 3},
        output: sum, next: echo}
  echo: {type: tool, tool: echo, arguments: {text: "sum={{ state.sum.result }}"},
         output: said, next: forecast}
  forecast: {type: tool, server: local, tool: forecast,
             arguments: {city: "{{ state.city | upper }}", days: "{{ state.a }}"},
             output: weather, next: seen}
  seen: {type: tool, server: local, tool: seen, output: seen, next: done}
  done: {type: end}
""",
    "add",
)


@pytest.fixture
async def pool() -> AsyncIterator[McpPool]:
    local = McpServerConfig(
        name="local", command=COMMAND, env={"MCP_TEST_VALUE": "from-config"}, cwd="support"
    )
    async with McpPool([local], base_dir=TESTS) as opened:
        yield opened


async def run(pool: McpPool, wf: CompiledWorkflow, state: dict[str, Any] | None = None) -> Any:
    async with Runtime("memory://", executors={"tool": ToolExecutor(pool)}) as runtime:
        return await runtime.run(wf, state or {})


@pytest.mark.slow
async def test_a_workflow_of_tool_nodes_writes_their_answers(pool: McpPool) -> None:
    result = await run(pool, PIPELINE)

    assert result.status == "completed", result.error
    state = result.state.model_dump()
    # A single {{ }} keeps its type (the tool's schema wants an integer);
    # structured content when the tool gives it, else the text.
    assert state["sum"] == {"result": 5}
    assert state["said"] == "sum=5"
    assert state["weather"] == {
        "city": "OSLO",
        "days": [{"day": 1, "high": 20}, {"day": 2, "high": 21}],
    }
    node = next(e for e in result.events if e.kind == "node_completed" and e.node == "add")
    recorded = node.data["output"]
    assert (recorded["server"], recorded["tool"]) == ("local", "add")
    assert 0 < recorded["duration"] < 5
    # Each call carries its visit's idempotency key and a trace context.
    meta = state["seen"]["meta"]
    assert meta[IDEMPOTENCY_META] == f"{result.execution_id}/seen/1"
    assert meta["traceparent"].startswith("00-")
    # The server runs where the configuration says, with its environment.
    assert (state["seen"]["cwd"], state["seen"]["env"]) == (str(TESTS / "support"), "from-config")


@pytest.mark.slow
async def test_one_session_serves_every_call_and_execution(pool: McpPool) -> None:
    first = await run(pool, PIPELINE)
    second = await run(pool, PIPELINE, {"a": 1})
    direct = [await pool.call("local", "add", {"a": i, "b": 1}) for i in range(5)]
    started = time.perf_counter()
    slept = await asyncio.gather(*(pool.call("local", "sleep", {"seconds": 0.3}) for _ in range(5)))

    assert (first.status, second.status) == ("completed", "completed")
    assert second.state.sum == {"result": 4}
    assert [r.structured for r in direct] == [{"result": i + 1} for i in range(5)]
    # Calls share the session concurrently: five 0.3 s calls overlap.
    assert time.perf_counter() - started < 1.0
    assert all(not r.is_error for r in slept)
    assert pool.spawns == 1


@pytest.mark.slow
async def test_an_error_answer_fails_the_node_with_the_tools_text(pool: McpPool) -> None:
    wf = workflow(
        """
  boom: {type: tool, tool: fail, arguments: {message: "disk full on {{ state.city }}"},
         retry: {max_attempts: 2, initial_delay: 0.01}, next: done}
  done: {type: end}
""",
        "boom",
    )
    result = await run(pool, wf)

    assert result.status == "failed"
    assert "local/fail answered an error: disk full on Oslo" in (result.error or "")
    failures = [e for e in result.events if e.kind == "node_failed"]
    assert [e.attempt for e in failures] == [1, 2]
    # A node timing out cancels its call; the session stays for the next.
    slow = workflow(
        "  nap: {type: tool, tool: sleep, arguments: {seconds: 5}, timeout: 0.2}\n", "nap"
    )
    late = await run(pool, slow)
    assert late.status == "failed" and "timed out" in (late.error or "")
    assert (await pool.call("local", "add", {"a": 1, "b": 1})).structured == {"result": 2}
    # An error answer is an answer: the session stays.
    assert pool.spawns == 1


@pytest.mark.slow
async def test_a_killed_server_is_started_again_by_the_next_call(pool: McpPool) -> None:
    first = (await pool.call("local", "pid", {})).structured["result"]
    os.kill(first, signal.SIGKILL)
    await _gone(first)
    await asyncio.sleep(0.2)  # the pool sees the stdio stream end

    second = (await pool.call("local", "pid", {})).structured["result"]

    assert second != first
    assert pool.spawns == 2


@pytest.mark.slow
async def test_a_node_retries_through_a_server_killed_under_it(pool: McpPool) -> None:
    wf = workflow(
        """
  add: {type: tool, tool: add, arguments: {a: 1, b: 1}, output: sum,
        retry: {max_attempts: 3, initial_delay: 0.01}, next: done}
  done: {type: end}
""",
        "add",
    )
    os.kill((await pool.call("local", "pid", {})).structured["result"], signal.SIGKILL)

    result = await run(pool, wf)  # at once: the first attempt may find it dying

    assert result.status == "completed", result.error
    assert result.state.sum == {"result": 2}
    assert pool.spawns == 2


@pytest.mark.slow
async def test_mistakes_are_node_failures_that_say_what_went_wrong(tmp_path: Path) -> None:
    silent = [sys.executable, "-c", "import time; time.sleep(30)"]
    servers = [
        McpServerConfig(name="missing", command=[str(tmp_path / "no-such-server")]),
        McpServerConfig(name="silent", command=silent),
    ]
    async with McpPool(servers, open_timeout=0.5) as pool:
        with pytest.raises(NodeFailed, match=r"mcp server 'missing': opening a session: No such"):
            await pool.call("missing", "add", {})
        with pytest.raises(NodeFailed, match=r"'silent'.*no answer to initialize within 0.5 s"):
            await pool.call("silent", "add", {})
        with pytest.raises(NodeFailed, match=r"no MCP server named 'other'.*missing, silent"):
            await pool.call("other", "add", {})
    assert pool.state is PoolState.CLOSED
    with pytest.raises(NodeFailed, match="this runtime has no MCP servers"):
        await ToolExecutor(None).execute(_context(PIPELINE, "add"))


@pytest.mark.slow
async def test_tools_are_found_by_name_across_servers() -> None:
    servers = [
        McpServerConfig(name="a", command=COMMAND),
        McpServerConfig(name="b", command=[*COMMAND, "--prefix", "b_"]),
    ]
    async with McpPool(servers) as pool:
        assert await pool.server_for("echo") == "a"
        assert await pool.server_for("b_echo") == "b"
        with pytest.raises(NodeFailed, match=r"no MCP server offers a tool named 'nope'"):
            await pool.server_for("nope")
        listed = await pool.list_tools()
        assert pool.spawns == 2
    assert {t.name for t in listed["b"]} >= {"b_add", "b_echo", "b_fail"}
    add = next(t for t in listed["a"] if t.name == "add")
    assert add.input_schema["required"] == ["a", "b"]


@pytest.mark.slow
async def test_a_streamable_http_server_serves_the_same_tools() -> None:
    with http_server() as url:
        servers = [
            McpServerConfig(name="web", url=url, headers={"X-Test": "from-config"}),
            McpServerConfig(name="local", command=COMMAND),
        ]
        async with McpPool(servers) as pool:
            wf = workflow(
                """
  add: {type: tool, server: web, tool: add, arguments: {a: "{{ state.a }}", b: 40},
        output: sum, next: seen}
  seen: {type: tool, server: web, tool: seen, output: seen, next: done}
  done: {type: end}
""",
                "add",
            )
            result = await run(pool, wf)
            again = await run(pool, wf, {"a": 0})
            with pytest.raises(NodeFailed, match=r"'add' is offered by several MCP servers"):
                await pool.server_for("add")

            assert result.status == "completed", result.error
            assert (result.state.sum, again.state.sum) == ({"result": 42}, {"result": 40})
            assert result.state.seen["x_test"] == "from-config"
            assert pool.spawns == 2  # web once, local once (listed by server_for)


@pytest.mark.slow
def test_the_tools_command_lists_every_server(tmp_path: Path) -> None:
    config = tmp_path / "agent-node.yaml"
    config.write_text(
        "name: t\nmcp:\n"
        f"  - {{name: local, command: {json.dumps(COMMAND)}}}\n"
        f"  - {{name: down, url: 'http://127.0.0.1:{free_port()}/mcp'}}\n"
    )
    runner = CliRunner()

    shown = runner.invoke(cli, ["tools", "--config", str(config)], env={"COLUMNS": "200"})
    listed = runner.invoke(cli, ["tools", "--config", str(config), "--json"])

    assert shown.exit_code == 1, shown.output
    assert "local" in shown.output and "forecast" in shown.output
    assert "city*: string" in shown.output and "days: integer = 1" in shown.output
    assert "✗ unreachable" in shown.output
    assert listed.exit_code == 1
    found = json.loads(listed.output)
    assert "error" in found["down"]
    add = next(t for t in found["local"]["tools"] if t["name"] == "add")
    assert add["input_schema"]["properties"]["a"]["type"] == "integer"


def test_arguments_are_checked_when_the_workflow_compiles() -> None:
    with pytest.raises(WorkflowDefinitionError) as caught:
        workflow(
            """
  add: {type: tool, tool: add, arguments: {nested: {a: "{{ state.nope }}"}}, next: done}
  done: {type: end}
""",
            "add",
        )
    assert caught.value.node == "add"
    assert caught.value.field == "arguments.nested.a"
    with pytest.raises(WorkflowDefinitionError, match="unknown state key 'missing'"):
        workflow("  add: {type: tool, tool: add, output: missing}\n", "add")


def _context(wf: CompiledWorkflow, node: str) -> Any:
    from agent_node.engine.executor import NodeContext

    state = wf.state_model()
    return NodeContext("e1", wf, wf.node(node), 1, 1, state, state.model_dump(), time.time())


async def _gone(pid: int) -> None:
    for _ in range(200):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"process {pid} did not exit")

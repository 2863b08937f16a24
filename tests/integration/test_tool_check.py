"""The tool calls of workflows checked against real MCP servers
(``tests/support/mcp_server.py`` over stdio) before any task runs."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from agent_node.config import McpServerConfig
from agent_node.errors import ConfigError
from agent_node.integrations.mcp import McpPool
from agent_node.tool_check import check_servers, warn_tools
from agent_node.workflow.compiled import CompiledWorkflow
from agent_node.workflow.yaml_loader import load_yaml_text

pytestmark = pytest.mark.slow

SERVER = Path(__file__).resolve().parents[1] / "support" / "mcp_server.py"
STATE = {"a": {"type": "integer", "default": 2}, "text": {"type": "string", "default": "x"}}


def workflow(nodes: str, name: str = "tools") -> CompiledWorkflow:
    header = {"id": name, "version": "1", "state_schema": STATE, "start": "first"}
    return load_yaml_text(f"workflow: {json.dumps(header)}\nnodes:\n{nodes}")


def local(name: str = "local", *args: str) -> McpServerConfig:
    return McpServerConfig(name=name, command=[sys.executable, str(SERVER), *args])


def test_a_tool_node_naming_a_server_not_configured_is_refused() -> None:
    flows = {
        "lookup": workflow(
            """
  first: {type: tool, server: local, tool: add, arguments: {a: 1, b: 2}, next: second}
  second: {type: tool, server: web, tool: search, next: done}
  done: {type: end}
"""
        )
    }
    with pytest.raises(ConfigError) as refused:
        check_servers(flows, ["local", "other"])
    assert str(refused.value) == (
        "skill 'lookup': workflow tools@1, node 'second': MCP server 'web' is not configured"
        " on this node (its mcp: names local, other)"
    )
    with pytest.raises(ConfigError, match="it has no mcp:"):
        check_servers(flows, [])
    check_servers(flows, ["local", "web"])  # both configured: nothing to say


async def test_unknown_tools_and_arguments_the_schema_refuses_are_warned_of(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Arguments built from the state are left out (``first``, ``filled``,
    ``nested``'s ``days``); a tool call that can work says nothing."""
    flows = {
        "calc": workflow(
            """
  first: {type: tool, server: local, tool: add, arguments: {a: "{{ state.a }}", b: 3},
          next: typo}
  typo: {type: tool, server: local, tool: ad, arguments: {a: 1, b: 2}, next: wrong}
  wrong: {type: tool, server: local, tool: add, arguments: {a: 1, b: three}, next: short}
  short: {type: tool, tool: add, arguments: {a: 1}, next: filled}
  filled: {type: tool, tool: echo, arguments: {text: "{{ state.text }}"}, next: nowhere}
  nowhere: {type: tool, tool: nothing_lists_this, next: nested}
  nested: {type: tool, tool: forecast, arguments: {city: [1], days: "{{ state.a }}"},
           next: done}
  done: {type: end}
"""
        )
    }
    async with McpPool([local()]) as pool:
        with caplog.at_level("WARNING", logger="agent_node.tool_check"):
            warnings = await warn_tools(pool, flows)
    where = "workflow tools@1, node"
    assert warnings == [
        f"{where} 'typo': MCP server 'local' lists no tool 'ad' (it lists add, big, broken,"
        " echo, fail, forecast, hang, picture, pid, seen, sleep, wedge); a task reaching the"
        " node fails unless it gains it",
        f"{where} 'wrong': its arguments do not fit the input schema of local/add:"
        " 'three' is not of type 'integer' (at b)",
        f"{where} 'short': its arguments do not fit the input schema of local/add:"
        " 'b' required, not given",
        f"{where} 'nowhere': no MCP server lists tool 'nothing_lists_this' (servers: local)",
        f"{where} 'nested': its arguments do not fit the input schema of local/forecast:"
        " [1] is not of type 'string' (at city)",
    ]
    assert [r.getMessage() for r in caplog.records] == warnings


async def test_a_tool_two_servers_list_and_the_tools_models_call() -> None:
    flows = {
        "both": workflow(
            """
  first: {type: tool, tool: pid, next: done}
  done: {type: end}
""",
        ),
        "model": workflow(
            """
  first: {type: model, model: m, prompt: hi, next: done,
          tools: [echo, twin/echo, b_echo, nope, twin/nada]}
  done: {type: end}
""",
            name="asks",
        ),
    }
    servers = [local(), local("twin"), local("prefixed", "--prefix", "b_")]
    async with McpPool(servers) as pool:
        warnings = await warn_tools(pool, flows)
    asks = "workflow asks@1, node 'first'"
    assert warnings == [
        "workflow tools@1, node 'first': tool 'pid' is listed by local, twin: name its server",
        f"{asks}: tool 'echo' is listed by local, twin: name its server"
        " ('local/echo', 'twin/echo')",
        f"{asks}: no MCP server lists tool 'nope', which the model may call",
        f"{asks}: MCP server 'twin' lists no tool 'nada', which the model may call",
    ]
    # A model node's server/tool naming a server not configured refuses the start.
    with pytest.raises(ConfigError, match=r"node 'first': MCP server 'twin' is not configured"):
        check_servers({"model": flows["model"]}, ["local", "prefixed"])


async def test_a_server_that_does_not_answer_is_one_warning_within_the_timeout() -> None:
    silent = McpServerConfig(
        name="silent", command=[sys.executable, "-c", "import time; time.sleep(60)"]
    )
    flows = {
        "calc": workflow(
            """
  first: {type: tool, server: silent, tool: add, arguments: {a: 1, b: x}, next: second}
  second: {type: tool, server: local, tool: add, arguments: {a: 1, b: 2}, next: done}
  done: {type: end}
"""
        )
    }
    async with McpPool([silent, local()]) as pool:
        started = time.monotonic()
        warnings = await warn_tools(pool, flows, timeout=6)
        took = time.monotonic() - started
    assert warnings == [
        "MCP server 'silent' did not list its tools at start (no answer within 6 s):"
        " the tool nodes calling it are not checked"
    ]
    assert took < 15  # not the pool's 30 s to open a session


async def test_no_tool_calls_start_no_server() -> None:
    flows = {"plain": workflow("  first: {type: end}\n")}
    async with McpPool([local()]) as pool:
        assert await warn_tools(pool, flows) == []
        assert pool.spawns == 0

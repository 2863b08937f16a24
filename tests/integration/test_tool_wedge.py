"""A server that is alive but answers nothing (wedged) is replaced after a
call's deadline; one that is merely slow is kept. Real MCP servers
(``tests/support/mcp_server.py``: its ``wedge`` tool blocks the server's whole
event loop) over stdio, and over streamable HTTP in a subprocess."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from pathlib import Path

import pytest
from support.mcp_http import http_server

from agent_node import Runtime
from agent_node.config import McpServerConfig
from agent_node.errors import NodeFailed
from agent_node.integrations.mcp import McpPool
from agent_node.nodes.tool import ToolExecutor
from agent_node.workflow.yaml_loader import load_yaml_text

pytestmark = pytest.mark.slow

SERVER = Path(__file__).resolve().parents[1] / "support" / "mcp_server.py"
COMMAND = [sys.executable, str(SERVER)]
#: Longer than any test here should take: a call that hangs fails the test.
HUNG = 30
LOGGER = "agent_node.integrations.mcp"


def stdio(timeout: float = 0.3) -> McpServerConfig:
    return McpServerConfig(name="local", command=COMMAND, timeout=timeout)


async def pid(pool: McpPool) -> int:
    found: int = (await pool.call("local", "pid", {})).structured["result"]
    return found


def replacements(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == LOGGER and r.levelno == logging.WARNING and "wedged" in r.getMessage()
    ]


async def test_a_wedged_stdio_server_is_stopped_and_the_next_call_gets_a_new_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    async with McpPool([stdio()], ping_timeout=0.3) as pool:
        async with asyncio.timeout(HUNG):
            wedged = await pid(pool)
            with pytest.raises(NodeFailed, match=r"tool 'wedge' gave no answer within 0.3 s"):
                await pool.call("local", "wedge", {})
            fresh = await pid(pool)  # before the fix: no answer within 0.3 s, for ever
            again = await pid(pool)
        spawns = pool.spawns

    assert fresh != wedged
    assert again == fresh  # the new session is kept
    assert spawns == 2
    # Stopped and reaped (a zombie would still take signal 0), not left behind.
    with pytest.raises(ProcessLookupError):
        os.kill(wedged, 0)
    said = replacements(caplog)
    assert len(said) == 1, said
    assert said[0].startswith("mcp server 'local': a call went unanswered, then a ping did too")
    assert "(its process stopped)" in said[0]


async def test_a_slow_tool_past_its_deadline_keeps_its_session(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    async with McpPool([stdio()], ping_timeout=0.3) as pool:
        async with asyncio.timeout(HUNG):
            first = await pid(pool)
            with pytest.raises(NodeFailed, match=r"tool 'sleep' gave no answer within 0.3 s"):
                await pool.call("local", "sleep", {"seconds": 20})
            after = await pid(pool)
        spawns = pool.spawns

    assert after == first  # the server answered the ping: slow, not dead
    assert spawns == 1
    assert replacements(caplog) == []


async def test_a_node_timeout_that_cuts_the_call_short_has_the_server_checked() -> None:
    # The node's timer fires before the call's own deadline (the server's
    # 60 s): the call is cancelled, not timed out, and checked all the same.
    header = {"id": "t", "version": "1", "state_schema": {}, "start": "jam"}
    node = "{type: tool, server: local, tool: wedge, timeout: 0.3}"
    flow = load_yaml_text(f"workflow: {json.dumps(header)}\nnodes:\n  jam: {node}\n")
    async with McpPool([stdio(timeout=60)], ping_timeout=0.3) as pool:
        wedged = await pid(pool)
        async with Runtime("memory://", executors={"tool": ToolExecutor(pool)}) as runtime:
            async with asyncio.timeout(HUNG):
                result = await runtime.run(flow, {})
                fresh = await pid(pool)
        spawns = pool.spawns

    assert result.status == "failed"
    assert "node 'jam' timed out after 0.3s" in (result.error or "")
    assert fresh != wedged
    assert spawns == 2


async def test_a_wedged_http_server_s_session_is_replaced(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    unwedge = tmp_path / "unwedge"
    with http_server() as url:
        config = McpServerConfig(name="remote", url=url, timeout=0.3)
        async with McpPool([config], ping_timeout=0.3) as pool:
            async with asyncio.timeout(HUNG):
                await pool.call("remote", "echo", {"text": "up"})
                with pytest.raises(NodeFailed, match=r"'wedge' gave no answer within 0.3 s"):
                    await pool.call("remote", "wedge", {"until": str(unwedge)})
                # The next call waits for the verdict, then opens a new session,
                # which the server answers once it is unwedged.
                answer = asyncio.create_task(pool.call("remote", "echo", {"text": "back"}))
                while not replacements(caplog):
                    await asyncio.sleep(0.01)
                unwedge.touch()
                assert (await answer).content_text == "back"
            spawns = pool.spawns

    assert spawns == 2
    said = replacements(caplog)
    assert len(said) == 1, said
    assert "mcp server 'remote'" in said[0]
    assert "process" not in said[0]

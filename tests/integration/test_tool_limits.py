"""What bounds a tool call, against real MCP servers (``tests/support/mcp_server.py``
over stdio, and over streamable HTTP in a subprocess): its deadline, its
server's start, the size of its answer; and the files an answer carries."""

from __future__ import annotations

import asyncio
import base64
import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from support.mcp_http import http_server

from agent_node import Runtime
from agent_node.config import McpServerConfig
from agent_node.errors import NodeFailed
from agent_node.integrations.mcp import McpPool
from agent_node.nodes.tool import AnswerTooLarge, ToolExecutor
from agent_node.results import RunResult
from agent_node.workflow.yaml_loader import load_yaml_text

pytestmark = pytest.mark.slow

SERVER = Path(__file__).resolve().parents[1] / "support" / "mcp_server.py"
COMMAND = [sys.executable, str(SERVER)]
#: Longer than any test here should take: a call that hangs fails the test.
HUNG = 30


def one_node(node: str) -> Any:
    """A workflow of one tool node ``call`` (state keys ``out`` and ``pics``)."""
    state = {"out": {}, "pics": {}}
    header = {"id": "t", "version": "1", "state_schema": state, "start": "call"}
    return load_yaml_text(f"workflow: {json.dumps(header)}\nnodes:\n  call: {node}\n")


async def run(pool: McpPool, node: str) -> RunResult:
    async with Runtime("memory://", executors={"tool": ToolExecutor(pool)}) as runtime:
        async with asyncio.timeout(HUNG):
            return await runtime.run(one_node(node), {})


def failures(result: RunResult) -> list[str]:
    return [str((e.data or {}).get("error")) for e in result.events if e.kind == "node_failed"]


async def test_a_call_that_never_answers_fails_at_its_deadline_and_is_retried() -> None:
    local = McpServerConfig(name="local", command=COMMAND, timeout=0.3)
    async with McpPool([local]) as pool:
        hung = await run(
            pool,
            "{type: tool, server: local, tool: hang, retry: {max_attempts: 2, initial_delay: 0}}",
        )
        # The node's timeout, longer than the server's, is its call's deadline.
        patient = await run(
            pool,
            "{type: tool, server: local, tool: sleep, arguments: {seconds: 0.6}, output: out,"
            " timeout: 20}",
        )
        spawns = pool.spawns

    assert hung.status == "failed"
    said = "mcp server 'local': tool 'hang' gave no answer within 0.3 s"
    assert [said in error for error in failures(hung)] == [True, True]  # transient: retried
    assert patient.status == "completed", patient.error
    assert patient.state.out == {"result": 0.6}  # type: ignore[attr-defined]
    assert spawns == 1  # a call given up on is not the session's fault


async def test_a_server_that_never_lists_its_tools_fails_at_its_deadline(tmp_path: Path) -> None:
    mute = tmp_path / "mute.py"  # answers initialize, then nothing
    mute.write_text(MUTE)
    config = McpServerConfig(name="mute", command=[sys.executable, str(mute)], timeout=0.3)
    async with McpPool([config]) as pool:
        with pytest.raises(NodeFailed, match=r"'mute': listing tools: no answer within 0.3 s"):
            async with asyncio.timeout(HUNG):
                await pool.list_tools("mute")


MUTE = """
import json, sys
for line in sys.stdin:
    msg = json.loads(line)
    if msg.get("method") == "initialize":
        result = {"protocolVersion": msg["params"]["protocolVersion"], "capabilities": {},
                  "serverInfo": {"name": "mute", "version": "1"}}
        print(json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": result}), flush=True)
"""


async def test_a_start_slower_than_the_node_s_timeout_goes_on_for_the_next_attempt() -> None:
    slow = McpServerConfig(name="slow", command=[*COMMAND, "--start-delay", "1.5"])
    async with McpPool([slow]) as pool:
        first = await run(pool, "{type: tool, tool: pid, output: out, timeout: 0.3}")
        async with asyncio.timeout(HUNG):
            listed = await pool.list_tools("slow")  # waits for the start under way
        second = await run(pool, "{type: tool, tool: pid, output: out, timeout: 5}")
        spawns = pool.spawns

    assert first.status == "failed"
    assert "timed out after 0.3s: the MCP server 'slow' was still starting" in (first.error or "")
    assert any(tool.name == "pid" for tool in listed["slow"])
    assert second.status == "completed", second.error
    assert spawns == 1  # one start, shared by the timed-out attempt and the next


async def test_a_pool_closed_while_a_server_starts_ends_the_start() -> None:
    pool = McpPool([McpServerConfig(name="slow", command=[*COMMAND, "--start-delay", "20"])])
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await pool.call("slow", "pid", {})
    started = time.monotonic()

    await pool.aclose()

    assert time.monotonic() - started < 5  # not the start's 20 s, nor its 30 s bound
    assert pool.spawns == 1


async def test_an_answer_over_max_bytes_fails_the_node_for_good() -> None:
    local = McpServerConfig(name="local", command=COMMAND, max_bytes=64 * 1024)
    async with McpPool([local]) as pool:
        small = await run(pool, "{type: tool, tool: big, arguments: {kib: 16}, output: out}")
        large = await run(
            pool, "{type: tool, tool: big, arguments: {kib: 100}, output: out, retry: 3}"
        )
        with pytest.raises(AnswerTooLarge):
            await pool.call("local", "big", {"kib": 100})
        spawns = pool.spawns

    assert small.status == "completed", small.error
    assert len(small.state.out["result"]) == 16 * 1024  # type: ignore[attr-defined]
    assert large.status == "failed"
    # Certain to repeat: one attempt, whatever the node's retry.
    assert failures(large) == [
        "mcp server 'local': the answer of tool 'big' is larger than max_bytes"
        " (65,536 bytes; the server's max_bytes in mcp:)"
    ]
    assert spawns == 1


async def test_over_streamable_http_the_cap_is_max_bytes_not_the_sdk_s_1_mib() -> None:
    with http_server() as url:
        web = McpServerConfig(name="web", url=url)
        capped = McpServerConfig(name="capped", url=url, max_bytes=64 * 1024)
        async with McpPool([web, capped]) as pool:
            # Two MiB of text (four as the SDK sends it, with its structured
            # copy): over the SDK's default SSE event cap, under max_bytes.
            two_mib = await pool.call("web", "big", {"kib": 2048})
            # Over max_bytes, under what is read of one event: read, refused.
            read = await _refused(pool.call("capped", "big", {"kib": 100}))
            # Over what is read of one event: the SDK stops reading; same refusal.
            cut = await _refused(pool.call("capped", "big", {"kib": 400}))
            after = await pool.call("capped", "add", {"a": 1, "b": 2})
            spawns = pool.spawns

    assert len(two_mib.content_text) == 2048 * 1024
    for refused in (read, cut):
        assert "the answer of tool 'big' is larger than max_bytes (65,536 bytes" in str(refused)
    assert after.structured == {"result": 3}
    assert spawns == 2  # a refused answer is not the session's fault


async def test_an_answer_s_images_audio_and_blobs_are_kept_as_a2a_file_parts() -> None:
    from support.mcp_server import PNG

    async with McpPool([McpServerConfig(name="local", command=COMMAND)]) as pool:
        result = await run(pool, "{type: tool, tool: picture, output: out, files: pics}")

    assert result.status == "completed", result.error
    state = result.state.model_dump()
    png = base64.b64encode(PNG).decode()
    assert state["pics"] == [
        {"raw": png, "mediaType": "image/png"},
        {"raw": base64.b64encode(b"RIFF0000WAVE").decode(), "mediaType": "audio/wav"},
        {"raw": png, "mediaType": "application/pdf", "filename": "q3.pdf"},
    ]
    assert state["out"] == (
        "[image image/png]\n[audio audio/wav]\n[resource file:///charts/q3.pdf]\na chart"
    )
    # They are A2A 1.0 parts as they stand.
    from agent_node.a2a.protocol.models import Part

    parts = [Part.model_validate(p) for p in state["pics"]]
    assert [p.filename for p in parts] == [None, None, "q3.pdf"]


async def _refused(call: Any) -> AnswerTooLarge:
    with pytest.raises(NodeFailed) as caught:
        async with asyncio.timeout(HUNG):
            await call
    assert isinstance(caught.value, AnswerTooLarge), caught.value
    return caught.value

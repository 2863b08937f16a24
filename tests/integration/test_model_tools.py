"""A model node's MCP tools, end to end: real litellm against the fake
Ollama, real MCP servers (``tests/support/mcp_server.py`` over stdio)."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from support.fake_ollama import FakeOllama, Reply, text, tool_call

from agent_node.config import McpServerConfig
from agent_node.errors import WorkflowDefinitionError
from agent_node.integrations.llm import LlmClient
from agent_node.integrations.mcp import McpPool
from agent_node.integrations.mcp_toolbox import McpToolBox
from agent_node.nodes.model import ModelExecutor
from agent_node.nodes.tool import IDEMPOTENCY_META
from agent_node.results import RunResult
from agent_node.workflow.compiled import CompiledWorkflow
from agent_node.workflow.yaml_loader import load_yaml_text

pytestmark = pytest.mark.slow

SERVER = Path(__file__).resolve().parents[1] / "support" / "mcp_server.py"
#: What OpenAI-style APIs take as a function's name.
FUNCTION_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def server(name: str, **settings: Any) -> McpServerConfig:
    """The test server, saying ``name`` as its ``$MCP_TEST_VALUE`` (``seen``)."""
    command = [sys.executable, str(SERVER)]
    return McpServerConfig(name=name, command=command, env={"MCP_TEST_VALUE": name}, **settings)


def workflow(node: str) -> CompiledWorkflow:
    header = {"id": "ask", "version": "1", "start": "ask", "state_schema": {"answer": {}}}
    return load_yaml_text(f"workflow: {json.dumps(header)}\nnodes:\n  ask: {node}\n")


@pytest.fixture
async def pool() -> AsyncIterator[McpPool]:
    async with McpPool([server("local"), server("twin", timeout=1, max_bytes=4096)]) as made:
        yield made


async def run(runtime_factory: Any, client: LlmClient, pool: McpPool, node: str) -> RunResult:
    executors = {"model": ModelExecutor(client, McpToolBox(pool))}
    runtime = await runtime_factory("memory://", executors=executors)
    async with asyncio.timeout(30):  # a call that hangs fails the test
        result: RunResult = await runtime.run(workflow(node), {})
    return result


def calls(*names: str) -> Reply:
    """One turn of the model calling ``names`` together, without arguments."""
    return Reply(tool_calls=tuple({"function": {"name": n, "arguments": {}}} for n in names))


async def test_a_tool_two_servers_offer_is_named_with_its_server(
    ollama: FakeOllama, client: LlmClient, pool: McpPool, runtime_factory: Any
) -> None:
    ollama.script(calls("twin__seen", "local__seen"), calls("twin__seen"), text("done"))
    node = "{type: model, prompt: hi, tools: [local/seen, twin/seen]}"

    result = await run(runtime_factory, client, pool, node)

    assert result.status == "completed", result.error
    first, _, third = ollama.chats()
    assert all(chat.body["stream"] for chat in ollama.chats())  # a node streams by default
    offered = [t["function"]["name"] for t in first.body["tools"]]
    assert offered == ["local__seen", "twin__seen"]
    assert all(FUNCTION_NAME.match(name) for name in offered)
    answers = [m for m in third.body["messages"] if m["role"] == "tool"]
    seen = [json.loads(m["content"]) for m in answers]
    assert [s["env"] for s in seen] == ["twin", "local", "twin"]  # each its server's
    # Each call carries an idempotency key of its own and a span of the trace.
    keys = [s["meta"][IDEMPOTENCY_META] for s in seen]
    visit = f"{result.execution_id}/ask/1"
    assert [k.rpartition("-")[0] for k in keys] == [f"{visit}/call-{n}" for n in (1, 2, 3)]
    assert keys[0].rpartition("-")[2] == keys[2].rpartition("-")[2]  # the same call
    assert all(s["meta"]["traceparent"].startswith("00-") for s in seen)


async def test_tools_the_model_could_not_tell_apart_do_not_compile() -> None:
    with pytest.raises(WorkflowDefinitionError, match=r"'a\.b' and 'a_b' would both be shown"):
        workflow("{type: model, prompt: hi, tools: [a.b, a_b]}")
    with pytest.raises(WorkflowDefinitionError, match=r"'web/' names no tool"):
        workflow("{type: model, prompt: hi, tools: [web/]}")


async def test_a_tool_round_is_bounded_by_the_server_s_deadline(
    ollama: FakeOllama, client: LlmClient, pool: McpPool, runtime_factory: Any
) -> None:
    ollama.script(calls("twin__hang"))
    node = "{type: model, prompt: hi, tools: [twin/hang], retry: 1}"

    result = await run(runtime_factory, client, pool, node)

    assert result.status == "failed"
    assert "mcp server 'twin': tool 'hang' gave no answer within 1 s" in (result.error or "")


async def test_an_answer_over_max_bytes_is_told_to_the_model(
    ollama: FakeOllama, client: LlmClient, pool: McpPool, runtime_factory: Any
) -> None:
    ollama.script(tool_call("twin__big", kib=8), text("too much"))
    node = "{type: model, prompt: hi, tools: [twin/big], output: answer}"

    result = await run(runtime_factory, client, pool, node)

    assert result.status == "completed", result.error
    told = ollama.chats()[1].body["messages"][-1]
    assert told["role"] == "tool"
    assert told["content"].startswith("error: mcp server 'twin': the answer of tool 'big' is")

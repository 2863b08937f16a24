"""``openai/<model>`` with ``models.api_base``: a local OpenAI-compatible
server (llama.cpp's server, LM Studio, vLLM) through real litellm, against a
fake one on loopback — answered, streamed live to an A2A subscriber, its
usage counted; nothing listening fails saying what to do."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.fake_openai import FakeOpenAI, serving
from support.workflows import WRITER_YAML

from agent_node import Runtime
from agent_node.a2a.protocol.models import Message, Part, Role, SendMessageRequest
from agent_node.a2a.server.handler import CallContext
from agent_node.a2a.server.tasks import TaskService
from agent_node.config import ModelSettings
from agent_node.integrations.llm import LlmClient
from agent_node.nodes.model import ModelExecutor
from agent_node.workflow.yaml_loader import load_yaml_text

WRITER = WRITER_YAML.replace("type: model,", "type: model, model: openai/local-model,")


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAI]:
    with serving() as fake:
        yield fake


@pytest.mark.parametrize("via_litellm", [False, True], ids=["direct", "litellm"])
async def test_a_local_openai_compatible_server_answers_and_streams_live(
    server: FakeOpenAI, tmp_path: Path, via_litellm: bool
) -> None:
    """Read directly (the default for plain streamed text) or through litellm."""
    server.chats.clear()
    settings = ModelSettings(
        default="openai/local-model", api_base=server.url, timeout=10, via_litellm=via_litellm
    )
    async with LlmClient(settings) as client:
        executors = {"model": ModelExecutor(client)}
        async with Runtime(f"sqlite:///{tmp_path}/s.db", scope="all", executors=executors) as rt:
            service = TaskService(rt, {"write": load_yaml_text(WRITER)}, default_skill="write")
            message = Message(message_id="m", role=Role.USER, parts=[Part(text="hi")])
            stream = await service.send_streaming_message(
                SendMessageRequest(message=message), CallContext()
            )
            events = [event async for event in stream]
    pieces = [
        e.artifact_update
        for e in events
        if e.artifact_update is not None and e.artifact_update.artifact.name == "write"
    ]
    shown = [(p.append, p.last_chunk, p.artifact.parts[0].text) for p in pieces]
    assert pieces[0].append is False and all(p.append for p in pieces[1:]), shown  # opened once
    text = "".join(p.artifact.parts[0].text or "" for p in pieces)
    assert text == server.answer and pieces[-1].last_chunk  # (queued pieces come merged)
    (chat,) = server.chats
    assert chat["model"] == "local-model" and chat["stream"] is True
    assert chat["messages"][-1] == {"role": "user", "content": "hi"}
    final = events[-1].status_update
    assert final is not None and str(final.status.state) == "TASK_STATE_COMPLETED"


async def test_usage_is_counted_and_whole_answers_work_too(
    server: FakeOpenAI, tmp_path: Path
) -> None:
    server.chats.clear()
    settings = ModelSettings(default="openai/local-model", api_base=server.url, timeout=10)
    whole = WRITER.replace("output: reply,", "output: reply, stream: false,")
    async with LlmClient(settings) as client:
        executors = {"model": ModelExecutor(client)}
        async with Runtime("memory://", executors=executors) as rt:
            result = await rt.run(load_yaml_text(whole), {"text": "hi"})
    assert result.state.reply == server.answer  # type: ignore[attr-defined]
    [done] = [e for e in result.events if e.kind == "node_completed" and e.node == "write"]
    usage: dict[str, Any] = (done.data or {})["usage"]
    assert usage["calls"] == 1 and usage["total_tokens"] > 0
    assert not server.chats[0].get("stream")


async def test_nothing_listening_says_what_to_do(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    settings = ModelSettings(default="openai/local-model", api_base=dead, timeout=5)
    async with LlmClient(settings) as client:
        executors = {"model": ModelExecutor(client)}
        workflow = load_yaml_text(
            WRITER.replace("next: done}", "next: done,\n     retry: {max_attempts: 1}}")
        )
        async with Runtime("memory://", executors=executors) as rt:
            result = await rt.run(workflow, {"text": "hi"})
    assert result.status == "failed"
    assert "start the OpenAI-compatible server" in (result.error or "")
    assert dead in (result.error or "")

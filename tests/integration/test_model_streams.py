"""A model's streamed answer that ends before the answer does — a clean close
mid-answer: no Ollama ``done`` line, neither an OpenAI ``finish_reason`` nor
``[DONE]`` — fails its attempt as a dropped connection does, and the retry
gets the whole answer: half an answer is never committed as a whole one.
Read directly and through litellm, from a fake Ollama and a fake
OpenAI-compatible server on loopback."""

from __future__ import annotations

from typing import Any

import pytest
from support.fake_ollama import FakeOllama, Reply, text
from support.fake_openai import FakeOpenAI
from support.workflows import WRITER_YAML

from agent_node import Runtime
from agent_node.config import ModelSettings
from agent_node.integrations.llm import LlmClient
from agent_node.nodes.model import ModelExecutor
from agent_node.results import RunResult
from agent_node.workflow.yaml_loader import load_yaml_text

ANSWER = "Paris is the capital of France, and it has been for a long while."
RETRIED = WRITER_YAML.replace(
    "next: done}", "next: done, retry: {max_attempts: 2, initial_delay: 0.01}}"
)


async def run(settings: ModelSettings, model: str, workflow: str = RETRIED) -> RunResult:
    source = workflow.replace("type: model,", f"type: model, model: {model},")
    async with LlmClient(settings) as client:
        async with Runtime("memory://", executors={"model": ModelExecutor(client)}) as rt:
            return await rt.run(load_yaml_text(source), {"text": "The capital of France?"})


def attempts(result: RunResult) -> list[tuple[str, dict[str, Any]]]:
    return [
        (e.kind, e.data or {})
        for e in result.events
        if e.node == "write" and e.kind in ("node_failed", "node_completed")
    ]


def cut_then_whole(result: RunResult, marker: str) -> None:
    """The first attempt failed, saying its stream ended early; the second answered whole."""
    assert result.status == "completed", result.error
    assert result.state.reply == ANSWER  # type: ignore[attr-defined]
    (failed, first), (completed, _) = attempts(result)
    assert (failed, completed) == ("node_failed", "node_completed")
    assert first["type"] == "ModelUnavailable" and first["retry_at"] is not None, first
    assert "the answer's stream ended before the answer did" in first["error"], first
    assert marker in first["error"], first


@pytest.mark.parametrize("via_litellm", [False, True], ids=["direct", "litellm"])
async def test_an_ollama_answer_without_its_done_line_fails_the_attempt(
    ollama: FakeOllama, via_litellm: bool
) -> None:
    ollama.script(Reply(content=ANSWER, closed_after=2), text(ANSWER))
    settings = ModelSettings(api_base=ollama.url, timeout=10, via_litellm=via_litellm)
    result = await run(settings, "ollama_chat/llama3.2:1b")
    cut_then_whole(result, '"done": true' if not via_litellm else "no finish reason")
    assert len(ollama.chats()) == 2


@pytest.mark.parametrize("via_litellm", [False, True], ids=["direct", "litellm"])
async def test_an_openai_answer_without_finish_reason_or_done_fails_the_attempt(
    openai: FakeOpenAI, via_litellm: bool
) -> None:
    openai.unended, openai.closed_after = 1, 2
    settings = ModelSettings(api_base=openai.url, timeout=10, via_litellm=via_litellm)
    result = await run(settings, "openai/local-model")
    cut_then_whole(result, "no finish_reason, no [DONE]" if not via_litellm else "no finish reason")
    assert len(openai.chats) == 2

"""Why the model stopped is recorded (``finish_reason`` in the node's
output), and an answer it did not finish — ``length``, ``content_filter`` —
fails the node when it says ``on_incomplete: fail`` (at once, not retried,
its call counted). Read directly and through litellm, from a fake Ollama and
a fake OpenAI-compatible server on loopback."""

from __future__ import annotations

from typing import Any

import pytest
from support.fake_ollama import FakeOllama, Reply
from support.fake_openai import FakeOpenAI
from support.workflows import WRITER_YAML

from agent_node import Runtime
from agent_node.config import ModelSettings
from agent_node.integrations.llm import LlmClient
from agent_node.nodes.model import ModelExecutor
from agent_node.results import RunResult
from agent_node.workflow.yaml_loader import load_yaml_text

ANSWER = "Once upon a time there was a node that streamed and streamed"

#: (model, through litellm, streamed): the paths an answer can take.
PATHS = {
    "ollama-direct": ("ollama_chat/llama3.2:1b", False, True),
    "ollama-litellm": ("ollama_chat/llama3.2:1b", True, True),
    "openai-direct": ("openai/local-model", False, True),
    "openai-litellm": ("openai/local-model", True, True),
    "openai-litellm-whole": ("openai/local-model", True, False),
}


async def run(
    path: str, ollama: FakeOllama, openai: FakeOpenAI, reason: str, node: str = ""
) -> RunResult:
    model, via_litellm, stream = PATHS[path]
    openai.finish_reason = reason
    ollama.script(Reply(content=ANSWER, done_reason=reason))
    base = ollama.url if model.startswith("ollama") else openai.url
    given = f"type: model, model: {model}, {'' if stream else 'stream: false, '}{node}"
    source = WRITER_YAML.replace("type: model,", given)
    settings = ModelSettings(api_base=base, timeout=10, via_litellm=via_litellm)
    async with LlmClient(settings) as client:
        async with Runtime("memory://", executors={"model": ModelExecutor(client)}) as rt:
            return await rt.run(load_yaml_text(source), {"text": "A story?"})


def written(result: RunResult) -> list[tuple[str, dict[str, Any]]]:
    return [
        (e.kind, e.data or {})
        for e in result.events
        if e.node == "write" and e.kind in ("node_completed", "node_failed")
    ]


@pytest.mark.parametrize("path", list(PATHS))
async def test_why_the_model_stopped_is_recorded(
    path: str, ollama: FakeOllama, openai: FakeOpenAI
) -> None:
    result = await run(path, ollama, openai, "length")
    assert result.status == "completed", result.error  # on_incomplete: continue, the default
    [(kind, data)] = written(result)
    assert kind == "node_completed" and data["output"]["finish_reason"] == "length", data


@pytest.mark.parametrize("reason", ["length", "content_filter"])
@pytest.mark.parametrize("path", ["ollama-direct", "openai-direct", "openai-litellm-whole"])
async def test_an_unfinished_answer_fails_a_node_that_says_so(
    path: str, reason: str, ollama: FakeOllama, openai: FakeOpenAI
) -> None:
    retried = "on_incomplete: fail, retry: {max_attempts: 3, initial_delay: 0.01},"
    result = await run(path, ollama, openai, reason, retried)
    assert result.status == "failed"
    [(kind, data)] = written(result)
    assert kind == "node_failed" and data["type"] == "IncompleteAnswer", data
    assert data["retry_at"] is None and data["usage"]["calls"] == 1, data
    assert f"finish reason {reason!r}" in data["error"], data
    assert "on_incomplete: fail" in (result.error or "")
    asked = len(ollama.chats()) if path.startswith("ollama") else len(openai.chats)
    assert asked == 1


async def test_a_finished_answer_passes_a_node_that_fails_unfinished_ones(
    ollama: FakeOllama, openai: FakeOpenAI
) -> None:
    result = await run("openai-direct", ollama, openai, "stop", "on_incomplete: fail,")
    assert result.status == "completed", result.error
    assert result.state.reply == ANSWER  # type: ignore[attr-defined]

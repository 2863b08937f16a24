"""Backends shared fairly (``models.backends``): every model node of a process
waits for a slot of its backend, so a local server is never asked more than
it takes at once (real litellm, the fake Ollama counting what it answers at
once)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import ValidationError
from support.fake_ollama import FakeOllama, text

from agent_node import Runtime
from agent_node.config import ModelSettings
from agent_node.integrations.backends import Backends
from agent_node.integrations.llm import LlmClient
from agent_node.nodes.model import ModelExecutor
from agent_node.workflow.yaml_loader import load_yaml_text

MODEL = "ollama_chat/llama3.2:1b"
ASK = load_yaml_text(
    """
workflow:
  id: ask
  version: '1'
  start: ask
  state_schema: {answer: {type: string, default: ""}}
nodes:
  ask: {type: model, prompt: "Hello?", output: answer}
"""
)


async def ten_at_once(ollama: FakeOllama, settings: ModelSettings) -> list[Any]:
    ollama.stream_chunks, ollama.chunk_delay = 4, 0.03
    ollama.script(*(text(f"answer {n}") for n in range(10)))
    async with LlmClient(settings) as client:
        executors = {"model": ModelExecutor(client)}
        async with Runtime("memory://", executors=executors, concurrency=16) as runtime:
            return list(await asyncio.gather(*(runtime.run(ASK, {}) for _ in range(10))))


async def test_ollama_takes_one_call_at_a_time_by_default(
    ollama: FakeOllama, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OLLAMA_NUM_PARALLEL", raising=False)
    settings = ModelSettings(default=MODEL, api_base=ollama.url, timeout=20)
    results = await ten_at_once(ollama, settings)
    assert [r.status for r in results] == ["completed"] * 10
    assert sorted(r.state.answer for r in results) == sorted(f"answer {n}" for n in range(10))
    assert len(ollama.chats()) == 10 and ollama.max_in_flight == 1


async def test_a_configured_limit_is_the_most_in_flight(ollama: FakeOllama) -> None:
    limit = {"url": ollama.url, "concurrency": 3}
    settings = ModelSettings(default=MODEL, api_base=ollama.url, timeout=20, backends=[limit])
    results = await ten_at_once(ollama, settings)
    assert [r.status for r in results] == ["completed"] * 10
    assert 1 < ollama.max_in_flight <= 3


def test_backends_are_servers_or_providers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_NUM_PARALLEL", "4")
    settings = ModelSettings(
        api_base="http://127.0.0.1:8080/v1/",
        backends=[{"provider": "anthropic", "concurrency": 2}],
    )
    backends = Backends(settings, "http://ollama.test:11434/")
    assert backends.backend("ollama_chat/x") == "http://ollama.test:11434"
    assert backends.limit("http://ollama.test:11434") == 4  # $OLLAMA_NUM_PARALLEL
    assert backends.backend("openai/local") == "http://127.0.0.1:8080/v1"
    assert backends.limit("http://127.0.0.1:8080/v1") is None  # not configured: none
    assert backends.backend("anthropic/claude") == "provider:anthropic"
    assert backends.limit("provider:anthropic") == 2
    for wrong in ({"concurrency": 1}, {"url": "x", "concurrency": 1}, {"provider": "a"}):
        with pytest.raises(ValidationError):
            ModelSettings(backends=[wrong])

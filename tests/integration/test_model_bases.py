"""One ``models.api_base`` for an OpenAI-compatible server, Ollama
elsewhere: a chain ``[openai/…, ollama_chat/…]`` asks each where it runs
(Ollama at ``$OLLAMA_API_BASE``, never at the ``…/v1`` server's URL), and a
chain whose every model fails says each model's failure. Against a fake
Ollama on loopback and a port where nothing listens."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from support.fake_ollama import FakeOllama, error, text

from agent_node import Runtime
from agent_node.config import ModelSettings
from agent_node.integrations.llm import LlmClient
from agent_node.integrations.ollama_base import DEFAULT_OLLAMA, ollama_base
from agent_node.nodes.model import ModelExecutor
from agent_node.results import RunResult
from agent_node.workflow.yaml_loader import load_yaml_text

CHAIN = """
workflow:
  id: chain
  version: '1'
  start: ask
  state_schema: {answer: {type: string, default: ""}}
nodes:
  ask:
    type: model
    model: [openai/big, MODEL]
    prompt: Hello?
    output: answer
    retry: {max_attempts: 1}
    next: done
  done: {type: end, output: [answer]}
"""


def nothing_listens() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/v1"


async def run(api_base: str, model: str) -> RunResult:
    settings = ModelSettings(api_base=api_base, timeout=10)
    async with LlmClient(settings) as client:
        async with Runtime("memory://", executors={"model": ModelExecutor(client)}) as rt:
            return await rt.run(load_yaml_text(CHAIN.replace("MODEL", model)), {})


def output_of(result: RunResult) -> dict[str, Any]:
    [done] = [e.data or {} for e in result.events if e.kind == "node_completed" and e.node == "ask"]
    return dict(done["output"])


async def test_a_chain_asks_ollama_where_it_runs_not_at_the_openai_servers_url(
    ollama: FakeOllama, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The OpenAI-compatible server is down: the chain falls back to Ollama,
    asked at $OLLAMA_API_BASE (before: at {api_base}/api/chat, which failed)."""
    monkeypatch.setenv("OLLAMA_API_BASE", ollama.url)
    ollama.script(text("Hello from Ollama."))
    result = await run(nothing_listens(), "ollama_chat/llama3.2:1b")
    assert result.status == "completed", result.error
    assert result.state.answer == "Hello from Ollama."  # type: ignore[attr-defined]
    said = output_of(result)
    assert said["model"] == "ollama_chat/llama3.2:1b"
    assert [f["model"] for f in said["fell_back"]] == ["openai/big"]
    assert len(ollama.chats()) == 1


async def test_a_chain_that_fails_everywhere_says_each_models_failure(
    ollama: FakeOllama, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OLLAMA_API_BASE", ollama.url)
    ollama.script(error(404, "model 'nope' not found"))
    dead = nothing_listens()
    result = await run(dead, "ollama_chat/nope")
    assert result.status == "failed"
    said = result.error or ""
    assert "every model of the chain failed: model 'openai/big': " in said, said
    assert "; model 'ollama_chat/nope': HTTP 404 from" in said, said
    assert f"{ollama.url}/api/chat" in said and "model 'nope' not found" in said, said


def test_where_ollama_is_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OLLAMA_API_BASE", raising=False)
    assert ollama_base(None) == DEFAULT_OLLAMA
    assert ollama_base("http://gpu:11434/") == "http://gpu:11434"  # Ollama's own
    assert ollama_base("http://gpu:8080/v1") == DEFAULT_OLLAMA  # an OpenAI-compatible server's
    monkeypatch.setenv("OLLAMA_API_BASE", "http://ollama:11434")
    assert ollama_base("http://gpu:8080/v1") == "http://ollama:11434"
    assert ollama_base("http://gpu:11434") == "http://ollama:11434"  # the operator's wins

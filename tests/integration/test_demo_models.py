"""Which model the demo picks: Ollama when it answers and has the model, else
the offline scripted model, saying why (against a fake Ollama on loopback)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from support.fake_ollama import MODEL, FakeOllama, serving
from support.ports import free_port

from agent_node.demo.models import SCRIPTED, choose_model


@pytest.fixture(scope="module")
def ollama() -> Iterator[FakeOllama]:
    with serving() as server:
        yield server


async def test_ollama_with_the_model_is_used(ollama: FakeOllama) -> None:
    choice = await choose_model(offline=False, model=MODEL, base=ollama.url)
    assert (choice.model, choice.offline, choice.ollama) == (
        f"ollama_chat/{MODEL}",
        False,
        ollama.url,
    )
    assert choice.note == f"Ollama at {ollama.url}, model {MODEL}"


async def test_ollama_without_the_model_says_how_to_get_it(ollama: FakeOllama) -> None:
    choice = await choose_model(offline=False, model="qwen3:0.6b", base=ollama.url)
    assert (choice.model, choice.offline) == (SCRIPTED, True)
    assert "has no 'qwen3:0.6b' (ollama pull qwen3:0.6b)" in choice.note
    assert "OFFLINE SCRIPTED MODEL" in choice.note


async def test_no_ollama_means_the_scripted_model(monkeypatch: pytest.MonkeyPatch) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("OLLAMA_API_BASE", nowhere)
    choice = await choose_model(offline=False, model=MODEL, base=None)
    assert choice.offline and f"no Ollama answers at {nowhere}" in choice.note


async def test_offline_is_offline_even_with_ollama(ollama: FakeOllama) -> None:
    choice = await choose_model(offline=True, model=MODEL, base=ollama.url)
    assert choice.offline and "(--offline)" in choice.note


async def test_an_openai_compatible_server_is_used_with_its_model() -> None:
    from support.fake_openai import MODEL as SERVED
    from support.fake_openai import serving as serving_openai

    with serving_openai() as server:
        asked = await choose_model(offline=False, model=SERVED, base=None, api_base=server.url)
        only = await choose_model(offline=False, model=MODEL, base=None, api_base=server.url)
    assert (asked.model, asked.offline, asked.api_base) == (f"openai/{SERVED}", False, server.url)
    assert asked.note == f"OpenAI-compatible server at {server.url}, model {SERVED}"
    # Another name, but the server serves one model (a llama.cpp server): that one.
    assert only.model == f"openai/{SERVED}" and not only.offline


async def test_no_openai_compatible_server_means_the_scripted_model_saying_where() -> None:
    nowhere = f"http://127.0.0.1:{free_port()}/v1"
    choice = await choose_model(offline=False, model=MODEL, base=None, api_base=nowhere)
    assert choice.offline and f"no OpenAI-compatible server answers at {nowhere}" in choice.note


def test_the_agents_configurations_name_the_server(tmp_path: Path) -> None:
    from agent_node.demo.network import Network, find_network

    net = Network(
        tmp_path / "demo",
        find_network(None),
        model="openai/local-model",
        port=free_port(),
        api_base="http://127.0.0.1:8080/v1",
    )
    net.prepare(fresh=True)
    for agent in net.agents.values():
        written = yaml.safe_load(agent.config.read_text())
        assert written["models"] == {
            "default": "openai/local-model",
            "api_base": "http://127.0.0.1:8080/v1",
        }

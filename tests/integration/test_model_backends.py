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


async def test_a_node_waiting_for_a_slot_says_so_in_its_log(ollama: FakeOllama) -> None:
    ollama.stream_chunks, ollama.chunk_delay = 4, 0.05
    ollama.script(text("one"), text("two"))
    settings = ModelSettings(default=MODEL, api_base=ollama.url, timeout=20)
    async with LlmClient(settings) as client:
        executors = {"model": ModelExecutor(client)}
        async with Runtime("memory://", executors=executors) as runtime:
            results = await asyncio.gather(*(runtime.run(ASK, {}) for _ in range(2)))
    queued = [r for r in results if any(e.kind == "node_queued" for e in r.events)]
    assert len(queued) == 1  # the other found the slot free: nothing logged
    kinds = [e.kind for e in queued[0].events if e.node == "ask"]
    assert kinds == ["node_started", "node_queued", "node_dequeued", "node_completed"]
    dequeued = next(e for e in queued[0].events if e.kind == "node_dequeued").data or {}
    assert dequeued["waited"] >= 0.1  # the other's whole streamed answer
    (run,) = queued[0].timeline
    assert run.status == "completed"


async def test_a_shared_limit_holds_across_processes_of_one_store(
    ollama: FakeOllama, durable_url: str
) -> None:
    """Two runtimes, each with its own client and slots (as two processes
    have), on one store: a backend shared with a limit of 1 is asked once at
    a time by both together; each waiting node logs where it waits."""
    ollama.stream_chunks, ollama.chunk_delay = 4, 0.03
    ollama.script(*(text(f"answer {n}") for n in range(8)))
    shared = {"url": ollama.url, "concurrency": 1, "shared": True}
    settings = ModelSettings(default=MODEL, api_base=ollama.url, timeout=30, backends=[shared])

    async def process(n: int) -> list[Any]:
        async with LlmClient(settings) as client:
            executors = {"model": ModelExecutor(client)}
            runtime = Runtime(durable_url, node=f"p{n}", executors=executors)
            client.backends.shared = runtime.store.slots
            async with runtime:
                return list(await asyncio.gather(*(runtime.run(ASK, {}) for _ in range(4))))

    first, second = await asyncio.gather(process(1), process(2))
    results = first + second
    assert [r.status for r in results] == ["completed"] * 8
    assert len(ollama.chats()) == 8 and ollama.max_in_flight == 1
    waits = [e.data for r in results for e in r.events if e.kind == "node_queued"]
    assert waits and all(w == {"backend": ollama.url, "limit": 1, "shared": True} for w in waits)


HOLDER = """
import asyncio, sys
from agent_node.store import store_from_url

async def main() -> None:
    store = store_from_url(sys.argv[1])
    async with store.slots.hold("backend", 1):
        print("held", flush=True)
        await asyncio.sleep(60)

asyncio.run(main())
"""


async def test_a_slot_held_by_a_killed_process_is_free_at_once(durable_url: str) -> None:
    """The operating system (a lock file) or the database (an advisory lock
    of a session that ended) lets go of a dead holder's slot: no lease to
    wait out."""
    import subprocess
    import sys

    from agent_node.store import store_from_url

    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, durable_url], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        slots = store_from_url(durable_url).slots
        assert slots is not None
        with pytest.raises(TimeoutError):  # held: not ours
            async with asyncio.timeout(0.5), slots.hold("backend", 1):
                pass
        holder.kill()
        holder.wait()
        async with asyncio.timeout(5), slots.hold("backend", 1):
            pass
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()

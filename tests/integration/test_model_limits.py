"""A model that says "later" and models that cannot answer (issue 16), through
real litellm against the fake Ollama, on a durable SQLite store:

* a 429 with ``Retry-After`` parks the visit for that long on its work row
  (no attempt used) and then asks again; a 429 without one waits the retry
  policy's delay; past ``retry.rate_limited`` waits it is a failed attempt;
* a fallback chain (``model: [a, b]``) asks the next model on a connection
  refused, a 5xx, a model not installed, and a 429 once the visit's waits
  are spent; ``node_completed`` names the model that answered and those
  given up on; a request refused for good is not fallen back from.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from support.fake_ollama import FakeOllama, error, text
from support.ports import free_port

from agent_node import Runtime
from agent_node.cli.render import detail
from agent_node.config import ModelSettings
from agent_node.integrations.llm import LlmClient
from agent_node.nodes.model import ModelExecutor
from agent_node.results import RunResult, build_timeline
from agent_node.workflow.yaml_loader import load_yaml_text

MODEL = "ollama_chat/llama3.2:1b"
OTHER = "ollama_chat/qwen2.5:0.5b"


def asking(model: Any, retry: str = "") -> Any:
    return load_yaml_text(
        f"""
workflow:
  id: ask
  version: '1'
  start: ask
  state_schema: {{answer: {{type: string, default: ""}}}}
nodes:
  ask:
    type: model
    model: {json.dumps(model)}
    prompt: "Hello?"
    output: answer
    {retry}
"""
    )


async def run(
    tmp_path: Path, ollama: FakeOllama, workflow: Any, base: str = "", via_litellm: bool = False
) -> RunResult:
    settings = ModelSettings(
        default=MODEL, api_base=base or ollama.url, timeout=20, via_litellm=via_litellm
    )
    async with LlmClient(settings) as client:
        executors = {"model": ModelExecutor(client)}
        async with Runtime(f"sqlite:///{tmp_path}/store.db", executors=executors) as runtime:
            return await runtime.run(workflow, {})


def completed(result: RunResult) -> dict[str, Any]:
    (event,) = [e for e in result.events if e.kind == "node_completed"]
    data: dict[str, Any] = event.data or {}
    return data


@pytest.mark.parametrize("via_litellm", [False, True], ids=["direct", "litellm"])
async def test_a_429_parks_for_its_retry_after_without_using_an_attempt(
    tmp_path: Path, ollama: FakeOllama, via_litellm: bool
) -> None:
    ollama.script(error(429, "slow down", Retry_After="2"), text("Here I am."))
    started = time.monotonic()
    result = await run(tmp_path, ollama, asking(MODEL), via_litellm=via_litellm)
    assert result.status == "completed" and result.state.answer == "Here I am."
    assert time.monotonic() - started >= 2.0
    throttled = [e.data for e in result.events if e.kind == "node_failed"]
    assert len(throttled) == 1 and throttled[0] is not None
    assert throttled[0]["throttled"] is True and throttled[0]["wait"] == 2.0
    assert "429" in throttled[0]["error"] or "RateLimit" in throttled[0]["error"]
    # The same attempt, run again: the retry policy's attempts are untouched.
    started_attempts = [e.attempt for e in result.events if e.kind == "node_started"]
    assert started_attempts == [1, 1]
    assert [run.status for run in build_timeline(result.events)] == ["throttled", "completed"]
    assert len(ollama.chats()) == 2


async def test_a_429_without_retry_after_waits_the_policy_delay(
    tmp_path: Path, ollama: FakeOllama
) -> None:
    ollama.script(error(429, "slow down"), text("ok"))
    retry = "retry: {initial_delay: 1.5, jitter: 0}"
    result = await run(tmp_path, ollama, asking(MODEL, retry))
    assert result.status == "completed"
    (failed,) = [e.data for e in result.events if e.kind == "node_failed"]
    assert failed is not None and failed["throttled"] is True and failed["wait"] == 1.5


async def test_past_its_rate_limited_waits_a_429_is_a_failed_attempt(
    tmp_path: Path, ollama: FakeOllama
) -> None:
    ollama.script(*(error(429, "slow down", Retry_After="0") for _ in range(3)), text("ok"))
    retry = "retry: {rate_limited: 1, max_attempts: 2, initial_delay: 0}"
    result = await run(tmp_path, ollama, asking(MODEL, retry))
    # One wait, then two attempts throttled: the execution fails.
    assert result.status == "failed", result.error
    failures = [e.data or {} for e in result.events if e.kind == "node_failed"]
    assert [bool(f.get("throttled")) for f in failures] == [True, False, False]
    assert len(ollama.chats()) == 3


@pytest.mark.parametrize("via_litellm", [False, True], ids=["direct", "litellm"])
async def test_a_chain_falls_back_when_the_model_is_not_installed(
    tmp_path: Path, ollama: FakeOllama, via_litellm: bool
) -> None:
    ollama.script(error(404, f"model '{OTHER}' not found, try pulling it first"), text("ok"))
    result = await run(tmp_path, ollama, asking([OTHER, MODEL]), via_litellm=via_litellm)
    assert result.status == "completed" and result.state.answer == "ok"
    output = completed(result)["output"]
    assert output["model"] == MODEL
    assert [f["model"] for f in output["fell_back"]] == [OTHER]
    assert "not found" in output["fell_back"][0]["error"]
    assert completed(result)["usage"]["model"] == MODEL
    assert [c.body["model"] for c in ollama.chats()] == [OTHER.split("/")[1], MODEL.split("/")[1]]
    (step,) = result.timeline  # as inspect shows it
    assert f"{MODEL} (after {OTHER} failed)" in detail(step)


async def test_a_chain_falls_back_on_a_server_error(tmp_path: Path, ollama: FakeOllama) -> None:
    ollama.script(error(503, "overloaded"), text("ok"))
    result = await run(tmp_path, ollama, asking([OTHER, MODEL]))
    assert result.status == "completed"
    assert completed(result)["output"]["model"] == MODEL
    assert len([e for e in result.events if e.kind == "node_failed"]) == 0


async def test_a_chain_falls_back_when_nothing_answers(tmp_path: Path, ollama: FakeOllama) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # Ollama is not running there
    result = await run(tmp_path, ollama, asking([MODEL, "scripted/echo"]), base=dead)
    assert result.status == "completed"
    output = completed(result)["output"]
    assert output["model"] == "scripted/echo"
    assert "no Ollama answers" in output["fell_back"][0]["error"]


async def test_a_chain_waits_out_a_429_then_falls_back_once_its_waits_are_spent(
    tmp_path: Path, ollama: FakeOllama
) -> None:
    ollama.script(
        error(429, "slow down", Retry_After="0.2"),
        error(429, "slow down", Retry_After="0.2"),
        text("from the other one"),
    )
    retry = "retry: {rate_limited: 1}"
    result = await run(tmp_path, ollama, asking([OTHER, MODEL], retry))
    assert result.status == "completed" and result.state.answer == "from the other one"
    failures = [e.data or {} for e in result.events if e.kind == "node_failed"]
    assert [f.get("throttled") for f in failures] == [True]  # waited once, then fell back
    assert [c.body["model"] for c in ollama.chats()] == [
        OTHER.split("/")[1],
        OTHER.split("/")[1],
        MODEL.split("/")[1],
    ]
    assert completed(result)["output"]["model"] == MODEL


async def test_a_refusal_is_not_fallen_back_from(tmp_path: Path, ollama: FakeOllama) -> None:
    ollama.script(error(400, "bad request: context too long"), text("never"))
    result = await run(tmp_path, ollama, asking([MODEL, OTHER]))
    assert result.status == "failed" and "context too long" in (result.error or "")
    assert len(ollama.chats()) == 1

"""An attempt cut short still counts the model calls it made: a node whose
``timeout`` fires while a tool hangs, or mid-answer, and a model call that
stalls past ``models.timeout`` after its answer began — each attempt's
``node_failed`` carries its usage, and the execution's budget counts it
(through real litellm's adapter against the fake Ollama on loopback)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from support.fake_ollama import FakeOllama, Reply, json_reply, text, tool_call

from agent_node import Runtime
from agent_node.config import ModelSettings
from agent_node.integrations.llm import LlmClient, load_litellm
from agent_node.nodes.eval import EvalExecutor
from agent_node.nodes.model import ModelExecutor
from agent_node.results import RunResult
from agent_node.workflow.yaml_loader import load_yaml_text

MODEL = "ollama_chat/llama3.2:1b"
ANSWER = "The weather in Paris is sunny, twenty-four degrees, a light wind from the west."


class Stuck:
    """A ToolBox whose one tool, ``forecast``, never answers."""

    def __init__(self) -> None:
        self.called = 0

    async def schemas(self, names: Sequence[str]) -> list[dict[str, Any]]:
        forecast = {"name": "forecast", "description": "The weather.", "parameters": {}}
        return [{"type": "function", "function": forecast}]

    async def call(self, name: str, args: Mapping[str, Any], *, ordinal: int = 1) -> str:
        self.called += 1
        await asyncio.Event().wait()  # until the node's timeout cancels it
        return "never"


def workflow(node: str, budget: str = "") -> Any:
    return load_yaml_text(
        f"""
workflow:
  id: cut
  version: '1'
  start: ask
  {budget}
  state_schema: {{answer: {{type: string, default: ""}}}}
nodes:
  ask: {{type: model, prompt: "Weather in Paris?", output: answer, next: done, {node}}}
  done: {{type: end, output: [answer]}}
"""
    )


async def run(ollama: FakeOllama, wf: Any, tools: Stuck | None = None, **models: Any) -> RunResult:
    settings = ModelSettings(default=MODEL, api_base=ollama.url, **{"timeout": 10, **models})
    async with LlmClient(settings) as client:
        executors = {"model": ModelExecutor(client, tools)}
        executors["eval"] = EvalExecutor(executors["model"])
        async with Runtime("memory://", executors=executors) as rt:
            return await rt.run(wf, {})


def failures(result: RunResult) -> list[dict[str, Any]]:
    return [e.data or {} for e in result.events if e.kind == "node_failed" and e.node == "ask"]


async def test_attempts_timed_out_in_a_tool_count_their_calls_against_the_budget(
    ollama: FakeOllama,
) -> None:
    """Budget: 2 calls. Each attempt's call asks for the tool, which hangs
    until the node's timeout: two attempts count one call each, and the
    third is not made (before: their usage was lost, and every attempt
    called the model)."""
    await asyncio.to_thread(load_litellm)  # (calls with tools go through it: not in the timeout)
    ollama.script(*[tool_call("forecast", city="Paris")] * 4)
    tools = Stuck()
    retried = "tools: [forecast], timeout: 1, retry: {max_attempts: 4, initial_delay: 0.01}"
    result = await run(ollama, workflow(retried, "budget: {calls: 2}"), tools)
    assert result.status == "failed"
    first, second, third = failures(result)
    for timed_out in (first, second):
        assert timed_out["type"] == "NodeTimeout", timed_out
        assert timed_out["usage"]["calls"] == 1 and timed_out["usage"]["total_tokens"] > 0
    assert third["type"] == "OverBudget" and "2 model calls spent" in third["error"], third
    assert len(ollama.chats()) == 2 and tools.called == 2


@pytest.mark.parametrize("cut_by", ["node timeout", "models.timeout"])
async def test_a_call_cut_mid_answer_counts_its_tokens_estimated(
    ollama: FakeOllama, cut_by: str
) -> None:
    """The model sends two pieces of its answer, then nothing: the call
    counts, its tokens estimated from the prompt and the pieces that came."""
    ollama.stream_chunks = 8
    ollama.script(Reply(content=ANSWER, stall_after=2))
    node = "retry: {max_attempts: 1}"
    if cut_by == "node timeout":
        result = await run(ollama, workflow(f"{node}, timeout: 1"))
    else:
        result = await run(ollama, workflow(node), timeout=1)
    assert result.status == "failed"
    [failed] = failures(result)
    assert failed["type"] == ("NodeTimeout" if cut_by == "node timeout" else "ModelUnavailable")
    usage = failed["usage"]
    assert usage["calls"] == 1 and usage["estimated"] is True, usage
    came = len(ANSWER[: 2 * -(-len(ANSWER) // 8)])  # the first two pieces
    assert usage["completion_tokens"] == (came + 3) // 4, usage
    assert usage["prompt_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


async def test_an_eval_node_timed_out_in_its_second_judge_counts_the_first_judges_call(
    ollama: FakeOllama,
) -> None:
    await asyncio.to_thread(load_litellm)  # (judges ask through it: not in the timeout)
    ollama.script(json_reply({"score": 5, "reason": "Clear."}), text("late", delay=2.5))
    judges = [
        {"type": "llm_judge", "name": name, "rubric": "Clear?", "input": "x"}
        for name in ("one", "two")
    ]
    wf = load_yaml_text(
        f"""
workflow: {{id: judged, version: '1', start: review, state_schema: {{}}}}
nodes:
  review: {{type: eval, scorers: {judges}, timeout: 1, retry: {{max_attempts: 1}}, next: done}}
  done: {{type: end}}
"""
    )
    result = await run(ollama, wf)
    assert result.status == "failed"
    [failed] = [e.data or {} for e in result.events if e.kind == "node_failed"]
    assert failed["type"] == "NodeTimeout" and failed["usage"]["calls"] == 1, failed
    assert len(ollama.chats()) == 2

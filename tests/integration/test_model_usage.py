"""What a model call is recorded to have used, whatever its server says:
an answer with no token counts is estimated (four characters a token,
``estimated``) so a token budget still holds; an ``openai/`` model at
``models.api_base`` is priced by litellm's map when it names the model, else
free, the same on every path. Read directly and through litellm, from a fake
Ollama and a fake OpenAI-compatible server on loopback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support.fake_ollama import FakeOllama, Reply
from support.fake_openai import FakeOpenAI

from agent_node import Runtime
from agent_node.config import ModelSettings
from agent_node.integrations.llm import LlmClient, load_litellm
from agent_node.nodes.model import ModelExecutor
from agent_node.results import RunResult
from agent_node.workflow.yaml_loader import load_yaml_text

ROOT = Path(__file__).resolve().parents[2]
ANSWER = "Paris is the capital of France, and it has been for a long while."
#: Two model nodes, the second asking about the first's answer.
TWO = """
workflow:
  id: two
  version: '1'
  start: first
  BUDGET
  state_schema: {first: {type: string, default: ""}, second: {type: string, default: ""}}
nodes:
  first: {type: model, model: MODEL, prompt: "Say something.", output: first, STREAM next: second}
  second: {type: model, model: MODEL, prompt: "More: {{ state.first }}", output: second, next: done}
  done: {type: end, output: [first, second]}
"""


def two(model: str, budget: str = "", stream: bool = True) -> Any:
    source = TWO.replace("MODEL", model).replace("BUDGET", budget)
    return load_yaml_text(source.replace("STREAM", "" if stream else "stream: false,"))


async def run(settings: ModelSettings, workflow: Any) -> RunResult:
    async with LlmClient(settings) as client:
        async with Runtime("memory://", executors={"model": ModelExecutor(client)}) as rt:
            return await rt.run(workflow, {})


def usage_of(result: RunResult, node: str) -> dict[str, Any]:
    [usage] = [
        e.data["usage"]
        for e in result.events
        if e.node == node and e.kind == "node_completed" and e.data and "usage" in e.data
    ]
    return dict(usage)


#: (model, through litellm, streamed): each path that can get no counts.
UNCOUNTED = {
    "ollama-direct": ("ollama_chat/llama3.2:1b", False, True),
    "openai-direct": ("openai/local-model", False, True),
    "openai-litellm-whole": ("openai/local-model", True, False),
}


@pytest.mark.parametrize("path", list(UNCOUNTED))
async def test_an_answer_without_token_counts_is_estimated_and_budgets_hold(
    path: str, ollama: FakeOllama, openai: FakeOpenAI
) -> None:
    model, via_litellm, stream = UNCOUNTED[path]
    openai.counted = False
    ollama.script(*[Reply(content=ANSWER, counted=False)] * 2)
    base = ollama.url if model.startswith("ollama") else openai.url
    settings = ModelSettings(api_base=base, timeout=10, via_litellm=via_litellm)

    result = await run(settings, two(model, stream=stream))
    assert result.status == "completed", result.error
    sent = [{"role": "user", "content": "Say something."}]
    usage = usage_of(result, "first")
    assert usage["estimated"] is True, usage
    assert usage["prompt_tokens"] == (len(json.dumps(sent)) + 3) // 4
    assert usage["completion_tokens"] == (len(ANSWER) + 3) // 4
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]

    # A token budget the first answer uses up most of: the second call is not made.
    ollama.script(*[Reply(content=ANSWER, counted=False)] * 2)
    result = await run(settings, two(model, "budget: {tokens: 50}", stream))
    assert result.status == "failed"
    assert "model node 'second'" in (result.error or "") and "50 tokens" in (result.error or "")


#: (through litellm, streamed): the paths an answer of an ``openai/`` model can take.
PATHS = {"direct": (False, True), "litellm-streamed": (True, True), "litellm-whole": (True, False)}


@pytest.mark.parametrize("name", ["gpt-4o-mini", "local-model"])
@pytest.mark.parametrize("path", list(PATHS))
async def test_an_openai_model_at_the_api_base_is_priced_by_litellms_map_on_every_path(
    openai: FakeOpenAI, path: str, name: str
) -> None:
    """A model the map names costs what the map says, whatever URL serves
    it (before: 0 read directly, priced through litellm); one it does not
    name costs 0 (before: None through litellm)."""
    via_litellm, stream = PATHS[path]
    settings = ModelSettings(api_base=openai.url, timeout=10, via_litellm=via_litellm)
    result = await run(settings, two(f"openai/{name}", stream=stream))
    assert result.status == "completed", result.error
    usage = usage_of(result, "first")
    if name == "local-model":
        assert usage["cost"] == 0.0, usage
        return
    counts = {
        "prompt_tokens": usage["prompt_tokens"],
        "completion_tokens": usage["completion_tokens"],
    }
    priced = sum(load_litellm().cost_per_token(model=f"openai/{name}", **counts))
    assert usage["cost"] == pytest.approx(priced) and usage["cost"] > 0, usage


def test_a_local_model_is_found_free_without_loading_litellm() -> None:
    """Its name is looked up in litellm's map as a file: the import (~3 s)
    is not paid before a local server's first answer."""
    code = (
        "import asyncio, sys\n"
        "from agent_node.config import ModelSettings\n"
        "from agent_node.integrations.llm import LlmClient\n"
        "client = LlmClient(ModelSettings(api_base='http://127.0.0.1:9/v1'))\n"
        "cost = asyncio.run(client.price('openai/local-model', 1000, 500))\n"
        "print(cost, 'litellm' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert done.stdout.split() == ["0.0", "False"], done.stderr

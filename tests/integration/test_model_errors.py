"""Model failures say what happened, and are retried or not by what it was:
a 200 whose body is not JSON is an answer that cannot be read (not litellm's
made-up HTTP 500); a judge's server error names the judge; a provider with
no API key in the environment is a configuration error, not retried (not a
server error retried three times). Through real litellm, against a fake
OpenAI-compatible server and a fake Ollama on loopback; no key's failure is
litellm's own, before anything is sent."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from support.fake_ollama import FakeOllama, error, text
from support.fake_openai import FakeOpenAI, serving
from support.workflows import WRITER_YAML

from agent_node import Runtime
from agent_node.config import ModelSettings
from agent_node.integrations.llm import LlmClient
from agent_node.nodes.eval import EvalExecutor
from agent_node.nodes.model import ModelExecutor
from agent_node.results import RunResult
from agent_node.workflow.yaml_loader import load_yaml_text

RETRIED = "retry: {max_attempts: 2, initial_delay: 0.01}, next: done}"
JUDGED = """
workflow:
  id: judged
  version: '1'
  start: review
  state_schema: {text: {type: string, default: "a draft"}}
nodes:
  review:
    type: eval
    scorers: [{type: llm_judge, name: clarity, rubric: "Clear?", input: "{{ state.text }}"}]
    retry: {max_attempts: 2, initial_delay: 0.01}
    next: done
  done: {type: end}
"""
#: Providers whose client has no key here: each says so before sending anything.
NO_KEY = {
    "openai/gpt-4o-mini": "OPENAI_API_KEY",
    "anthropic/claude-3-5-sonnet-20240620": "ANTHROPIC_API_KEY",
    "gemini/gemini-1.5-pro": "GEMINI_API_KEY",
}


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAI]:
    with serving() as fake:
        yield fake


async def run(settings: ModelSettings, workflow: Any, **state: Any) -> RunResult:
    async with LlmClient(settings) as client:
        models = ModelExecutor(client)
        executors = {"model": models, "eval": EvalExecutor(models)}
        async with Runtime("memory://", executors=executors) as rt:
            return await rt.run(workflow, state)


def failures(result: RunResult, node: str) -> list[dict[str, Any]]:
    return [e.data or {} for e in result.events if e.kind == "node_failed" and e.node == node]


async def test_a_whole_answer_that_is_not_json_cannot_be_read(server: FakeOpenAI) -> None:
    server.reset()
    server.whole_body = b'{"id": "c1", "choices": [{"mess'
    settings = ModelSettings(api_base=server.url, timeout=10)
    source = WRITER_YAML.replace("type: model,", "type: model, model: openai/m, stream: false,")
    result = await run(settings, load_yaml_text(source.replace("next: done}", RETRIED)), text="hi")
    asked = len(server.chats)
    server.reset()
    assert result.status == "failed"
    for failed in failures(result, "write"):  # retried, as a server's failure is
        assert failed["type"] == "ModelUnavailable", failed
        assert failed["error"].startswith("model 'openai/m': an answer that cannot be read: ")
        assert "HTTP 500" not in failed["error"], failed
    assert asked == 2


async def test_a_judges_server_error_names_the_judge(ollama: FakeOllama) -> None:
    ollama.script(error(503, "overloaded"), error(503, "overloaded"))
    settings = ModelSettings(default="ollama_chat/llama3.2:1b", api_base=ollama.url, timeout=10)
    result = await run(settings, load_yaml_text(JUDGED))
    assert result.status == "failed"
    first, last = failures(result, "review")
    assert first["retry_at"] is not None and last["retry_at"] is None  # retried
    for failed in (first, last):
        assert failed["type"] == "ModelUnavailable", failed
        said = "eval node 'review': the judge 'clarity': model 'ollama_chat/llama3.2:1b': "
        assert failed["error"].startswith(said) and "overloaded" in failed["error"], failed


@pytest.mark.parametrize("model", list(NO_KEY))
async def test_no_api_key_is_a_configuration_error_not_retried(
    model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name in ("GEMINI_API_KEY", "GOOGLE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    source = WRITER_YAML.replace("type: model,", f"type: model, model: {model},")
    result = await run(ModelSettings(timeout=10), load_yaml_text(source), text="hi")
    assert result.status == "failed"
    [failed] = failures(result, "write")  # once: asking again changes nothing
    assert failed["type"] == "ModelNotConfigured" and failed["retry_at"] is None, failed
    assert failed["error"].startswith(
        f"model {model!r}: this process has no credentials for its provider: "
    ), failed
    assert NO_KEY[model] in failed["error"] and "\n" not in failed["error"], failed


async def test_a_chain_falls_back_past_a_model_with_no_key(
    ollama: FakeOllama, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    ollama.script(text("Local, and free."))
    chain = "type: model, model: [openai/gpt-4o-mini, ollama_chat/llama3.2:1b],"
    source = WRITER_YAML.replace("type: model,", chain)
    result = await run(ModelSettings(api_base=ollama.url, timeout=10), load_yaml_text(source))
    assert result.status == "completed", result.error
    assert result.state.reply == "Local, and free."  # type: ignore[attr-defined]

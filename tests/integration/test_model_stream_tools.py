"""Tool calls in a streamed answer (the default) are all made: a call of a
tool that takes no arguments, a call that came without an id, calls that
came in pieces of their own — from Ollama and from an OpenAI-compatible
server, with the direct reading of plain text on (the default) or off.
litellm's stream assembly dropped each call that had no id, and litellm
gives an Ollama call one only when its arguments are not empty."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from support.fake_ollama import FakeOllama, Reply
from support.fake_openai import FakeOpenAI
from support.fake_openai import serving as serving_openai

from agent_node.config import ModelSettings
from agent_node.integrations.llm import LlmClient
from agent_node.nodes.model_client import Completion

pytestmark = pytest.mark.slow

TOOLS = [
    {"type": "function", "function": {"name": n, "parameters": {"type": "object"}}}
    for n in ("now", "add")
]
ASKED = [{"role": "user", "content": "what time is it?"}]
PATHS = pytest.mark.parametrize("via_litellm", [False, True], ids=["direct", "litellm"])


@pytest.fixture(scope="module")
def openai() -> Iterator[FakeOpenAI]:
    with serving_openai() as fake:
        yield fake


async def ask(settings: ModelSettings, *, stream: bool = True) -> Completion:
    async with LlmClient(settings) as client:
        return await client.complete(settings.default, ASKED, tools=TOOLS, stream=stream)


def ollama_calls(*calls: tuple[str, dict[str, Any]], apart: bool = False) -> Reply:
    sent = tuple({"function": {"name": n, "arguments": a}} for n, a in calls)
    return Reply(tool_calls=sent, calls_apart=apart)


@PATHS
@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "whole"])
async def test_an_ollama_call_without_arguments_is_made(
    ollama: FakeOllama, via_litellm: bool, stream: bool
) -> None:
    ollama.script(ollama_calls(("now", {})))
    settings = ModelSettings(
        default="ollama_chat/llama3.2:1b", api_base=ollama.url, via_litellm=via_litellm
    )

    answer = await ask(settings, stream=stream)

    assert [(c.name, c.arguments) for c in answer.tool_calls] == [("now", "{}")]
    assert answer.tool_calls[0].id and answer.finish_reason == "tool_calls"
    assert ollama.chats()[0].body["stream"] is stream


@pytest.mark.parametrize("apart", [False, True], ids=["one-piece", "pieces-apart"])
async def test_ollama_calls_together_or_in_pieces_apart_are_each_made(
    ollama: FakeOllama, apart: bool
) -> None:
    ollama.script(ollama_calls(("now", {}), ("add", {"a": 1}), ("now", {}), apart=apart))
    settings = ModelSettings(default="ollama_chat/llama3.2:1b", api_base=ollama.url)

    answer = await ask(settings)

    made = [(c.name, c.arguments) for c in answer.tool_calls]
    assert made == [("now", "{}"), ("add", '{"a": 1}'), ("now", "{}")]
    assert len({c.id for c in answer.tool_calls}) == 3  # told apart in the next turn


@PATHS
@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "whole"])
@pytest.mark.parametrize(
    "call",
    [
        {"id": "call_1", "function": {"name": "now", "arguments": ""}},
        {"function": {"name": "now", "arguments": ""}},
        {"function": {"name": "now", "arguments": "{}"}},
        {"function": {"name": "add", "arguments": '{"a": 1}'}},
    ],
    ids=["empty", "empty-no-id", "braces-no-id", "arguments-no-id"],
)
async def test_an_openai_compatible_server_s_call_is_made(
    openai: FakeOpenAI, via_litellm: bool, stream: bool, call: dict[str, Any]
) -> None:
    openai.reset()
    openai.answer, openai.tool_calls = "", (call,)
    settings = ModelSettings(
        default="openai/local-model", api_base=openai.url, via_litellm=via_litellm
    )

    answer = await ask(settings, stream=stream)

    name, arguments = call["function"]["name"], call["function"]["arguments"] or "{}"
    assert [(c.name, c.arguments) for c in answer.tool_calls] == [(name, arguments)]
    assert answer.tool_calls[0].id == call.get("id", answer.tool_calls[0].id)
    assert answer.tool_calls[0].id and answer.finish_reason == "tool_calls"
    assert openai.chats[-1].get("stream", False) is stream

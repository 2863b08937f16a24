"""The model node through real litellm, against a fake Ollama on loopback."""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from support.fake_ollama import FakeOllama, error, json_reply, text, tool_call

from agent_node.config import ModelSettings
from agent_node.errors import NodeFailed, WorkflowDefinitionError
from agent_node.integrations.llm import LlmClient
from agent_node.nodes.model import ModelExecutor, ModelRefused
from agent_node.results import RunResult
from agent_node.workflow.compiled import CompiledWorkflow
from agent_node.workflow.yaml_loader import load_yaml_text

ROOT = Path(__file__).resolve().parents[2]
MODEL = "ollama_chat/llama3.2:1b"
STATE = """
  state_schema:
    type: object
    properties:
      city: {type: string, default: Paris}
      answer: {default: null}
      history: {type: array, items: {type: object}, default: []}
"""


class Reading(BaseModel):
    """Named by a node's ``schema: '<this module>:Reading'``."""

    city: str
    celsius: int


class Weather:
    """A ToolBox: one tool, ``forecast``; it remembers what it was asked."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    async def schemas(self, names: Sequence[str]) -> list[dict[str, Any]]:
        unknown = [name for name in names if name != "forecast"]
        if unknown:
            raise NodeFailed(f"no tool {unknown[0]!r}")
        parameters = {"type": "object", "properties": {"city": {"type": "string"}}}
        forecast = {"name": "forecast", "description": "The weather.", "parameters": parameters}
        return [{"type": "function", "function": forecast}]

    async def call(self, name: str, args: Mapping[str, Any], *, ordinal: int = 1) -> str:
        self.calls.append((name, dict(args)))
        return f"sunny in {args.get('city')}, 24 °C"


def workflow(node: str) -> CompiledWorkflow:
    """A one-node workflow (node id ``ask``) over :data:`STATE`."""
    body = textwrap.indent(textwrap.dedent(node).strip(), "    ")
    header = "workflow:\n  id: ask\n  version: '1'\n  start: ask\n"
    return load_yaml_text(f"{header}{STATE}\nnodes:\n  ask:\n{body}\n")


async def run(
    runtime_factory: Any,
    client: LlmClient,
    node: str,
    state: dict[str, Any] | None = None,
    tools: Weather | None = None,
) -> RunResult:
    executors = {"model": ModelExecutor(client, tools)}
    runtime = await runtime_factory("memory://", executors=executors)
    result: RunResult = await runtime.run(workflow(node), state or {})
    return result


def completed(result: RunResult) -> dict[str, Any]:
    [event] = [e for e in result.events if e.kind == "node_completed"]
    assert event.data is not None
    return event.data


async def test_a_prompt_is_answered_into_the_state(
    ollama: FakeOllama, client: LlmClient, runtime_factory: Any
) -> None:
    ollama.script(text("Bring sunglasses."))
    result = await run(
        runtime_factory,
        client,
        """
        type: model
        system: "You are terse."
        prompt: "Weather in {{ state.city }}?"
        output: answer
        temperature: 0.2
        max_tokens: 50
        """,
    )
    assert result.status == "completed", result.error
    assert result.state.answer == "Bring sunglasses."  # type: ignore[attr-defined]
    [chat] = ollama.chats()
    assert chat.body["model"] == "llama3.2:1b"
    assert chat.body["stream"] is True  # by default: its text goes out live (test_live_stream)
    assert chat.body["options"] == {"temperature": 0.2, "num_predict": 50}
    assert [(m["role"], m["content"]) for m in chat.body["messages"]] == [
        ("system", "You are terse."),
        ("user", "Weather in Paris?"),
    ]


async def test_a_model_visit_s_end_hands_its_observers_no_bare_duration(
    ollama: FakeOllama, client: LlmClient, runtime_factory: Any
) -> None:
    # Its usage is counted too (metrics parse its data); a step's end without
    # usage carries its run time alone (tests/unit/test_tallies.py).
    ollama.script(text("Bring sunglasses."))
    runtime = await runtime_factory("memory://", executors={"model": ModelExecutor(client)})
    seen: list[Any] = []
    runtime.store.observe(lambda told: seen.extend(e for _, events in told for e in events))
    node = "type: model\nprompt: 'Weather in {{ state.city }}?'\noutput: answer"
    result = await runtime.run(workflow(node), {})
    assert result.status == "completed", result.error
    runtime.store.tell_observers()
    [event] = [e for e in seen if e.kind == "node_completed"]
    assert event.duration is None
    assert json.loads(event.data)["usage"]["calls"] == 1


async def test_a_streamed_answer_is_assembled(
    ollama: FakeOllama, client: LlmClient, runtime_factory: Any
) -> None:
    ollama.script(text("It will rain all afternoon in Paris."))
    node = "{type: model, prompt: 'Weather?', output: answer, stream: true}"
    result = await run(runtime_factory, client, node)
    assert result.status == "completed", result.error
    assert result.state.answer == "It will rain all afternoon in Paris."  # type: ignore[attr-defined]
    [chat] = ollama.chats()
    assert chat.body["stream"] is True
    usage = completed(result)["usage"]
    assert usage["completion_tokens"] == 9  # the fake's count, from its last chunk
    assert usage["prompt_tokens"] > 0


async def test_stream_false_from_the_python_api_asks_for_the_answer_whole(
    ollama: FakeOllama, client: LlmClient, runtime_factory: Any
) -> None:
    # As `stream: false` in YAML does: a backend that cannot stream is asked whole.
    from agent_node import Workflow

    wf = Workflow("whole", version="1")

    @wf.state
    class State(BaseModel):
        answer: str = ""

    wf.model("ask", prompt="Weather?", output="answer", stream=False)
    wf.end("done")
    ollama.script(text("Dry."))
    runtime = await runtime_factory("memory://", executors={"model": ModelExecutor(client)})
    result = await runtime.run(wf.compile(), {})
    assert result.status == "completed", result.error
    [chat] = ollama.chats()
    assert chat.body["stream"] is False


async def test_an_answer_that_does_not_fit_the_state_fails_at_once(
    ollama: FakeOllama, client: LlmClient, runtime_factory: Any
) -> None:
    # No schema, and the state's key is an integer: asking again cannot mend it.
    ollama.script(text("about five"), text("about five"), text("about five"))
    executors = {"model": ModelExecutor(client)}
    runtime = await runtime_factory("memory://", executors=executors)
    header = "workflow: {id: n, version: '1', start: ask, state_schema: {n: integer}}\n"
    node = "nodes:\n  ask: {type: model, prompt: 'How many?', output: n}\n"
    result = await runtime.run(load_yaml_text(header + node), {"n": 0})
    assert result.status == "failed"
    assert result.error is not None and "n: Input should be a valid integer" in result.error
    assert len(ollama.chats()) == 1
    [failed] = [e for e in result.events if e.kind == "node_failed"]
    assert failed.data is not None and failed.data["type"] == "StateValidationError"


async def test_an_invalid_structured_answer_is_repaired_once(
    ollama: FakeOllama, client: LlmClient, runtime_factory: Any
) -> None:
    ollama.script(text('{"celsius": "warm"}'), json_reply({"celsius": 24, "sky": "clear"}))
    node = """
    type: model
    prompt: "Weather in {{ state.city }} as JSON"
    output: answer
    schema:
      type: object
      properties: {celsius: {type: integer}, sky: {type: string}}
      required: [celsius, sky]
    """
    result = await run(runtime_factory, client, node)
    assert result.status == "completed", result.error
    assert result.state.answer == {"celsius": 24, "sky": "clear"}  # type: ignore[attr-defined]
    first, second = ollama.chats()  # exactly two
    assert first.body["format"]["required"] == ["celsius", "sky"]  # Ollama's structured output
    bad, repair = second.body["messages"][-2:]
    assert (bad["role"], bad["content"]) == ("assistant", '{"celsius": "warm"}')
    assert repair["role"] == "user"
    assert "celsius" in repair["content"] and "valid integer" in repair["content"]
    assert completed(result)["usage"]["calls"] == 2


async def test_a_second_invalid_answer_fails_the_execution(
    ollama: FakeOllama, client: LlmClient, runtime_factory: Any
) -> None:
    ollama.script(text("sunny, I think"), text("still not JSON"))
    node = "{type: model, prompt: 'JSON!', output: answer, schema: {celsius: integer}}"
    result = await run(runtime_factory, client, node)
    assert result.status == "failed"
    assert result.error is not None and "even after a repair" in result.error
    assert len(ollama.chats()) == 2  # no third ask, no retry


async def test_an_invalid_answer_fails_the_node_and_shows_what_the_model_said(
    ollama: FakeOllama, client: LlmClient, runtime_factory: Any
) -> None:
    long = "Sure! here is {not json " + "x" * 2000
    ollama.script(text("Sure! here is {not json"), text(long))
    node = "{type: model, prompt: 'JSON!', output: answer, schema: {celsius: integer}}"
    result = await run(runtime_factory, client, node)
    assert result.status == "failed"
    kinds = [e.kind for e in result.events if e.node == "ask"]
    assert "node_completed" not in kinds and kinds[-1] == "node_failed"
    [failed] = [e for e in result.events if e.kind == "node_failed"]
    assert failed.data is not None and failed.data["usage"]["calls"] == 2
    assert failed.data["retry_at"] is None  # for good: asking again changes nothing
    assert "Sure! here is {not json xxx" in failed.data["error"]
    assert len(failed.data["error"]) < 1000  # the start of the answer, not all of it
    assert result.error is not None and "Sure! here is {not json" in result.error


async def test_a_schema_can_name_a_pydantic_model(
    ollama: FakeOllama, client: LlmClient, runtime_factory: Any
) -> None:
    ollama.script(json_reply({"city": "Paris", "celsius": 24}))
    node = f"{{type: model, prompt: 'JSON!', output: answer, schema: '{__name__}:Reading'}}"
    result = await run(runtime_factory, client, node)
    assert result.status == "completed", result.error
    assert result.state.answer == {"city": "Paris", "celsius": 24}  # type: ignore[attr-defined]
    assert ollama.chats()[0].body["format"]["title"] == "Reading"


async def test_the_model_calls_a_tool_then_answers(
    ollama: FakeOllama, client: LlmClient, runtime_factory: Any
) -> None:
    ollama.script(tool_call("forecast", city="Paris"), text("Sunny, 24 °C."))
    weather = Weather()
    node = """
    type: model
    prompt: "Weather in {{ state.city }}?"
    tools: [forecast]
    output: answer
    messages: history
    """
    result = await run(runtime_factory, client, node, tools=weather)
    assert result.status == "completed", result.error
    assert result.state.answer == "Sunny, 24 °C."  # type: ignore[attr-defined]
    assert weather.calls == [("forecast", {"city": "Paris"})]
    first, second = ollama.chats()
    assert [t["function"]["name"] for t in first.body["tools"]] == ["forecast"]
    asked, answered = second.body["messages"][-2:]
    forecast = {"name": "forecast", "arguments": {"city": "Paris"}}  # Ollama's shape
    assert asked["tool_calls"] == [{"function": forecast}]
    assert answered["role"] == "tool" and answered["content"] == "sunny in Paris, 24 °C"
    history = result.state.history  # type: ignore[attr-defined]
    assert [m["role"] for m in history] == ["user", "assistant", "tool", "assistant"]
    usage = completed(result)["usage"]
    assert (usage["calls"], usage["tool_calls"]) == (2, 1)


async def test_a_tool_the_node_does_not_offer_is_refused_to_the_model(
    ollama: FakeOllama, client: LlmClient, runtime_factory: Any
) -> None:
    ollama.script(tool_call("rm_rf", path="/"), text("I cannot do that."))
    weather = Weather()
    node = "{type: model, prompt: 'Clean up', tools: [forecast], output: answer}"
    result = await run(runtime_factory, client, node, tools=weather)
    assert result.status == "completed", result.error
    assert weather.calls == []
    refusal = ollama.chats()[1].body["messages"][-1]
    assert refusal["role"] == "tool" and "no tool 'rm_rf'" in refusal["content"]


async def test_a_model_that_keeps_calling_tools_fails_after_max_rounds(
    ollama: FakeOllama, client: LlmClient, runtime_factory: Any
) -> None:
    ollama.script(*[tool_call("forecast", city="Paris")] * 3)
    node = "{type: model, prompt: 'Go', tools: [forecast], max_tool_rounds: 2, retry: 1}"
    result = await run(runtime_factory, client, node, tools=Weather())
    assert result.status == "failed"
    assert result.error is not None and "after 2 rounds" in result.error
    assert len(ollama.chats()) == 3


async def test_the_history_is_sent_and_grows(
    ollama: FakeOllama, client: LlmClient, runtime_factory: Any
) -> None:
    ollama.script(text("Paris."))
    before = [
        {"role": "user", "content": "I am in France."},
        {"role": "assistant", "content": "Noted."},
    ]
    node = "{type: model, system: 'Be brief.', prompt: 'Which capital?', messages: history}"
    result = await run(runtime_factory, client, node, {"history": before})
    assert result.status == "completed", result.error
    sent = [(m["role"], m["content"]) for m in ollama.chats()[0].body["messages"]]
    assert sent == [
        ("system", "Be brief."),
        ("user", "I am in France."),
        ("assistant", "Noted."),
        ("user", "Which capital?"),
    ]
    assert result.state.history == [  # type: ignore[attr-defined]
        *before,
        {"role": "user", "content": "Which capital?"},
        {"role": "assistant", "content": "Paris."},
    ]


async def test_usage_is_recorded_in_the_event_log(
    ollama: FakeOllama, client: LlmClient, runtime_factory: Any
) -> None:
    ollama.script(text("Twelve words would be too many for this answer, so here are ten."))
    result = await run(runtime_factory, client, "{type: model, prompt: 'Count', output: answer}")
    data = completed(result)
    usage = data["usage"]
    assert usage["model"] == MODEL
    assert usage["calls"] == 1
    assert usage["completion_tokens"] == 16  # 64 characters, as the fake counts
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["cost"] == 0.0  # a local model
    assert 0 < usage["latency_s"] < 10
    assert data["output"]["model"] == MODEL
    assert data["output"]["text"].startswith("Twelve words")
    [run_] = result.timeline
    assert run_.extra["usage"] == usage


async def test_an_unknown_model_fails_the_execution_at_once(
    ollama: FakeOllama, client: LlmClient, runtime_factory: Any
) -> None:
    ollama.script(error(404, "model 'nope' not found"))
    node = "{type: model, model: 'ollama_chat/nope', prompt: 'Hi', output: answer}"
    result = await run(runtime_factory, client, node)
    assert result.status == "failed"
    assert result.error is not None
    assert "ollama_chat/nope" in result.error and "not found" in result.error
    assert len(ollama.chats()) == 1  # a refusal is not retried


async def test_a_server_error_is_retried(
    ollama: FakeOllama, client: LlmClient, runtime_factory: Any
) -> None:
    ollama.script(error(500, "model is loading"), text("Ready."))
    node = "{type: model, prompt: 'Hi', output: answer, retry: {max_attempts: 2, initial_delay: 0}}"
    result = await run(runtime_factory, client, node)
    assert result.status == "completed", result.error
    assert [(r.status, r.attempt) for r in result.timeline] == [("retrying", 1), ("completed", 2)]
    assert result.timeline[0].detail is not None and "model is loading" in result.timeline[0].detail


async def test_client_errors_name_the_model(client: LlmClient, ollama: FakeOllama) -> None:
    ollama.script(error(401, "unauthorized"))
    with pytest.raises(ModelRefused, match=r"'ollama_chat/llama3.2:1b'.*unauthorized"):
        await client.complete(MODEL, [{"role": "user", "content": "Hi"}])


def test_node_definitions_are_checked() -> None:
    with pytest.raises(WorkflowDefinitionError, match="'prompt' or 'messages'"):
        workflow("{type: model, output: answer}")
    with pytest.raises(WorkflowDefinitionError, match="schema"):
        workflow("{type: model, prompt: x, schema: {celsius: {type: nonsense}}}")
    with pytest.raises(WorkflowDefinitionError, match="nowhere"):
        workflow("{type: model, prompt: x, output: nowhere}")
    with pytest.raises(WorkflowDefinitionError, match="state"):
        workflow("{type: model, prompt: '{{ state.missing }}'}")


# -- nothing leaves loopback --------------------------------------------------


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every address a socket of this process connects to, from now on."""
    seen: list[Any] = []
    guarded = socket.socket.connect

    def recording(self: socket.socket, address: Any) -> None:
        seen.append(address)
        return guarded(self, address)

    monkeypatch.setattr(socket.socket, "connect", recording)
    return seen


async def test_litellm_talks_to_the_fake_only(
    ollama: FakeOllama, client: LlmClient, connections: list[Any]
) -> None:
    ollama.script(text("one"), text("two"), tool_call("forecast", city="Oslo"))
    asked = [{"role": "user", "content": "Hi"}]
    tools = await Weather().schemas(["forecast"])
    await client.complete(MODEL, asked)
    await client.complete(MODEL, asked, stream=True)
    await client.complete(MODEL, asked, tools=tools)
    assert len(ollama.chats()) == 3
    assert {r.path for r in ollama.requests} <= {"/api/chat", "/api/show", "/api/version"}
    port = int(ollama.url.rsplit(":", 1)[1])
    assert connections, "no connection was seen: the recorder is not in the path"
    for address in connections:
        assert ipaddress.ip_address(address[0]).is_loopback, address
        assert address[1] == port, address


async def test_a_base_beyond_loopback_is_refused() -> None:
    before = os.environ.get("OLLAMA_API_BASE")
    # TEST-NET-1 (RFC 5737): never routed; the conftest guard refuses it first.
    settings = ModelSettings(api_base="http://192.0.2.1:11434", timeout=5)
    try:
        async with LlmClient(settings) as far:
            with pytest.raises(NodeFailed) as failed:
                await far.complete(MODEL, [{"role": "user", "content": "Hi"}])
    finally:
        if before is None:
            os.environ.pop("OLLAMA_API_BASE", None)
        else:
            os.environ["OLLAMA_API_BASE"] = before
    causes = []
    cause: BaseException | None = failed.value
    while cause is not None:
        causes.append(cause)
        cause = cause.__cause__ or cause.__context__
    refused = [c for c in causes if isinstance(c, ConnectionRefusedError)]
    assert refused, causes
    assert "tests may not leave loopback" in str(refused[0])


def test_importing_the_package_leaves_litellm_alone(tmp_path: Path) -> None:
    """``import agent_node`` does not import litellm; loading it later opens
    no connection and reads no ``./.env``."""
    (tmp_path / ".env").write_text("AGENT_NODE_DOTENV_PROBE=loaded\n")
    probe = """
        import socket, sys
        opened = []
        real = socket.socket.connect
        socket.socket.connect = lambda self, address: opened.append(address) or real(self, address)
        import agent_node, agent_node.nodes.model, agent_node.integrations.llm
        assert "litellm" not in sys.modules, "import agent_node imported litellm"
        from agent_node.integrations.llm import load_litellm
        load_litellm()
        import os
        assert os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] == "True"
        assert "AGENT_NODE_DOTENV_PROBE" not in os.environ, "litellm read ./.env"
        assert opened == [], opened
        print("ok")
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LITELLM_", "OLLAMA_"))}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(probe)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_the_fake_lists_models_and_its_version(ollama: FakeOllama) -> None:
    import httpx

    with httpx.Client(base_url=ollama.url) as http:
        tags = http.get("/api/tags").json()
        version = http.get("/api/version").json()
        shown = http.post("/api/show", json={"name": "llama3.2:1b"}).json()
    assert [m["name"] for m in tags["models"]] == ["llama3.2:1b"]
    assert version["version"].count(".") == 2
    assert "tools" in shown["capabilities"]
    assert [r.path for r in ollama.requests] == ["/api/tags", "/api/version", "/api/show"]

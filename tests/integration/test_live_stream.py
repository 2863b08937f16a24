"""A model's text streamed live to A2A subscribers (issue 16): real litellm
against the fake Ollama, a task service on SQLite served by real uvicorn,
SSE read as it comes over JSON-RPC and REST. Chunks arrive in order as
``artifactUpdate``s of one artifact per node visit (``append``,
``lastChunk``); the task's own artifact is committed once, as before; a
subscriber joining mid-stream gets the text so far, then what follows; a
node nobody watches is not streamed at all."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.fake_ollama import FakeOllama, Reply, text
from support.served import served
from support.workflows import WRITER_YAML

from agent_node import Runtime
from agent_node.a2a.server.app import Guard, create_app
from agent_node.a2a.server.card import CardDocument
from agent_node.a2a.server.jsonrpc import jsonrpc_endpoint
from agent_node.a2a.server.rest import rest_endpoint
from agent_node.a2a.server.tasks import TaskService
from agent_node.integrations.llm import LlmClient
from agent_node.nodes.model import ModelExecutor
from agent_node.workflow.yaml_loader import load_yaml_text

V10 = {"A2A-Version": "1.0"}
ANSWER = "The quick brown fox jumps over the lazy dog."
WRITER = WRITER_YAML


@pytest.fixture
def via_litellm() -> bool:
    """Plain streamed text is read directly; a test may ask for litellm's path."""
    return False


@pytest.fixture
def skill() -> str:
    """The workflow served (a test may name another)."""
    return WRITER


@pytest.fixture
async def node(
    tmp_path: Path, client: LlmClient, via_litellm: bool, skill: str
) -> AsyncIterator[tuple[TaskService, str]]:
    if via_litellm:
        settings = client.settings.model_copy(update={"via_litellm": True})
        client = LlmClient(settings)
    executors = {"model": ModelExecutor(client)}
    async with Runtime(f"sqlite:///{tmp_path}/store.db", scope="all", executors=executors) as rt:
        service = TaskService(rt, {"write": load_yaml_text(skill)}, default_skill="write")
        caps = {"streaming": True}
        app = create_app(
            CardDocument.of({"name": "writer"}),
            jsonrpc_endpoint(service, capabilities=caps),
            rest=rest_endpoint(service, capabilities=caps),
            guard=Guard(),
        )
        async with served(app, None) as url:
            yield service, url
    if via_litellm:
        await client.aclose()


def message(text: str) -> dict[str, Any]:
    return {"messageId": f"m-{text}", "role": "ROLE_USER", "parts": [{"text": text}]}


async def events(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """Each SSE event's StreamResponse, as it comes."""
    async for line in response.aiter_lines():
        if line.startswith("data:"):
            document = json.loads(line[5:])
            yield document.get("result", document)


def chunks(seen: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        e["artifactUpdate"]
        for e in seen
        if "artifactUpdate" in e and e["artifactUpdate"]["artifact"].get("name") == "write"
    ]


def check_stream(updates: list[dict[str, Any]], task_id: str) -> None:
    """One artifact per visit, opened, appended to in order, closed."""
    assert updates, "no chunk came"
    ids = {u["artifact"]["artifactId"] for u in updates}
    assert ids == {f"{task_id}-write-1"}
    assert [u.get("append", False) for u in updates] == [False] + [True] * (len(updates) - 1)
    assert [u.get("lastChunk", False) for u in updates] == [False] * (len(updates) - 1) + [True]
    assert "".join(u["artifact"]["parts"][0]["text"] for u in updates) == ANSWER


@pytest.mark.parametrize("via_litellm", [False, True], ids=["direct", "litellm"])
@pytest.mark.parametrize("binding", ["jsonrpc", "rest"])
async def test_a_streamed_send_gets_the_model_s_text_as_it_comes(
    ollama: FakeOllama, node: tuple[TaskService, str], binding: str
) -> None:
    ollama.stream_chunks, ollama.chunk_delay = 6, 0.05
    ollama.script(text(ANSWER))
    _, url = node
    if binding == "jsonrpc":
        body: dict[str, Any] = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "SendStreamingMessage",
            "params": {"message": message("foxes")},
        }
        target = f"{url}/a2a"
    else:
        body, target = {"message": message("foxes")}, f"{url}/a2a/message:stream"
    seen: list[dict[str, Any]] = []
    arrived: list[float] = []
    async with httpx.AsyncClient(timeout=20) as http:
        async with http.stream("POST", target, json=body, headers=V10) as response:
            assert response.status_code == 200
            async for event in events(response):
                seen.append(event)
                arrived.append(asyncio.get_running_loop().time())
    task_id = seen[0]["task"]["id"]
    updates = chunks(seen)
    check_stream(updates, task_id)
    assert len(updates) == 6 + 1  # six pieces, then the last (empty) chunk
    # Live: the pieces came over the model's time, not all at the end.
    at = [arrived[seen.index(e)] for e in seen if "artifactUpdate" in e][:6]
    assert at[-1] - at[0] >= 0.15
    final = [e["artifactUpdate"] for e in seen if "artifactUpdate" in e][-1]
    assert final["artifact"]["name"] != "write"  # the task's own artifact, once
    assert final["artifact"]["parts"][0]["text"] == ANSWER
    assert seen[-1]["statusUpdate"]["status"]["state"] == "TASK_STATE_COMPLETED"


async def test_an_attempt_cut_mid_stream_starts_its_text_over(
    ollama: FakeOllama, node: tuple[TaskService, str]
) -> None:
    """The model's server dies mid-answer: the attempt fails, the retry asks
    again, and the artifact restarts — a chunk that does not append — so the
    subscriber's text is the second answer alone."""
    ollama.stream_chunks, ollama.chunk_delay = 6, 0.03
    ollama.script(Reply(content="A first answer that never ends", cut_after=3), text(ANSWER))
    _, url = node
    body = {"jsonrpc": "2.0", "id": 1, "method": "SendStreamingMessage"}
    body["params"] = {"message": message("again")}
    async with httpx.AsyncClient(timeout=30) as http:
        async with http.stream("POST", f"{url}/a2a", json=body, headers=V10) as response:
            seen = [event async for event in events(response)]
    updates = chunks(seen)
    flags = [(u.get("append", False), u.get("lastChunk", False)) for u in updates]
    opened = [i for i, (append, _) in enumerate(flags) if not append]
    assert len(opened) == 2, flags  # opened by the first attempt, then again by the retry
    assert {u["artifact"]["artifactId"] for u in updates} == {f"{seen[0]['task']['id']}-write-1"}
    first = "".join(u["artifact"]["parts"][0]["text"] for u in updates[: opened[1]])
    again = "".join(u["artifact"]["parts"][0]["text"] for u in updates[opened[1] :])
    assert first and "A first answer".startswith(first[:14]) and again == ANSWER
    assert flags[-1][1] is True
    assert seen[-1]["statusUpdate"]["status"]["state"] == "TASK_STATE_COMPLETED"
    assert len(ollama.chats()) == 2


async def test_a_late_subscriber_gets_the_text_so_far_then_what_follows(
    ollama: FakeOllama, node: tuple[TaskService, str]
) -> None:
    ollama.stream_chunks, ollama.chunk_delay = 8, 0.15
    ollama.script(text(ANSWER))
    _, url = node
    async with httpx.AsyncClient(timeout=20) as http:
        sent = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage"}
        params = {"message": message("late"), "configuration": {"returnImmediately": True}}
        task = (await http.post(f"{url}/a2a", json={**sent, "params": params}, headers=V10)).json()
        task_id = task["result"]["task"]["id"]
        await asyncio.sleep(0.5)  # a few pieces are out
        seen: list[dict[str, Any]] = []
        subscribe = {"jsonrpc": "2.0", "id": 2, "method": "SubscribeToTask"}
        subscribe["params"] = {"id": task_id}  # type: ignore[assignment]
        async with http.stream("POST", f"{url}/a2a", json=subscribe, headers=V10) as response:
            async for event in events(response):
                seen.append(event)
    assert seen[0]["task"]["id"] == task_id
    updates = chunks(seen)
    assert updates[0].get("append", False) is False  # the text so far opens it
    assert 1 < len(updates[0]["artifact"]["parts"][0]["text"]) < len(ANSWER)
    check_stream(updates, task_id)
    assert seen[-1]["statusUpdate"]["status"]["state"] == "TASK_STATE_COMPLETED"


async def test_unwatched_the_text_goes_nowhere_and_the_task_is_as_before(
    ollama: FakeOllama, node: tuple[TaskService, str]
) -> None:
    ollama.script(text(ANSWER))
    service, url = node
    async with httpx.AsyncClient(timeout=20) as http:
        sent = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage"}
        answer = await http.post(
            f"{url}/a2a", json={**sent, "params": {"message": message("quiet")}}, headers=V10
        )
    task = answer.json()["result"]["task"]
    assert task["status"]["state"] == "TASK_STATE_COMPLETED"
    assert [a["parts"][0]["text"] for a in task["artifacts"]] == [ANSWER]  # live ones are not kept
    (chat,) = ollama.chats()
    assert chat.body.get("stream") is True  # streamed from the model all the same
    assert service.runtime.store.live.writing(task["id"]) == 0  # nothing held after the end


async def test_stream_false_asks_for_the_whole_answer(
    ollama: FakeOllama, tmp_path: Path, client: LlmClient
) -> None:
    ollama.script(text(ANSWER))
    whole = WRITER.replace(
        "output: reply, next: done}", "output: reply, stream: false, next: done}"
    )
    executors = {"model": ModelExecutor(client)}
    async with Runtime(f"sqlite:///{tmp_path}/s.db", scope="all", executors=executors) as rt:
        result = await rt.run(load_yaml_text(whole), {"text": "x"})
    assert result.state.reply == ANSWER  # type: ignore[attr-defined]
    (chat,) = ollama.chats()
    assert chat.body.get("stream") is False


async def test_over_grpc_the_chunks_are_stream_responses_too(
    ollama: FakeOllama, node: tuple[TaskService, str]
) -> None:
    grpc = pytest.importorskip("grpc")
    from support.grpc_calls import Caller

    from agent_node.a2a.server.grpc.server import bind, serve_service, stop
    from agent_node.a2a.server.grpc.service import A2AService
    from agent_node.a2a.server.limits import Limits

    ollama.stream_chunks = 5
    ollama.script(text(ANSWER))
    service, _ = node
    server, port = bind("127.0.0.1", 0, Limits())
    await serve_service(server, A2AService(service, capabilities={"streaming": True}))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            seen = await Caller(channel).stream("SendStreamingMessage", {"message": message("rpc")})
    finally:
        await stop(server, 0)
    task_id = seen[0]["task"]["id"]
    updates = chunks(seen)
    check_stream(updates, task_id)
    assert seen[-1]["statusUpdate"]["status"]["state"] == "TASK_STATE_COMPLETED"


async def test_a_0_3_client_gets_the_chunks_in_0_3_form(
    ollama: FakeOllama, node: tuple[TaskService, str]
) -> None:
    ollama.stream_chunks = 3
    ollama.script(text(ANSWER))
    _, url = node
    message03 = {"kind": "message", "messageId": "m-03", "role": "user"}
    message03["parts"] = [{"kind": "text", "text": "old"}]  # type: ignore[assignment]
    body = {"jsonrpc": "2.0", "id": 1, "method": "message/stream", "params": {"message": message03}}
    seen: list[dict[str, Any]] = []
    async with httpx.AsyncClient(timeout=20) as http:
        async with http.stream("POST", f"{url}/a2a", json=body) as response:
            async for event in events(response):
                seen.append(event)
    task_id = seen[0]["id"]
    updates = [
        e
        for e in seen
        if e.get("kind") == "artifact-update" and e["artifact"].get("name") == "write"
    ]
    assert updates[0]["artifact"]["artifactId"] == f"{task_id}-write-1"
    assert [u.get("append", False) for u in updates] == [False] + [True] * (len(updates) - 1)
    assert updates[-1]["lastChunk"] is True
    assert "".join(u["artifact"]["parts"][0]["text"] for u in updates) == ANSWER
    assert all(p["kind"] == "text" for u in updates for p in u["artifact"]["parts"])
    assert seen[-1]["kind"] == "status-update" and seen[-1]["final"] is True


#: The writer's draft, then an eval node (``review``) whose judge grades it.
JUDGED = WRITER.replace("next: done}", "next: review}").replace(
    "  done:",
    "  review:\n"
    "    type: eval\n"
    "    scorers: [{type: llm_judge, name: q, rubric: 'Is it good', input: '{{ state.reply }}'}]\n"
    "    next: done\n"
    "  done:",
)


@pytest.mark.parametrize("skill", [JUDGED])
async def test_a_judge_s_grade_is_not_streamed_to_the_caller(
    ollama: FakeOllama, node: tuple[TaskService, str]
) -> None:
    ollama.stream_chunks = 4
    ollama.script(text(ANSWER), text('{"score": 5, "reason": "Internal: fine."}'))
    _, url = node
    body = {"jsonrpc": "2.0", "id": 1, "method": "SendStreamingMessage"}
    body["params"] = {"message": message("judged")}
    async with httpx.AsyncClient(timeout=20) as http:
        async with http.stream("POST", f"{url}/a2a", json=body, headers=V10) as response:
            seen = [event async for event in events(response)]
    assert seen[-1]["statusUpdate"]["status"]["state"] == "TASK_STATE_COMPLETED"
    check_stream(chunks(seen), seen[0]["task"]["id"])  # the draft goes out live, as before
    names = [e["artifactUpdate"]["artifact"].get("name") for e in seen if "artifactUpdate" in e]
    assert "review" not in names
    assert "Internal" not in json.dumps(seen)
    assert len(ollama.chats()) == 2

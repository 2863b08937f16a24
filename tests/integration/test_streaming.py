"""Streaming over JSON-RPC (SSE) against real executions on SQLite."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.routing import Route
from support.certs import make_certs
from support.served import served
from support.tls import caller_context

from agent_node import Runtime, Workflow, load_workflow
from agent_node.a2a.protocol.errors import TaskNotFound
from agent_node.a2a.protocol.models import (
    SendMessageRequest,
    StreamResponse,
    SubscribeToTaskRequest,
    Task,
    TaskState,
    TaskStatus,
)
from agent_node.a2a.server.handler import CallContext
from agent_node.a2a.server.jsonrpc import jsonrpc_endpoint
from agent_node.a2a.server.tasks import TaskService
from agent_node.security.tls import server_context
from agent_node.workflow.compiled import CompiledWorkflow

V10 = {"A2A-Version": "1.0"}
STREAMING = {"streaming": True}
CTX = CallContext()


ROOT = Path(__file__).resolve().parents[2]


class Booking(BaseModel):
    text: str = ""
    dates: str | None = None
    reply: str = ""


def greeter() -> Workflow:
    wf = Workflow("greeter", version="1")
    wf.state(Booking)

    @wf.step
    async def greet(s: Booking) -> dict[str, Any]:
        return {"reply": f"Hello! You said: {s.text}"}

    wf.end("done", output=["reply"])
    return wf


def booker() -> CompiledWorkflow:
    """The shipped example's book skill: asks when (INPUT_REQUIRED), then books."""
    return load_workflow(str(ROOT / "examples/greeter/book.py") + ":wf")


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[TaskService]:
    async with Runtime(f"sqlite:///{tmp_path}/store.db", scope="all") as runtime:
        skills = {"greet": greeter().compile(), "book": booker()}
        yield TaskService(runtime, skills, default_skill="greet")


def make_client(service: Any, capabilities: dict[str, Any] = STREAMING) -> httpx.AsyncClient:
    endpoint = jsonrpc_endpoint(service, capabilities=capabilities)
    app = Starlette(routes=[Route("/a2a", endpoint, methods=["POST"])])
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://node")


@pytest.fixture
async def client(service: TaskService) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(service) as c:
        yield c


def rpc(method: str, params: dict[str, Any], id: Any = 7) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id, "method": method, "params": params}


def message(text: str, **fields: Any) -> dict[str, Any]:
    return {"messageId": "m-1", "role": "ROLE_USER", "parts": [{"text": text}], **fields}


async def stream(
    client: httpx.AsyncClient, body: dict[str, Any], headers: dict[str, str] = V10
) -> tuple[str, list[dict[str, Any]]]:
    """The response's media type and its documents: each SSE event's, or the one JSON body."""
    async with client.stream("POST", "/a2a", json=body, headers=headers) as response:
        assert response.status_code == 200
        media_type = response.headers["content-type"].split(";")[0]
        if media_type == "application/json":
            return media_type, [json.loads(await response.aread())]
        documents = []
        async for line in response.aiter_lines():
            if line:
                assert line.startswith("data: "), line
                documents.append(json.loads(line.removeprefix("data: ")))
        return media_type, documents


def results(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    assert all(d["jsonrpc"] == "2.0" and d["id"] == 7 for d in documents)
    return [d["result"] for d in documents]


def states(events: list[dict[str, Any]]) -> list[str]:
    return [e["statusUpdate"]["status"]["state"] for e in events if "statusUpdate" in e]


async def test_a_streamed_task_from_submitted_to_completed(client: httpx.AsyncClient) -> None:
    media_type, documents = await stream(
        client, rpc("SendStreamingMessage", {"message": message("hi")})
    )
    assert media_type == "text/event-stream"
    events = results(documents)
    task = events[0]["task"]
    assert task["status"]["state"] == "TASK_STATE_SUBMITTED" and "artifacts" not in task
    assert task["history"][0]["parts"] == [{"text": "hi"}]
    assert all(len(e) == 1 for e in events)
    assert states(events)[-1] == "TASK_STATE_COMPLETED" and "statusUpdate" in events[-1]
    (added,) = [e["artifactUpdate"] for e in events if "artifactUpdate" in e]
    assert added["taskId"] == task["id"] and added["contextId"] == task["contextId"]
    assert added["artifact"]["parts"][0] == {"text": "Hello! You said: hi"}


async def test_input_required_ends_the_send_and_subscribers_follow_to_the_end(
    client: httpx.AsyncClient, service: TaskService
) -> None:
    request = rpc(
        "SendStreamingMessage", {"message": message("Lisbon"), "metadata": {"skill": "book"}}
    )
    events = results((await stream(client, request))[1])
    assert states(events)[-1] == "TASK_STATE_INPUT_REQUIRED"
    prompt = events[-1]["statusUpdate"]["status"]["message"]["parts"]
    assert prompt == [{"text": "When do you want to go to Lisbon?"}]
    task_id = events[0]["task"]["id"]

    subscribe = rpc("SubscribeToTask", {"id": task_id})
    first, second = (asyncio.create_task(stream(client, subscribe)) for _ in range(2))
    for _ in range(200):
        if service.watches.followers(task_id) == 2:
            break
        await asyncio.sleep(0.01)
    assert service.watches.followers(task_id) == 2
    answer = rpc("SendMessage", {"message": message("early May", taskId=task_id)})
    reply = (await client.post("/a2a", json=answer, headers=V10)).json()
    assert reply["result"]["task"]["status"]["state"] == "TASK_STATE_COMPLETED"

    seen = [results((await asyncio.wait_for(s, 10))[1]) for s in (first, second)]
    assert seen[0] == seen[1]
    followed = seen[0]
    assert followed[0]["task"]["status"]["state"] == "TASK_STATE_INPUT_REQUIRED"
    assert states(followed)[-1] == "TASK_STATE_COMPLETED"
    (added,) = [e["artifactUpdate"]["artifact"] for e in followed if "artifactUpdate" in e]
    assert added["parts"][0] == {"text": "Booked Lisbon for early May."}
    assert len(service.watches) == 0


async def test_subscribe_errors_are_plain_json(client: httpx.AsyncClient) -> None:
    media_type, (unknown,) = await stream(client, rpc("SubscribeToTask", {"id": "nope"}))
    assert media_type == "application/json" and unknown["error"]["code"] == -32001
    done = rpc("SendMessage", {"message": message("hi")})
    task_id = (await client.post("/a2a", json=done, headers=V10)).json()["result"]["task"]["id"]
    media_type, (terminal,) = await stream(client, rpc("SubscribeToTask", {"id": task_id}))
    assert media_type == "application/json" and terminal["error"]["code"] == -32004


async def test_a_0_3_stream_has_kinds_and_a_final_status(client: httpx.AsyncClient) -> None:
    params = {"message": {"kind": "message", "messageId": "m-1", "role": "user",
                          "parts": [{"kind": "text", "text": "hi"}]}}  # fmt: skip
    media_type, documents = await stream(client, rpc("message/stream", params), headers={})
    events = results(documents)
    assert media_type == "text/event-stream" and events[0]["kind"] == "task"
    kinds = {e["kind"] for e in events[1:]}
    assert kinds == {"status-update", "artifact-update"}
    updates = [e for e in events if e["kind"] == "status-update"]
    assert [u["final"] for u in updates] == [False] * (len(updates) - 1) + [True]
    assert updates[-1]["status"]["state"] == "completed" and events[-1] is updates[-1]


async def test_streaming_not_declared_is_unsupported(service: TaskService) -> None:
    async with make_client(service, {"streaming": False}) as client:
        for body in (
            rpc("SendStreamingMessage", {"message": message("hi")}),
            rpc("SubscribeToTask", {"id": "t"}),
        ):
            media_type, (document,) = await stream(client, body)
            assert media_type == "application/json" and document["error"]["code"] == -32004


async def test_closing_a_stream_stops_watching(service: TaskService) -> None:
    request = SendMessageRequest.model_validate(
        {"message": message("Oslo"), "metadata": {"skill": "book"}}
    )
    sent = [e async for e in await service.send_streaming_message(request, CallContext())]
    last = sent[-1].status_update
    assert last is not None and last.status.state == TaskState.INPUT_REQUIRED
    events = await service.subscribe_to_task(SubscribeToTaskRequest(id=last.task_id), CTX)
    first = await anext(aiter(events))
    assert first.task is not None and service.watches.followers(last.task_id) == 1
    await events.aclose()  # type: ignore[attr-defined]
    await asyncio.sleep(0)
    assert len(service.watches) == 0
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("watch ")]


class Failing:
    """A handler whose stream fails after its first event."""

    async def send_streaming_message(
        self, request: SendMessageRequest, ctx: CallContext
    ) -> AsyncIterator[StreamResponse]:
        async def events() -> AsyncIterator[StreamResponse]:
            status = TaskStatus(state=TaskState.WORKING)
            yield StreamResponse(task=Task(id="t-1", context_id="c-1", status=status))
            raise TaskNotFound("t-1 is gone")

        return events()


async def test_an_error_after_the_first_event_is_the_last_event() -> None:
    async with make_client(Failing()) as client:
        body = rpc("SendStreamingMessage", {"message": message("hi")})
        media_type, documents = await stream(client, body)
    assert media_type == "text/event-stream"
    assert [list(d) for d in documents] == [["jsonrpc", "id", "result"], ["jsonrpc", "id", "error"]]
    assert documents[1]["error"]["code"] == -32001


async def test_a_stream_that_ends_leaves_no_task_listening(client: httpx.AsyncClient) -> None:
    body = rpc("SendStreamingMessage", {"message": message("hi"), "metadata": {"skill": "greet"}})
    media_type, documents = await stream(client, body)
    assert media_type == "text/event-stream" and documents[-1]["result"]["statusUpdate"]
    await asyncio.sleep(0)
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "sse disconnect"]


async def test_a_client_that_disconnects_stops_the_watch(service: TaskService) -> None:
    endpoint = jsonrpc_endpoint(service, capabilities=STREAMING)
    app = Starlette(routes=[Route("/a2a", endpoint, methods=["POST"])])
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            body = rpc("SendMessage", {"message": message("Oslo"), "metadata": {"skill": "book"}})
            task_id = (await client.post("/a2a", json=body, headers=V10)).json()["result"]["task"][
                "id"
            ]
            subscribe = rpc("SubscribeToTask", {"id": task_id})
            async with client.stream("POST", "/a2a", json=subscribe, headers=V10) as response:
                first = await anext(response.aiter_lines())
                assert json.loads(first.removeprefix("data: "))["result"]["task"]["id"] == task_id
                assert service.watches.followers(task_id) == 1
        for _ in range(200):
            if len(service.watches) == 0 and not server.server_state.tasks:
                break
            await asyncio.sleep(0.01)
        assert len(service.watches) == 0
        # The request's task and the one that listened for the disconnect end too.
        assert not server.server_state.tasks
        assert not [t for t in asyncio.all_tasks() if t.get_name() == "sse disconnect"]
    finally:
        server.should_exit = True
        await serving


async def test_over_the_nodes_server_an_open_stream_runs_no_task_to_notice_its_client_leave(
    service: TaskService, tmp_path: Path
) -> None:
    certs = make_certs(tmp_path, "server", "client")
    tls = server_context(certs / "server.pem", certs / "server-key.pem", [certs / "ca.pem"])
    endpoint = jsonrpc_endpoint(service, capabilities=STREAMING)
    app = Starlette(routes=[Route("/a2a", endpoint, methods=["POST"])])
    async with (
        served(app, tls) as url,
        httpx.AsyncClient(base_url=url, verify=caller_context(certs, "client")) as client,
    ):
        body = rpc("SendMessage", {"message": message("Oslo"), "metadata": {"skill": "book"}})
        task_id = (await client.post("/a2a", json=body, headers=V10)).json()["result"]["task"]["id"]
        subscribe = rpc("SubscribeToTask", {"id": task_id})
        async with client.stream("POST", "/a2a", json=subscribe, headers=V10) as response:
            first = await anext(response.aiter_lines())
            assert json.loads(first.removeprefix("data: "))["result"]["task"]["id"] == task_id
            assert service.watches.followers(task_id) == 1
            # The server tells the stream when its client leaves: nothing waits for it.
            assert not [t for t in asyncio.all_tasks() if t.get_name() == "sse disconnect"]
        for _ in range(200):
            if len(service.watches) == 0:
                break
            await asyncio.sleep(0.01)
        assert len(service.watches) == 0


def watching() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("watch ")]


async def test_an_idle_watch_runs_no_task_and_still_tells_the_next_change(
    client: httpx.AsyncClient, service: TaskService
) -> None:
    request = rpc(
        "SendStreamingMessage", {"message": message("Oslo"), "metadata": {"skill": "book"}}
    )
    task_id = results((await stream(client, request))[1])[0]["task"]["id"]
    following = asyncio.create_task(stream(client, rpc("SubscribeToTask", {"id": task_id})))
    for _ in range(200):
        if service.watches.followers(task_id) == 1 and not watching():
            break
        await asyncio.sleep(0.01)
    # Followed, and idle: a subscription and a timer, no task waiting.
    assert service.watches.followers(task_id) == 1 and not watching()
    answer = rpc("SendMessage", {"message": message("in June", taskId=task_id)})
    await client.post("/a2a", json=answer, headers=V10)
    followed = results((await asyncio.wait_for(following, 10))[1])
    assert states(followed)[-1] == "TASK_STATE_COMPLETED"
    assert len(service.watches) == 0 and not watching()

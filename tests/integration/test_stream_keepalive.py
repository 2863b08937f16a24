"""A quiet task's event stream says it is alive: a node served by its own
transport over mutual TLS (HTTP/1.1 and HTTP/2), the task service on SQLite,
and a stream whose task stays silent past a shortened keep-alive interval
gets ``: ping`` comment lines, then ends as it would have.

The interval is 15 s in use (:data:`agent_node.a2a.server.streaming.KEEPALIVE_SECONDS`);
here it is lowered to :data:`INTERVAL`."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from a2a.client import ClientConfig, ClientFactory
from a2a.client.errors import A2AClientTimeoutError
from a2a.types import AgentCard, Message, Part, Role, SendMessageRequest, TaskState
from google.protobuf import json_format
from google.protobuf.struct_pb2 import Struct
from pydantic import BaseModel
from support.certs import make_certs
from support.served import served
from support.tls import caller_context

from agent_node import Runtime, Workflow, load_workflow
from agent_node.a2a.server import streaming
from agent_node.a2a.server.app import Guard, create_app
from agent_node.a2a.server.card import CardDocument
from agent_node.a2a.server.jsonrpc import jsonrpc_endpoint
from agent_node.a2a.server.rest import rest_endpoint
from agent_node.a2a.server.tasks import TaskService
from agent_node.security.tls import server_context

ROOT = Path(__file__).resolve().parents[2]
INTERVAL = 0.2
V10 = {"A2A-Version": "1.0"}
CAPS = {"streaming": True}


class Quiet(BaseModel):
    text: str = ""
    reply: str = ""


def quiet(release: asyncio.Event) -> Workflow:
    """One step that says nothing until ``release`` is set, then answers."""
    wf = Workflow("quiet", version="1")
    wf.state(Quiet)

    @wf.step
    async def think(s: Quiet) -> dict[str, Any]:
        await release.wait()
        return {"reply": f"thought about {s.text}"}

    wf.end("done", output=["reply"])
    return wf


@dataclass
class Node:
    url: str
    service: TaskService
    #: Set: the quiet skill's step answers.
    release: asyncio.Event
    #: Alice's TLS context.
    verify: ssl.SSLContext
    http2: bool
    #: A client of the node's, as alice.
    client: httpx.AsyncClient

    @property
    def version(self) -> str:
        return "HTTP/2" if self.http2 else "HTTP/1.1"


@pytest.fixture(params=[False, True], ids=["http1", "http2"])
async def node(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Node]:
    monkeypatch.setattr(streaming, "KEEPALIVE_SECONDS", INTERVAL)
    release = asyncio.Event()
    certs = make_certs(tmp_path / "certs", "node", "alice")
    tls = server_context(certs / "node.pem", certs / "node-key.pem", [certs / "ca.pem"])
    verify = caller_context(certs, "alice")
    http2 = bool(request.param)
    async with Runtime(f"sqlite:///{tmp_path}/store.db", scope="all") as runtime:
        book = load_workflow(str(ROOT / "examples/greeter/book.py") + ":wf")
        service = TaskService(runtime, {"quiet": quiet(release).compile(), "book": book})
        app = create_app(
            CardDocument.of({"name": "t"}),
            jsonrpc_endpoint(service, capabilities=CAPS),
            rest=rest_endpoint(service, capabilities=CAPS),
            guard=Guard(),
        )
        async with (
            served(app, tls) as url,
            httpx.AsyncClient(base_url=url, verify=verify, http2=http2, timeout=20) as client,
        ):
            yield Node(url, service, release, verify, http2, client)
            release.set()  # a test that failed early leaves no step waiting


def message_10(text: str, skill: str, **fields: Any) -> dict[str, Any]:
    parts = [{"text": text}]
    metadata = {"skill": skill}
    return {"messageId": "m-1", "role": "ROLE_USER", "parts": parts, "metadata": metadata, **fields}


def message_03(text: str, skill: str, **fields: Any) -> dict[str, Any]:
    parts = [{"kind": "text", "text": text}]
    return {"kind": "message", "messageId": "m-1", "role": "user", "parts": parts,
            "metadata": {"skill": skill}, **fields}  # fmt: skip


def rpc(method: str, params: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 7, "method": method, "params": params}


#: How each binding streams a new task: (path, headers, body).
SENDS = {
    "jsonrpc-1.0": (
        "/a2a",
        V10,
        rpc("SendStreamingMessage", {"message": message_10("x", "quiet")}),
    ),
    "jsonrpc-0.3": ("/a2a", {}, rpc("message/stream", {"message": message_03("x", "quiet")})),
    "rest": ("/a2a/message:stream", V10, {"message": message_10("x", "quiet")}),
}


async def read_through_quiet(
    response: httpx.Response, until_pinged: asyncio.Event | None = None, pings: int = 2
) -> tuple[list[str], list[dict[str, Any]]]:
    """The stream's lines and its events' data, read to its end; once ``pings``
    pings came, ``until_pinged`` is set (what ends the task's silence)."""
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    lines: list[str] = []
    data: list[dict[str, Any]] = []
    lines_in = response.aiter_lines()
    while True:
        try:  # on a stream that never pings, the test fails here
            line = await asyncio.wait_for(anext(lines_in), 10)
        except StopAsyncIteration:
            break
        lines.append(line)
        if line.startswith("data: "):
            data.append(json.loads(line.removeprefix("data: ")))
        if until_pinged is not None and lines.count(": ping") >= pings:
            until_pinged.set()
    return lines, data


def result_of(event: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = event.get("result", event)  # JSON-RPC wraps it, HTTP+JSON not
    return result


def assert_completed(binding: str, last: dict[str, Any]) -> None:
    """``last`` (a stream's last event) says the task completed, as ``binding`` says it."""
    if binding == "jsonrpc-0.3":
        status = (last["kind"], last["status"]["state"], last["final"])
        assert status == ("status-update", "completed", True)
    else:
        assert last["statusUpdate"]["status"]["state"] == "TASK_STATE_COMPLETED"


@pytest.mark.parametrize("binding", SENDS)
async def test_a_quiet_streamed_send_is_pinged_then_ends_as_usual(node: Node, binding: str) -> None:
    path, headers, body = SENDS[binding]
    async with node.client.stream("POST", path, json=body, headers=headers) as response:
        lines, data = await read_through_quiet(response, node.release)
    assert response.http_version == node.version
    pinged = [i for i, line in enumerate(lines) if line == ": ping"]
    assert len(pinged) >= 2
    # Each ping is a comment on a line of its own, a blank line after it.
    assert all(lines[i + 1] == "" for i in pinged)
    first_data = next(i for i, line in enumerate(lines) if line.startswith("data: "))
    assert first_data < pinged[0]  # the task first, at once
    results = [result_of(d) for d in data]
    assert "task" in results[0] or results[0]["kind"] == "task"
    assert_completed(binding, results[-1])
    artifacts = [r for r in results if "artifactUpdate" in r or r.get("kind") == "artifact-update"]
    assert len(artifacts) == 1
    assert len(node.service.watches) == 0


def subscription(binding: str, task_id: str) -> tuple[str, str, dict[str, str], Any]:
    """How ``binding`` subscribes to a task: (method, path, headers, body)."""
    if binding == "rest":
        return "GET", f"/a2a/tasks/{task_id}:subscribe", V10, None
    if binding == "jsonrpc-0.3":
        return "POST", "/a2a", {}, rpc("tasks/resubscribe", {"id": task_id})
    return "POST", "/a2a", V10, rpc("SubscribeToTask", {"id": task_id})


@pytest.mark.parametrize("binding", SENDS)
async def test_a_subscription_to_a_task_awaiting_input_is_pinged_until_answered(
    node: Node, binding: str
) -> None:
    ask = rpc("SendMessage", {"message": message_10("Lisbon", "book")})
    task = (await node.client.post("/a2a", json=ask, headers=V10)).json()["result"]["task"]
    assert task["status"]["state"] == "TASK_STATE_INPUT_REQUIRED"
    method, path, headers, body = subscription(binding, task["id"])
    pinged = asyncio.Event()

    async def answer() -> None:
        await pinged.wait()
        reply = rpc("SendMessage", {"message": message_10("early May", "book", taskId=task["id"])})
        await node.client.post("/a2a", json=reply, headers=V10)

    answering = asyncio.create_task(answer())
    async with node.client.stream(method, path, json=body, headers=headers) as response:
        lines, data = await read_through_quiet(response, pinged)
        assert response.http_version == node.version
    await answering
    assert lines.count(": ping") >= 2
    assert_completed(binding, result_of(data[-1]))
    assert len(node.service.watches) == 0


#: The card's interface the official client is given, per binding.
INTERFACES = {
    "jsonrpc-1.0": ("JSONRPC", "1.0"),
    "jsonrpc-0.3": ("JSONRPC", "0.3"),  # the SDK's 0.3 compatibility transport
    "rest": ("HTTP+JSON", "1.0"),
}


def sdk_client(node: Node, binding: str, http: httpx.AsyncClient) -> Any:
    """The official a2a-sdk 1.x client for ``binding`` of ``node``, over ``http``."""
    protocol, version = INTERFACES[binding]
    url = f"{node.url}/a2a"
    card = json_format.ParseDict(
        {
            "name": "t",
            "description": "t",
            "version": "1",
            "supportedInterfaces": [
                {"url": url, "protocolBinding": protocol, "protocolVersion": version}
            ],
            "capabilities": {"streaming": True},
            "defaultInputModes": ["text/plain"],
            "defaultOutputModes": ["text/plain"],
        },
        AgentCard(),
    )
    config = ClientConfig(streaming=True, httpx_client=http, supported_protocol_bindings=[protocol])
    return ClientFactory(config).create(card)


@pytest.mark.parametrize("binding", INTERFACES)
async def test_the_official_client_outlives_its_read_timeout_on_a_quiet_stream(
    node: Node, binding: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An a2a-sdk 1.3 client whose read timeout (0.6 s here, 20 s in use) is
    shorter than the task's silence gives up on a stream that says nothing,
    and follows one that pings to its end."""
    timeout = httpx.Timeout(20, read=0.6)
    async with httpx.AsyncClient(verify=node.verify, http2=node.http2, timeout=timeout) as http:
        sdk = sdk_client(node, binding, http)
        try:
            events = await quiet_then_pinged(node, sdk, monkeypatch)
        finally:
            await sdk.close()
    assert events[0].HasField("task")
    assert events[-1].status_update.status.state == TaskState.TASK_STATE_COMPLETED
    (added,) = [e.artifact_update.artifact for e in events if e.HasField("artifact_update")]
    assert json_format.MessageToDict(added)["parts"][0]["text"] == "thought about x"


async def quiet_then_pinged(node: Node, sdk: Any, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """A quiet task streamed with no keep-alive (the client gives up), then one
    streamed with it (its events, read to the end)."""
    parts = [Part(text="x")]
    metadata = json_format.ParseDict({"skill": "quiet"}, Struct())
    sent = Message(message_id="sdk-1", role=Role.ROLE_USER, parts=parts, metadata=metadata)
    monkeypatch.setattr(streaming, "KEEPALIVE_SECONDS", 60.0)  # as it was: never, here
    with pytest.raises(A2AClientTimeoutError):
        _ = [e async for e in sdk.send_message(SendMessageRequest(message=sent))]
    monkeypatch.setattr(streaming, "KEEPALIVE_SECONDS", INTERVAL)
    loop = asyncio.get_running_loop()
    loop.call_later(2.0, node.release.set)  # silent 2 s: over three read timeouts
    began = loop.time()
    events = [e async for e in sdk.send_message(SendMessageRequest(message=sent))]
    assert loop.time() - began >= 2.0
    return events

"""A workflow that asks for authorization: AUTH_REQUIRED over A2A.

A wait of kind ``auth`` (YAML ``auth:``, SDK ``wf.wait(auth=…)``) is an
interrupted state like input: a blocking send returns in it, a stream ends
on it, a push is sent for it, ListTasks filters by it, and the caller's
next message on the task resumes it with that message as the payload.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.routing import Route
from support.webhook import Receiver, receiving

from agent_node import Runtime, Workflow, load_workflow
from agent_node.a2a.protocol.errors import TaskNotFound
from agent_node.a2a.protocol.models import (
    GetTaskRequest,
    ListTasksRequest,
    Message,
    Part,
    Role,
    SendMessageConfiguration,
    SendMessageRequest,
    TaskPushNotificationConfig,
    TaskState,
)
from agent_node.a2a.server.handler import CallContext
from agent_node.a2a.server.jsonrpc import jsonrpc_endpoint
from agent_node.a2a.server.push import PushSender
from agent_node.a2a.server.tasks import TaskService
from agent_node.config import PushSettings
from agent_node.results import to_event
from agent_node.security.authz import Policy
from agent_node.settings import PolicySettings
from agent_node.workflow.compiled import CompiledWorkflow

ALICE = CallContext(caller="spiffe://test/agent/alice")
BOB = CallContext(caller="spiffe://test/agent/bob")
V10 = {"A2A-Version": "1.0"}

LOGIN = """\
workflow:
  id: login
  version: "1"
  start: authorize
  state_schema:
    type: object
    properties:
      text: {type: string}
      account: {type: string}
      token: {type: string}
      reply: {type: string}
nodes:
  authorize:
    type: wait
    auth: "Sign in to {{ state.text }} and send the token on this task."
    output: token
    timeout: 1h
    next: fetch
  fetch: {type: python, function: "login_steps:fetch", next: done}
  done: {type: end, output: [reply]}
"""

STEPS = """\
async def fetch(state):
    return {"reply": f"fetched with {state.token}"}
"""


class Trip(BaseModel):
    text: str = ""
    when: str | None = None
    reply: str = ""


def asker() -> CompiledWorkflow:
    """Asks for input (SDK): the INPUT_REQUIRED task beside the auth one."""
    wf = Workflow("asker", version="1")
    wf.state(Trip)
    wf.wait("when", input="When?", output="when")
    wf.end("done", output=["reply"])
    return wf.compile()


@pytest.fixture
def login(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CompiledWorkflow:
    (tmp_path / "login_steps.py").write_text(STEPS)
    (tmp_path / "login.yaml").write_text(LOGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    return load_workflow(str(tmp_path / "login.yaml"))


@pytest.fixture
async def runtime(durable_url: str) -> AsyncIterator[Runtime]:
    async with Runtime(durable_url, scope="all", poll_interval=0.05) as runtime:
        yield runtime


@pytest.fixture
def service(runtime: Runtime, login: CompiledWorkflow) -> TaskService:
    """Tasks belong to their callers (alice's and bob's certificates)."""
    skills = {"login": login, "ask": asker()}
    return TaskService(runtime, skills, default_skill="login", policy=Policy.of(PolicySettings()))


def send(text: str, *, task_id: str | None = None, skill: str = "login") -> SendMessageRequest:
    message = Message(message_id="m-1", role=Role.USER, parts=[Part(text=text)], task_id=task_id)
    return SendMessageRequest(message=message, metadata={"skill": skill})


async def test_a_blocking_send_returns_auth_required_and_the_answer_resumes_it(
    service: TaskService,
) -> None:
    asked = (await service.send_message(send("the mailbox"), ALICE)).task
    assert asked is not None and asked.status.state == TaskState.AUTH_REQUIRED
    prompt = "Sign in to the mailbox and send the token on this task."
    assert asked.status.message is not None and asked.status.message.parts[0].text == prompt
    assert asked.history is not None and asked.history[-1] == asked.status.message
    read = await service.get_task(GetTaskRequest(id=asked.id), ALICE)
    assert read.status.state == TaskState.AUTH_REQUIRED

    # Another caller's message is not an answer: the task is not even theirs to see.
    with pytest.raises(TaskNotFound):
        await service.send_message(send("forged", task_id=asked.id), BOB)

    done = (await service.send_message(send("tok-42", task_id=asked.id), ALICE)).task
    assert done is not None and done.status.state == TaskState.COMPLETED
    assert (done.artifacts or [])[0].parts[0].text == "fetched with tok-42"
    log = [to_event(e) for e in await service.runtime.store.events(asked.id)]
    (started,) = [e for e in log if e.kind == "wait_started"]
    assert started.data is not None and started.data["kind"] == "auth"


async def test_list_tasks_tells_auth_required_from_input_required_and_working(
    service: TaskService,
) -> None:
    auth = (await service.send_message(send("the bank"), ALICE)).task
    ask = (await service.send_message(send("Rome", skill="ask"), ALICE)).task
    assert auth is not None and ask is not None
    assert ask.status.state == TaskState.INPUT_REQUIRED
    for state, expected in [
        (TaskState.AUTH_REQUIRED, [auth.id]),
        (TaskState.INPUT_REQUIRED, [ask.id]),
        (TaskState.WORKING, []),
    ]:
        listed = await service.list_tasks(ListTasksRequest(status=state), ALICE)
        assert [t.id for t in listed.tasks] == expected, state
        assert listed.total_size == len(expected)


# -- over JSON-RPC, 1.0 and 0.3 ----------------------------------------------------------


@pytest.fixture
async def client(runtime: Runtime, login: CompiledWorkflow) -> AsyncIterator[httpx.AsyncClient]:
    """JSON-RPC over plain HTTP: no identities, so an open policy."""
    service = TaskService(runtime, {"login": login}, default_skill="login")
    endpoint = jsonrpc_endpoint(service, capabilities={"streaming": True})
    app = Starlette(routes=[Route("/a2a", endpoint, methods=["POST"])])
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://node") as c:
        yield c


def rpc(method: str, params: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}


async def test_json_rpc_names_the_state_in_both_versions(client: httpx.AsyncClient) -> None:
    v10 = {"messageId": "m-1", "role": "ROLE_USER", "parts": [{"text": "the wiki"}]}
    sent = await client.post("/a2a", json=rpc("SendMessage", {"message": v10}), headers=V10)
    task = sent.json()["result"]["task"]
    assert task["status"]["state"] == "TASK_STATE_AUTH_REQUIRED"
    listed = await client.post(
        "/a2a", json=rpc("ListTasks", {"status": "TASK_STATE_AUTH_REQUIRED"}), headers=V10
    )
    assert [t["id"] for t in listed.json()["result"]["tasks"]] == [task["id"]]

    v03 = {
        "messageId": "m-2",
        "role": "user",
        "kind": "message",
        "parts": [{"kind": "text", "text": "x"}],
    }
    old = (await client.post("/a2a", json=rpc("message/send", {"message": v03}))).json()
    assert old["result"]["kind"] == "task"
    assert old["result"]["status"]["state"] == "auth-required"
    answer = {**v03, "messageId": "m-3", "taskId": old["result"]["id"]}
    done = (await client.post("/a2a", json=rpc("message/send", {"message": answer}))).json()
    assert done["result"]["status"]["state"] == "completed"


async def test_a_stream_ends_on_auth_required(client: httpx.AsyncClient) -> None:
    body = rpc(
        "SendStreamingMessage",
        {"message": {"messageId": "m-1", "role": "ROLE_USER", "parts": [{"text": "the wiki"}]}},
    )
    async with client.stream("POST", "/a2a", json=body, headers=V10) as response:
        lines = [line async for line in response.aiter_lines() if line]
    events = [json.loads(line.removeprefix("data: "))["result"] for line in lines]
    last = events[-1]["statusUpdate"]["status"]
    assert last["state"] == "TASK_STATE_AUTH_REQUIRED"
    assert last["message"]["parts"][0]["text"].startswith("Sign in to the wiki")


# -- push -------------------------------------------------------------------------------


@pytest.fixture
async def hook() -> AsyncIterator[Receiver]:
    async with receiving() as receiver:
        yield receiver


async def test_a_push_is_sent_when_the_task_asks_for_authorization(
    service: TaskService, hook: Receiver
) -> None:
    service.push = PushSender(
        service.runtime.store,
        service.render_push,
        PushSettings(allow=["127.0.0.0/8"]),
        owner=str(service.runtime.engine.owner),
        poll=0.05,
    )
    await service.push.start()
    try:
        config = SendMessageConfiguration(
            task_push_notification_config=TaskPushNotificationConfig(url=f"{hook.url}/hook")
        )
        request = send("the bank").model_copy(update={"configuration": config})
        asked = (await service.send_message(request, ALICE)).task
        assert asked is not None and asked.status.state == TaskState.AUTH_REQUIRED

        def states(pushes: list[Any]) -> list[str]:
            return [p.body["task"]["status"]["state"] for p in pushes]

        await hook.wait_for(
            lambda pushes: "TASK_STATE_AUTH_REQUIRED" in states(pushes), "the auth push"
        )
    finally:
        await service.push.close()

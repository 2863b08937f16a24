"""The ids a request names, and those a peer answers with: no NUL, no
longer than MAX_ID_CHARS, the same on every store and binding.

PostgreSQL's text cannot hold a NUL: a caller's task id, contextId or
ListTasks filter holding one was an internal error there (-32603, asyncpg's
traceback in the log) and "not found" or a new task on SQLite. Now every id
a request names is refused at the edge, naming the field (-32602; REST 400
INVALID_ARGUMENT; the gRPC binding's test is in test_grpc.py), a forged page
token or cursor holding one is one we never issued, and the operator API
finds no execution of such an id. A NUL inside a message's text or metadata
is stored and read back (it is stored as JSON). A peer whose task id holds
one answered what no store could keep: its send was tried again and again
(the message sent each time); now it fails the delegation at once, and such
a push is refused. A contextId of 3,000 characters was an internal error on
PostgreSQL too (an index row holds ~2.7 kB), and a 900 kB task id came back
whole in the not-found message: ids are at most 512 characters."""

from __future__ import annotations

import base64
import json
import logging
import random
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Route
from support.delegation_rig import delegating, rig
from support.workflows import greeter

from agent_node import Runtime
from agent_node.a2a.peers.push_receiver import PUSH_PATH, PushReceiver
from agent_node.a2a.peers.push_tokens import push_token
from agent_node.a2a.server.app import Guard, create_app
from agent_node.a2a.server.card import CardDocument
from agent_node.a2a.server.id_fields import MAX_ID_CHARS
from agent_node.a2a.server.jsonrpc import Limits, jsonrpc_endpoint
from agent_node.a2a.server.ops import ops_routes
from agent_node.a2a.server.rest import rest_endpoint
from agent_node.a2a.server.tasks import TaskService
from agent_node.security.authz import Policy

V10 = {"A2A-Version": "1.0"}
CAPS = {"streaming": True, "pushNotifications": True}


@pytest.fixture
async def node(store_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A node's JSON-RPC, REST and operator API on ``store_url``."""
    async with Runtime(store_url, scope="all", poll_interval=0.05) as runtime:
        service = TaskService(runtime, {"greet": greeter().compile()}, default_skill="greet")
        limits = Limits()
        app = create_app(
            CardDocument.of({"name": "t"}),
            jsonrpc_endpoint(service, capabilities=CAPS, limits=limits),
            rest=rest_endpoint(service, capabilities=CAPS, limits=limits),
            routes=ops_routes(runtime, Policy.open()),
            guard=Guard(),
        )
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://node") as client:
            yield client


def message(text: str = "hi", **fields: Any) -> dict[str, Any]:
    return {"messageId": "m1", "role": "ROLE_USER", "parts": [{"text": text}], **fields}


async def rpc(
    client: httpx.AsyncClient, method: str, params: dict[str, Any], headers: Any = V10
) -> dict[str, Any]:
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    answer = await client.post("/a2a", json=body, headers=headers)
    assert answer.status_code == 200
    document: dict[str, Any] = answer.json()
    return document


PUSH = {"url": "https://example.org/hook"}
#: Requests naming an id that holds a NUL, and the field the refusal names.
NAMED = [
    ("SendMessage", {"message": message(contextId="c\x00")}, "message.contextId"),
    ("SendMessage", {"message": message(taskId="t\x00")}, "message.taskId"),
    (
        "SendMessage",
        {"message": message(referenceTaskIds=["t", "u\x00"])},
        "message.referenceTaskIds",
    ),
    ("SendMessage", {"message": {**message(), "messageId": "m\x00"}}, "message.messageId"),
    (
        "SendMessage",
        {
            "message": message(),
            "configuration": {"taskPushNotificationConfig": {**PUSH, "id": "\x00"}},
        },
        "configuration.taskPushNotificationConfig.id",
    ),
    ("GetTask", {"id": "t\x00"}, "id"),
    ("CancelTask", {"id": "t\x00"}, "id"),
    ("SubscribeToTask", {"id": "t\x00"}, "id"),
    ("ListTasks", {"contextId": "c\x00"}, "contextId"),
    ("CreateTaskPushNotificationConfig", {**PUSH, "taskId": "t\x00"}, "taskId"),
    ("GetTaskPushNotificationConfig", {"taskId": "t", "id": "p\x00"}, "id"),
    ("ListTaskPushNotificationConfigs", {"taskId": "t\x00"}, "taskId"),
    ("DeleteTaskPushNotificationConfig", {"taskId": "t\x00", "id": "p"}, "taskId"),
]


async def test_an_id_holding_nul_is_invalid_params_naming_it(
    node: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        for method, params, field in NAMED:
            error = (await rpc(node, method, params))["error"]
            assert error["code"] == -32602, (method, field, error)
            assert error["message"] == f"{field}: an id cannot hold a NUL character (U+0000)"
        # A 0.3 caller's, converted to 1.0 first.
        error = (await rpc(node, "tasks/get", {"id": "t\x00"}, headers={}))["error"]
        assert (error["code"], error["message"]) == (
            -32602,
            "id: an id cannot hold a NUL character (U+0000)",
        )
        # A page token we never issued: its position's id holds one.
        token = base64.urlsafe_b64encode(b"1:1.5|t\x00").decode()
        error = (await rpc(node, "ListTasks", {"pageToken": token}))["error"]
        assert error["code"] == -32602 and error["message"].startswith("pageToken is not one")
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    assert loud == [], [r.getMessage() for r in loud]


async def test_an_id_longer_than_the_cap_is_invalid_params_and_not_echoed(
    node: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    huge = "a" * 900_000
    with caplog.at_level(logging.INFO):
        error = (await rpc(node, "GetTask", {"id": huge}))["error"]
        assert (error["code"], error["message"]) == (
            -32602,
            f"id: an id is at most {MAX_ID_CHARS} characters, not 900000",
        )
        context = "".join(random.choice("\U0001f600\u00e9x\u4e2d") for _ in range(3000))
        error = (await rpc(node, "SendMessage", {"message": message(contextId=context)}))["error"]
        assert error["code"] == -32602 and error["message"].startswith("message.contextId: an id")
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    assert loud == [], [r.getMessage()[:200] for r in loud]


async def test_an_id_at_the_cap_is_a_context_like_any(node: httpx.AsyncClient) -> None:
    """512 characters of four bytes each: 2 kB, within what PostgreSQL's index takes."""
    context = "".join(random.choice("\U0001f600\U0001f680\U0001f308") for _ in range(MAX_ID_CHARS))
    task = (await rpc(node, "SendMessage", {"message": message(contextId=context)}))["result"]
    assert task["task"]["contextId"] == context
    listed = (await rpc(node, "ListTasks", {"contextId": context}))["result"]
    assert [t["id"] for t in listed["tasks"]] == [task["task"]["id"]]


async def test_over_rest_an_id_holding_nul_is_a_400(node: httpx.AsyncClient) -> None:
    for path in ("/a2a/tasks/t%00", "/a2a/tasks?contextId=c%00"):
        answer = await node.get(path, headers=V10)
        assert answer.status_code == 400, (path, answer.text)
        error = answer.json()["error"]
        assert (error["code"], error["status"]) == (400, "INVALID_ARGUMENT")
        assert error["details"][0]["reason"] == "INVALID_PARAMS"
        assert "an id cannot hold a NUL character" in error["message"]


async def test_nul_in_a_message_s_text_and_metadata_is_stored_and_read_back(
    node: httpx.AsyncClient,
) -> None:
    sent = message("a\x00b", metadata={"k\x00": "v\x00"})
    task = (await rpc(node, "SendMessage", {"message": sent}))["result"]["task"]
    assert task["status"]["state"] == "TASK_STATE_COMPLETED"
    read = (await rpc(node, "GetTask", {"id": task["id"]}))["result"]
    assert read["history"][0]["parts"] == [{"text": "a\x00b"}]
    assert read["history"][0]["metadata"] == {"k\x00": "v\x00"}
    assert read["artifacts"][0]["parts"][0] == {"text": "Hello! You said: a\x00b"}


async def test_the_operator_api_finds_no_execution_of_an_id_holding_nul(
    node: httpx.AsyncClient,
) -> None:
    for method, path in (("GET", ""), ("GET", "/events"), ("POST", "/cancel")):
        answer = await node.request(method, f"/ops/executions/x%00y{path}", json={})
        assert answer.status_code == 404, (path, answer.text)
        assert answer.json()["error"]["message"] == "no execution 'x\\x00y'"
    forged = base64.urlsafe_b64encode(json.dumps([1.5, "x\x00"]).encode()).decode()
    answer = await node.get(f"/ops/executions?cursor={forged}")
    assert answer.status_code == 400 and "cursor is not one" in answer.text
    # The inbox's cursor is read as it is: a position holding a NUL starts nowhere.
    forged = base64.urlsafe_b64encode(json.dumps([0, 1.5, "x\x00"]).encode()).decode()
    answer = await node.get(f"/ops/inbox?cursor={forged}")
    assert answer.status_code == 200 and answer.json()["items"] == []


async def test_a_store_reads_a_filter_or_a_position_holding_nul_alike(store_url: str) -> None:
    async with Runtime(store_url, scope="all") as runtime:
        await runtime.run(greeter().compile(), {"name": "a"}, execution_id="e1")
        store = runtime.store
        for field in ("context_id", "caller", "workflow_id", "id_prefix"):
            assert await store.list_executions(**{field: "e\x00"}) == []
            assert await store.count_executions(**{field: "e\x00"}) == 0
        # A page's position holding one (a forged cursor): cut there, as the
        # memory store reads it ("e1" is before "e1\0…", not before "e\0…").
        made = (await store.list_executions())[0].created_at
        assert [r.id for r in await store.list_executions(before=(made, "e1\x00"))] == ["e1"]
        assert await store.list_executions(before=(made, "e\x00x")) == []


def _answering_with(task: dict[str, Any], sends: list[str]) -> Any:
    def answer(body: dict[str, Any]) -> httpx.Response | None:
        if body["method"] != "SendMessage":
            return None
        sends.append(body["params"]["message"]["messageId"])
        result = {"jsonrpc": "2.0", "id": 1, "result": {"task": task}}
        return httpx.Response(200, json=result)

    return answer


@pytest.mark.parametrize("field", ["id", "contextId"])
async def test_a_peer_task_id_holding_nul_fails_the_delegation_at_once(
    store_url: str, field: str
) -> None:
    task = {"id": "t1", "contextId": "c", "status": {"state": "TASK_STATE_WORKING"}}
    task[field] = "evil\x00"
    sends: list[str] = []
    async with rig(store_url) as r:
        r.peer.answer = _answering_with(task, sends)
        execution_id = await r.start(delegating("hello"))
        record = await r.finish(execution_id)
    assert record.status == "failed" and len(sends) == 1, (record, sends)
    assert record.error == (
        f"delegate node 'hand': peer 'p' answered SendMessage with a task whose {field}"
        " holds a NUL character"
    )


async def test_nul_in_a_peer_s_text_artifact_name_and_status_message_is_stored(
    store_url: str,
) -> None:
    said = {"messageId": "s\x00", "role": "ROLE_AGENT", "parts": [{"text": "done\x00"}]}
    task = {
        "id": "t1",
        "contextId": "c",
        "status": {"state": "TASK_STATE_COMPLETED", "message": said},
        "artifacts": [{"artifactId": "a", "name": "n\x00", "parts": [{"text": "a\x00b"}]}],
    }
    sends: list[str] = []
    async with rig(store_url) as r:
        r.peer.answer = _answering_with(task, sends)
        execution_id = await r.start(delegating("hello"))
        record = await r.finish(execution_id)
    assert record.status == "completed" and len(sends) == 1, record
    assert json.loads(record.state)["answer"]["text"] == "a\x00b"


async def test_a_push_of_a_task_id_holding_nul_is_refused(store_url: str) -> None:
    async with rig(store_url) as r:
        receiver = PushReceiver(r.runtime, r.watchdog.delegator, require_identity=False)
        app = Starlette(routes=[Route(PUSH_PATH, receiver.endpoint, methods=["POST"])])
        transport = httpx.ASGITransport(app=app)
        execution_id = await r.start(delegating("hang"))
        row = await r.row(execution_id)
        assert row is not None and row.state == "sending"
        question = {"messageId": "q", "role": "ROLE_AGENT", "parts": [{"text": "Name?"}]}
        status = {"state": "TASK_STATE_INPUT_REQUIRED", "message": question}
        update = {"taskId": "t\x00", "contextId": "c", "status": status}
        headers = {"X-A2A-Notification-Token": push_token(b"s", row.key)}
        async with httpx.AsyncClient(transport=transport, base_url="http://a.test") as pusher:
            answer = await pusher.post(PUSH_PATH, json={"statusUpdate": update}, headers=headers)
        await receiver.close()
        assert answer.status_code == 400
        assert answer.json()["error"]["message"] == "a task id cannot hold a NUL character"
        row = await r.row(execution_id)
        assert row is not None and row.state == "sending" and not row.remote_task_id

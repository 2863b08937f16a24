"""The HTTP+JSON binding: paths, params, errors and streams, in front of a
fake handler (the binding's own rules) and of the real task service (the
operations end to end). The official SDKs' REST clients are run against a
node in tests/e2e (test_a2a_sdk_client.py, test_a2a_js_client.py)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from support.fake_handler import FakeHandler
from support.workflows import greeter

from agent_node import Runtime, load_workflow
from agent_node.a2a.server.app import Guard, create_app
from agent_node.a2a.server.card import CardDocument
from agent_node.a2a.server.jsonrpc import jsonrpc_endpoint
from agent_node.a2a.server.limits import Limits
from agent_node.a2a.server.push import PushSender
from agent_node.a2a.server.rest import rest_endpoint
from agent_node.a2a.server.tasks import TaskService
from agent_node.config import PushSettings

ROOT = Path(__file__).resolve().parents[2]
ALL_CAPS = {"streaming": True, "pushNotifications": True}
NO_CAPS = {"streaming": False, "pushNotifications": False}
V10 = {"A2A-Version": "1.0"}
INFO = "type.googleapis.com/google.rpc.ErrorInfo"


async def other_route(request: Request) -> Response:
    return JSONResponse({"other": "route"})


def app_for(handler: Any, caps: dict[str, Any], limits: Limits | None = None) -> Any:
    limits = limits or Limits()
    card = CardDocument.of({"name": "t"})
    return create_app(
        card,
        jsonrpc_endpoint(handler, capabilities=caps, limits=limits),
        rest=rest_endpoint(handler, capabilities=caps, limits=limits),
        routes=[Route("/a2a/push", other_route, methods=["POST"])],
        guard=Guard(),
    )


def client_for(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://node")


@pytest.fixture
def handler() -> FakeHandler:
    return FakeHandler.with_working_task()


@pytest.fixture
async def client(handler: FakeHandler) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app_for(handler, NO_CAPS)) as c:
        yield c


def message(text: str = "hello") -> dict[str, Any]:
    return {"message": {"messageId": "m-1", "role": "ROLE_USER", "parts": [{"text": text}]}}


def assert_error(response: httpx.Response, status: int, grpc: str, reason: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"  # the client asked for no other
    error = response.json()["error"]
    assert (error["code"], error["status"]) == (status, grpc)
    assert error["details"][0]["@type"] == INFO
    assert error["details"][0]["reason"] == reason
    return str(error["message"])


# The binding's rules


async def test_get_task_with_history_length_from_the_query(
    client: httpx.AsyncClient, handler: FakeHandler
) -> None:
    response = await client.get("/a2a/tasks/t1?historyLength=3", headers=V10)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["vary"] == "Accept"
    assert response.json()["id"] == "t1"
    [(name, request, ctx)] = handler.calls
    assert (name, request.id, request.history_length, ctx.version) == ("get_task", "t1", 3, "1.0")


async def test_send_takes_either_json_media_type(
    client: httpx.AsyncClient, handler: FakeHandler
) -> None:
    for media in ("application/json", "application/a2a+json; charset=utf-8"):
        response = await client.post(
            "/a2a/message:send",
            content=json.dumps(message()),
            headers={**V10, "Content-Type": media},
        )
        assert response.status_code == 200, response.text
        assert response.json()["task"]["status"]["state"] == "TASK_STATE_COMPLETED"
    assert [name for name, _, _ in handler.calls] == ["send_message", "send_message"]


@pytest.mark.parametrize(
    ("headers", "answered"),
    [
        ({"Accept": "application/a2a+json"}, "application/a2a+json"),
        ({"Accept": "application/json, application/a2a+json"}, "application/a2a+json"),
        ({"Accept": "application/a2a+json;q=0.5, application/json"}, "application/json"),
        ({"Accept": "application/json"}, "application/json"),
        ({"Accept": "*/*"}, "application/json"),
        ({"Accept": "*/*", "Content-Type": "application/a2a+json"}, "application/a2a+json"),
        ({"Content-Type": "application/a2a+json; charset=utf-8"}, "application/a2a+json"),
        (
            {"Accept": "application/json", "Content-Type": "application/a2a+json"},
            "application/json",
        ),
    ],
)
async def test_answers_and_errors_come_in_the_media_type_the_client_prefers(
    client: httpx.AsyncClient, headers: dict[str, str], answered: str
) -> None:
    sent = {**V10, "Content-Type": "application/json", **headers}
    done = await client.post("/a2a/message:send", content=json.dumps(message()), headers=sent)
    refused = await client.get("/a2a/tasks/nope", headers=sent)
    assert (done.status_code, refused.status_code) == (200, 404)
    for response in (done, refused):
        assert response.headers["content-type"] == answered
        assert response.headers["vary"] == "Accept"


async def test_a_request_without_a2a_version_is_1_0_and_patch_numbers_are_ignored(
    client: httpx.AsyncClient,
) -> None:
    for headers in ({}, {"A2A-Version": "1.0.1"}):
        assert (await client.get("/a2a/tasks/t1", headers=headers)).status_code == 200
    for version in ("0.3", "2.0", "x"):
        response = await client.get("/a2a/tasks/t1", headers={"A2A-Version": version})
        assert_error(response, 400, "FAILED_PRECONDITION", "VERSION_NOT_SUPPORTED")


async def test_errors_are_aip_193_objects_with_the_table_s_statuses(
    client: httpx.AsyncClient,
) -> None:
    message_text = assert_error(
        await client.get("/a2a/tasks/nope", headers=V10), 404, "NOT_FOUND", "TASK_NOT_FOUND"
    )
    assert "nope" in message_text or message_text
    assert_error(
        await client.post("/a2a/message:send", json=message("raise:-32004"), headers=V10),
        400,
        "FAILED_PRECONDITION",
        "UNSUPPORTED_OPERATION",
    )
    crashed = await client.post("/a2a/message:send", json=message("crash"), headers=V10)
    assert_error(crashed, 500, "INTERNAL", "INTERNAL")
    assert "secret" not in crashed.text


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("GET", "/a2a/message:send", "POST"),
        ("PUT", "/a2a/tasks/t1", "GET"),
        ("DELETE", "/a2a/tasks/t1:subscribe", "GET, POST"),
        ("POST", "/a2a/tasks", "GET"),
        ("POST", "/a2a/extendedAgentCard", "GET"),
    ],
)
async def test_a_known_path_with_another_method_is_405(
    client: httpx.AsyncClient, method: str, path: str, allow: str
) -> None:
    response = await client.request(method, path, headers=V10)
    assert_error(response, 405, "UNIMPLEMENTED", "METHOD_NOT_FOUND")
    assert response.headers["allow"] == allow


@pytest.mark.parametrize(
    "path", ["/a2a/message:sned", "/a2a/acme/nothing/here", "/a2a/tasks/t1/other"]
)
async def test_an_unknown_path_is_404(client: httpx.AsyncClient, path: str) -> None:
    assert_error(await client.get(path, headers=V10), 404, "UNIMPLEMENTED", "METHOD_NOT_FOUND")


async def test_a_tenant_segment_is_taken_and_passed_on(
    client: httpx.AsyncClient, handler: FakeHandler
) -> None:
    response = await client.get("/a2a/acme/tasks/t1", headers=V10)
    assert response.status_code == 200 and response.json()["id"] == "t1"
    assert handler.calls[0][1].tenant == "acme"


async def test_bad_bodies_and_queries_are_clear_400s(client: httpx.AsyncClient) -> None:
    not_json = await client.post(
        "/a2a/message:send", content=b"{", headers={**V10, "Content-Type": "application/json"}
    )
    assert_error(not_json, 400, "INVALID_ARGUMENT", "JSON_PARSE")
    wrong_type = await client.post(
        "/a2a/message:send", content=b"{}", headers={**V10, "Content-Type": "text/plain"}
    )
    assert_error(wrong_type, 415, "INVALID_ARGUMENT", "CONTENT_TYPE_NOT_SUPPORTED")
    a_list = await client.post("/a2a/message:send", json=[1], headers=V10)
    assert_error(a_list, 400, "INVALID_ARGUMENT", "INVALID_REQUEST")
    no_message = await client.post("/a2a/message:send", json={}, headers=V10)
    assert "message" in assert_error(no_message, 400, "INVALID_ARGUMENT", "INVALID_PARAMS")
    bad_number = await client.get("/a2a/tasks/t1?historyLength=lots", headers=V10)
    assert "historyLength" in assert_error(bad_number, 400, "INVALID_ARGUMENT", "INVALID_PARAMS")
    bad_page = await client.get("/a2a/tasks?pageSize=1000", headers=V10)
    assert "pageSize" in assert_error(bad_page, 400, "INVALID_ARGUMENT", "INVALID_PARAMS")


async def test_a_body_too_large_is_413(handler: FakeHandler) -> None:
    async with client_for(app_for(handler, NO_CAPS, Limits(max_body_bytes=200))) as client:
        response = await client.post("/a2a/message:send", json=message("x" * 500), headers=V10)
    assert_error(response, 413, "INVALID_ARGUMENT", "INVALID_REQUEST")


async def test_operations_the_card_rules_out_are_refused_before_the_handler(
    client: httpx.AsyncClient, handler: FakeHandler
) -> None:
    stream = await client.post("/a2a/message:stream", json=message(), headers=V10)
    assert_error(stream, 400, "FAILED_PRECONDITION", "UNSUPPORTED_OPERATION")
    push = await client.get("/a2a/tasks/t1/pushNotificationConfigs", headers=V10)
    assert_error(push, 400, "FAILED_PRECONDITION", "PUSH_NOTIFICATION_NOT_SUPPORTED")
    card = await client.get("/a2a/extendedAgentCard", headers=V10)
    assert_error(card, 400, "FAILED_PRECONDITION", "UNSUPPORTED_OPERATION")
    assert handler.calls == []


async def test_json_rpc_and_the_card_are_still_where_they_were(
    client: httpx.AsyncClient,
) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": "t1"}}
    for path in ("/a2a", "/a2a/"):
        answer = (await client.post(path, json=body, headers=V10)).json()
        assert answer["result"]["id"] == "t1"
    assert (await client.get("/.well-known/agent-card.json")).json() == {"name": "t"}
    # Another route's path under /a2a (the push receiver's, in a node) is not the binding's.
    assert (await client.post("/a2a/push", json={})).json() == {"other": "route"}


# The operations end to end, on the task service


@pytest.fixture
async def node(durable_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with Runtime(durable_url, scope="all", poll_interval=0.05) as runtime:
        book = load_workflow(str(ROOT / "examples/greeter/book.py") + ":wf")
        service = TaskService(runtime, {"greet": greeter().compile(), "book": book})
        service.push = PushSender(
            runtime.store, service.render_push, PushSettings(allow=["127.0.0.0/8"]), owner="t"
        )
        async with client_for(app_for(service, ALL_CAPS)) as client:
            yield client


def events(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.headers["content-type"].startswith("text/event-stream")
    frames = [f for f in response.text.split("\n\n") if f.strip()]
    assert all(f.startswith("data: ") for f in frames), frames
    return [json.loads(f.removeprefix("data: ")) for f in frames]


async def test_send_get_list_cancel_over_rest(node: httpx.AsyncClient) -> None:
    sent = await node.post("/a2a/message:send", json=message("hi"), headers=V10)
    task = sent.json()["task"]
    assert task["status"]["state"] == "TASK_STATE_COMPLETED"
    got = (await node.get(f"/a2a/tasks/{task['id']}?historyLength=0", headers=V10)).json()
    assert got["id"] == task["id"] and not got.get("history")
    listed = (await node.get(f"/a2a/tasks?contextId={task['contextId']}", headers=V10)).json()
    assert [t["id"] for t in listed["tasks"]] == [task["id"]]
    none = await node.get("/a2a/tasks?status=TASK_STATE_WORKING&includeArtifacts=false")
    assert none.json()["tasks"] == []
    ask = message("Lisbon")
    ask["message"]["metadata"] = {"skill": "book"}
    asked = (await node.post("/a2a/message:send", json=ask, headers=V10)).json()["task"]
    assert asked["status"]["state"] == "TASK_STATE_INPUT_REQUIRED"
    canceled = await node.post(f"/a2a/tasks/{asked['id']}:cancel", headers=V10)
    assert canceled.json()["status"]["state"] == "TASK_STATE_CANCELED"
    again = await node.post(f"/a2a/tasks/{asked['id']}:cancel", json={}, headers=V10)
    assert_error(again, 409, "FAILED_PRECONDITION", "TASK_NOT_CANCELABLE")


async def test_a_key_sent_again_with_another_message_is_422(node: httpx.AsyncClient) -> None:
    keyed = {**V10, "Idempotency-Key": "order-9"}
    first = (await node.post("/a2a/message:send", json=message("hi"), headers=keyed)).json()
    again = await node.post("/a2a/message:send", json=message("hi"), headers=keyed)
    assert again.json()["task"]["id"] == first["task"]["id"]
    other = await node.post("/a2a/message:send", json=message("bye"), headers=keyed)
    said = assert_error(other, 422, "FAILED_PRECONDITION", "IDEMPOTENCY_KEY_REUSED")
    assert "another message" in said
    assert other.json()["error"]["details"][0]["metadata"] == {"taskId": first["task"]["id"]}
    rpc = {"jsonrpc": "2.0", "id": 7, "method": "SendMessage", "params": message("bye")}
    answer = (await node.post("/a2a", json=rpc, headers=keyed)).json()
    assert answer["id"] == 7 and answer["error"]["code"] == -32034, answer
    assert answer["error"]["data"][0]["metadata"] == {"taskId": first["task"]["id"]}


async def test_streams_are_bare_stream_responses(node: httpx.AsyncClient) -> None:
    streamed = events(await node.post("/a2a/message:stream", json=message("hi"), headers=V10))
    assert "task" in streamed[0]
    assert streamed[-1]["statusUpdate"]["status"]["state"] == "TASK_STATE_COMPLETED"
    ask = message("Lisbon")
    ask["message"]["metadata"] = {"skill": "book"}
    asked = (await node.post("/a2a/message:send", json=ask, headers=V10)).json()["task"]
    subscribed = asyncio.create_task(node.get(f"/a2a/tasks/{asked['id']}:subscribe"))
    await asyncio.sleep(0.3)  # subscribed: answer the question, which ends the stream
    answer = message("early May")
    answer["message"]["taskId"] = asked["id"]
    await node.post("/a2a/message:send", json=answer, headers=V10)
    followed = events(await asyncio.wait_for(subscribed, 30))
    assert followed[0]["task"]["id"] == asked["id"]
    assert followed[-1]["statusUpdate"]["status"]["state"] == "TASK_STATE_COMPLETED"
    done = await node.get(f"/a2a/tasks/{streamed[0]['task']['id']}:subscribe", headers=V10)
    assert_error(done, 400, "FAILED_PRECONDITION", "UNSUPPORTED_OPERATION")


async def test_push_config_crud_over_rest(node: httpx.AsyncClient) -> None:
    ask = message("Lisbon")
    ask["message"]["metadata"] = {"skill": "book"}
    task_id = (await node.post("/a2a/message:send", json=ask, headers=V10)).json()["task"]["id"]
    base = f"/a2a/tasks/{task_id}/pushNotificationConfigs"
    config = {"id": "p1", "url": "https://127.0.0.1:9/hook", "token": "tok"}
    created = (await node.post(base, json=config, headers=V10)).json()
    assert (created["taskId"], created["id"], created["url"]) == (task_id, "p1", config["url"])
    assert (await node.get(f"{base}/p1", headers=V10)).json()["token"] == "tok"
    assert [c["id"] for c in (await node.get(base, headers=V10)).json()["configs"]] == ["p1"]
    for _ in range(2):  # deleting is idempotent
        deleted = await node.delete(f"{base}/p1", headers=V10)
        assert (deleted.status_code, deleted.json()) == (200, {})
    assert (await node.get(base, headers=V10)).json().get("configs", []) == []
    missing = await node.get("/a2a/tasks/nope/pushNotificationConfigs/p1", headers=V10)
    assert_error(missing, 404, "NOT_FOUND", "TASK_NOT_FOUND")

"""``ListTaskPushNotificationConfigs`` pages (``pageSize``, ``pageToken``,
``nextPageToken``) on every binding that serves it: JSON-RPC and HTTP+JSON
(the node's app over ``httpx.ASGITransport``) and gRPC (the node's HTTP/2
server on loopback with real certificates), in front of the task service on
SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

grpc = pytest.importorskip("grpc")

from support.certs import make_certs  # noqa: E402
from support.grpc_calls import Caller, mtls_channel, refusal  # noqa: E402
from support.workflows import greeter  # noqa: E402

from agent_node import Runtime, load_workflow  # noqa: E402
from agent_node.a2a.server.app import Guard, create_app  # noqa: E402
from agent_node.a2a.server.card import CardDocument  # noqa: E402
from agent_node.a2a.server.grpc.server import bind, serve_service, stop  # noqa: E402
from agent_node.a2a.server.grpc.service import A2AService  # noqa: E402
from agent_node.a2a.server.jsonrpc import jsonrpc_endpoint  # noqa: E402
from agent_node.a2a.server.limits import Limits  # noqa: E402
from agent_node.a2a.server.push import PushSender  # noqa: E402
from agent_node.a2a.server.rest import rest_endpoint  # noqa: E402
from agent_node.a2a.server.tasks import TaskService  # noqa: E402
from agent_node.config import PushSettings  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CAPS = {"streaming": True, "pushNotifications": True}
V10 = {"A2A-Version": "1.0"}
HOOK = "https://127.0.0.1:9/hook"

#: Calls an operation by its 1.0 name with 1.0 params: its result, or the
#: binding's refusal as ``{"invalid": <the error's message>}``.
Call = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]


def over_jsonrpc(client: httpx.AsyncClient) -> Call:
    async def call(method: str, params: dict[str, Any]) -> dict[str, Any]:
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
        answer = (await client.post("/a2a", json=body, headers=V10)).json()
        if "error" in answer:
            assert answer["error"]["code"] == -32602, answer
            return {"invalid": answer["error"]["message"]}
        result: dict[str, Any] = answer["result"]
        return result

    return call


def over_rest(client: httpx.AsyncClient) -> Call:
    async def call(method: str, params: dict[str, Any]) -> dict[str, Any]:
        if method == "SendMessage":
            result: dict[str, Any] = (
                await client.post("/a2a/message:send", json=params, headers=V10)
            ).json()
            return result
        task_id = params.pop("taskId")
        path = f"/a2a/tasks/{task_id}/pushNotificationConfigs"
        if method == "CreateTaskPushNotificationConfig":
            answer = await client.post(path, json=params, headers=V10)
        else:
            answer = await client.get(path, params=params, headers=V10)
        if answer.status_code != 200:
            assert answer.status_code == 400, answer.text
            error = answer.json()["error"]
            assert (error["status"], error["details"][0]["reason"]) == (
                "INVALID_ARGUMENT",
                "INVALID_PARAMS",
            )
            return {"invalid": error["message"]}
        result = answer.json()
        return result

    return call


def over_grpc(caller: Caller) -> Call:
    async def call(method: str, params: dict[str, Any]) -> dict[str, Any]:
        try:
            return await caller.call(method, params)
        except grpc.aio.AioRpcError as exc:
            refused = refusal(exc)
            assert (refused.code, refused.reason) == (
                grpc.StatusCode.INVALID_ARGUMENT,
                "INVALID_PARAMS",
            )
            return {"invalid": refused.message}

    return call


@pytest.fixture
async def service(durable_url: str) -> AsyncIterator[TaskService]:
    async with Runtime(durable_url, scope="all", poll_interval=0.05) as runtime:
        book = load_workflow(str(ROOT / "examples/greeter/book.py") + ":wf")
        service = TaskService(runtime, {"greet": greeter().compile(), "book": book})
        service.push = PushSender(
            runtime.store, service.render_push, PushSettings(allow=["127.0.0.0/8"]), owner="t"
        )
        yield service


@pytest.fixture(params=["jsonrpc", "rest", "grpc"])
async def call(
    request: pytest.FixtureRequest, service: TaskService, tmp_path: Path
) -> AsyncIterator[Call]:
    if request.param == "grpc":
        certs = make_certs(tmp_path / "certs", "node", "alice")
        limits = Limits()
        tls = (certs / "node.pem", certs / "node-key.pem", [certs / "ca.pem"])
        server, port = bind("127.0.0.1", 0, limits, tls)
        await serve_service(server, A2AService(service, capabilities=CAPS, secure=True))
        try:
            yield over_grpc(Caller(mtls_channel(f"localhost:{port}", certs, "alice")))
        finally:
            await stop(server, 0)
        return
    app = create_app(
        CardDocument.of({"name": "t"}),
        jsonrpc_endpoint(service, capabilities=CAPS),
        rest=rest_endpoint(service, capabilities=CAPS),
        guard=Guard(),
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://node") as c:
        yield over_jsonrpc(c) if request.param == "jsonrpc" else over_rest(c)


async def task_with_configs(service: TaskService, call: Call, ids: list[str]) -> str:
    """A task awaiting input, with a push config of each of ``ids``, made in that order."""
    ask = {"messageId": "m-1", "role": "ROLE_USER", "parts": [{"text": "Lisbon"}]}
    ask["metadata"] = {"skill": "book"}
    sent = await call("SendMessage", {"message": ask})
    task_id: str = sent["task"]["id"]
    for config_id in ids:
        config = {"taskId": task_id, "id": config_id, "url": HOOK}
        assert (await call("CreateTaskPushNotificationConfig", config))["id"] == config_id
    return task_id


async def listed(call: Call, task_id: str, **paging: Any) -> tuple[list[str], str]:
    """The ids of one page of ``task_id``'s configs, and its ``nextPageToken``."""
    page = await call("ListTaskPushNotificationConfigs", {"taskId": task_id, **paging})
    assert "invalid" not in page, page
    return [c["id"] for c in page.get("configs", [])], page.get("nextPageToken", "")


async def test_a_page_size_pages_the_configs_and_the_last_page_says_no_more(
    service: TaskService, call: Call
) -> None:
    task_id = await task_with_configs(service, call, ["c1", "c2", "c3"])
    first, token = await listed(call, task_id, pageSize=1)
    assert first == ["c1"] and token
    second, token = await listed(call, task_id, pageSize=1, pageToken=token)
    assert second == ["c2"] and token
    third, token = await listed(call, task_id, pageSize=1, pageToken=token)
    assert (third, token) == (["c3"], "")
    two, token = await listed(call, task_id, pageSize=2)
    assert two == ["c1", "c2"] and token
    whole, token = await listed(call, task_id, pageSize=3)
    assert (whole, token) == (["c1", "c2", "c3"], "")  # exactly one page: no token
    assert await listed(call, task_id) == (["c1", "c2", "c3"], "")  # no size: all


async def test_a_config_deleted_between_pages_moves_no_other_across_them(
    service: TaskService, call: Call
) -> None:
    task_id = await task_with_configs(service, call, ["c1", "c2", "c3", "c4"])
    first, token = await listed(call, task_id, pageSize=2)
    assert first == ["c1", "c2"]
    await service.runtime.store.delete_push_config(task_id, "c1")
    rest, token = await listed(call, task_id, pageSize=2, pageToken=token)
    assert (rest, token) == (["c3", "c4"], "")


@pytest.mark.parametrize("size", [0, -1, 101])
async def test_a_page_size_out_of_1_to_100_is_invalid_params(
    service: TaskService, call: Call, size: int
) -> None:
    task_id = await task_with_configs(service, call, ["c1"])
    refused = await call("ListTaskPushNotificationConfigs", {"taskId": task_id, "pageSize": size})
    if size == 0 and "invalid" not in refused:  # gRPC: 0 is the field unset (proto3)
        assert [c["id"] for c in refused["configs"]] == ["c1"]
        return
    assert "pageSize" in refused["invalid"]


def _token(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


async def test_a_token_not_issued_for_the_task_is_invalid_params(
    service: TaskService, call: Call
) -> None:
    task_id = await task_with_configs(service, call, ["c1", "c2"])
    other = await task_with_configs(service, call, ["c1", "c2"])
    _, theirs = await listed(call, other, pageSize=1)
    for token in [
        "not a token",
        "bm90IGpzb24=",  # base64 of "not json"
        _token({"a": 1}),
        _token([task_id, "yesterday", "c1"]),
        "A" * 5000,
        theirs,  # another task's
    ]:
        params = {"taskId": task_id, "pageSize": 1, "pageToken": token}
        refused = await call("ListTaskPushNotificationConfigs", params)
        assert "pageToken is not one this agent issued" in refused["invalid"], token

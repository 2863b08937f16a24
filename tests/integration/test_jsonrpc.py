"""The JSON-RPC endpoint over a real Starlette app, with a fake TaskHandler."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.routing import Route
from support.fake_handler import SECRET, FakeHandler

from agent_node.a2a.protocol.error_table import ERROR_INFO_TYPE
from agent_node.a2a.protocol.models import SendMessageRequest, Task, TaskState, TaskStatus
from agent_node.a2a.server.jsonrpc import Limits, jsonrpc_endpoint

V10 = {"A2A-Version": "1.0"}
NO_CAPS: dict[str, Any] = {"streaming": False, "pushNotifications": False}


def make_client(
    handler: FakeHandler,
    capabilities: dict[str, Any] | None = None,
    limits: Limits | None = None,
) -> httpx.AsyncClient:
    endpoint = jsonrpc_endpoint(
        handler, capabilities=capabilities or NO_CAPS, limits=limits or Limits()
    )
    app = Starlette(routes=[Route("/a2a", endpoint, methods=["POST"])])
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://node")


@pytest.fixture
def handler() -> FakeHandler:
    return FakeHandler()


@pytest.fixture
async def client(handler: FakeHandler) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(handler) as c:
        yield c


def rpc(method: str, params: Any = None, id: Any = 1) -> dict[str, Any]:
    body: dict[str, Any] = {"jsonrpc": "2.0", "id": id, "method": method}
    if params is not None:
        body["params"] = params
    return body


def message(text: str = "hello", **fields: Any) -> dict[str, Any]:
    return {"messageId": "m-1", "role": "ROLE_USER", "parts": [{"text": text}], **fields}


def message_v03(text: str = "hello") -> dict[str, Any]:
    return {
        "kind": "message",
        "messageId": "m-1",
        "role": "user",
        "parts": [{"kind": "text", "text": text}],
    }


async def call(
    client: httpx.AsyncClient, body: Any, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    response = await client.post("/a2a", json=body, headers=V10 if headers is None else headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    document: dict[str, Any] = response.json()
    return document


def assert_error(document: dict[str, Any], code: int, reason: str | None) -> dict[str, Any]:
    """The error's code, and its ErrorInfo reason (1.0) or no ErrorInfo array (0.3)."""
    assert document["jsonrpc"] == "2.0"
    assert "result" not in document
    error: dict[str, Any] = document["error"]
    assert error["code"] == code, error
    assert isinstance(error["message"], str)
    if reason is None:
        assert not isinstance(error.get("data"), list)
    else:
        [info] = error["data"]
        assert info["@type"] == ERROR_INFO_TYPE
        assert info["reason"] == reason
    return error


# Happy paths, both versions


async def test_send_message_1_0(client: httpx.AsyncClient, handler: FakeHandler) -> None:
    document = await call(client, rpc("SendMessage", {"message": message()}, id="abc"))
    assert document["id"] == "abc"
    task = document["result"]["task"]
    assert task["status"]["state"] == "TASK_STATE_COMPLETED"
    assert "kind" not in task
    [(name, request, ctx)] = handler.calls
    assert name == "send_message"
    assert isinstance(request, SendMessageRequest)
    assert ctx.version == "1.0"


async def test_send_message_0_3_reaches_the_handler_as_1_0(
    client: httpx.AsyncClient, handler: FakeHandler
) -> None:
    params = {"message": message_v03(), "configuration": {"blocking": True}}
    document = await call(client, rpc("message/send", params, id=7), headers={})
    assert document["id"] == 7
    task = document["result"]
    assert task["kind"] == "task"
    assert task["status"]["state"] == "completed"
    assert task["history"][0]["parts"] == [{"kind": "text", "text": "hello"}]
    assert task["status"]["message"]["role"] == "agent"

    await call(client, rpc("SendMessage", {"message": message()}))
    (_, old, old_ctx), (_, new, new_ctx) = handler.calls
    assert type(old) is type(new) is SendMessageRequest
    assert old.message == new.message
    assert old.configuration is not None and old.configuration.return_immediately is False
    assert (old_ctx.version, new_ctx.version) == ("0.3", "1.0")


async def test_version_from_query_parameter(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/a2a?A2A-Version=1.0", json=rpc("SendMessage", {"message": message()})
    )
    assert "task" in response.json()["result"]


async def test_message_result_in_both_shapes(client: httpx.AsyncClient) -> None:
    new = await call(client, rpc("SendMessage", {"message": message("reply")}))
    assert new["result"]["message"]["role"] == "ROLE_AGENT"
    old = await call(client, rpc("message/send", {"message": message_v03("reply")}), headers={})
    assert old["result"]["kind"] == "message"
    assert old["result"]["parts"] == [{"kind": "text", "text": "hi"}]


async def test_get_list_cancel(client: httpx.AsyncClient, handler: FakeHandler) -> None:
    handler.tasks["t-1"] = Task(
        id="t-1", context_id="c-1", status=TaskStatus(state=TaskState.INPUT_REQUIRED)
    )
    got = await call(client, rpc("GetTask", {"id": "t-1", "historyLength": 0}))
    assert got["result"]["status"]["state"] == "TASK_STATE_INPUT_REQUIRED"
    old = await call(client, rpc("tasks/get", {"id": "t-1"}), headers={})
    assert old["result"]["status"]["state"] == "input-required"
    listed = await call(client, rpc("ListTasks", {"contextId": "c-1", "pageSize": 2}))
    assert [t["id"] for t in listed["result"]["tasks"]] == ["t-1"]
    assert listed["result"]["nextPageToken"] == ""
    canceled = await call(client, rpc("tasks/cancel", {"id": "t-1"}), headers={})
    assert canceled["result"]["status"]["state"] == "canceled"


async def test_0_3_caller_may_use_1_0_names(client: httpx.AsyncClient) -> None:
    document = await call(client, rpc("ListTasks", {}), headers={})
    assert document["result"]["tasks"] == []


async def test_call_context_from_headers(client: httpx.AsyncClient, handler: FakeHandler) -> None:
    headers = {
        **V10,
        "Idempotency-Key": "k" * 200,
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "A2A-Extensions": "https://ext.example/a, https://ext.example/b,,",
    }
    await call(client, rpc("SendMessage", {"message": message()}), headers=headers)
    [(_, _, ctx)] = handler.calls
    assert ctx.idempotency_key == "k" * 200
    assert ctx.traceparent == headers["traceparent"]
    assert ctx.extensions == ("https://ext.example/a", "https://ext.example/b")
    assert ctx.caller is None


async def test_unknown_fields_are_tolerated(client: httpx.AsyncClient) -> None:
    params = {"message": message(futureField={"x": 1}), "somethingNew": [1, 2]}
    document = await call(client, rpc("SendMessage", params))
    assert document["result"]["task"]["history"][0]["futureField"] == {"x": 1}


async def test_content_type_with_charset(client: httpx.AsyncClient) -> None:
    body = json.dumps(rpc("SendMessage", {"message": message()})).encode()
    headers = {**V10, "Content-Type": "application/json; charset=utf-8"}
    response = await client.post("/a2a", content=body, headers=headers)
    assert "task" in response.json()["result"]


# Errors before the method: transport and envelope


async def post_raw(
    client: httpx.AsyncClient, content: Any, content_type: str = "application/json"
) -> httpx.Response:
    return await client.post("/a2a", content=content, headers={**V10, "Content-Type": content_type})


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b'{"jsonrpc": "2.0",',
        b"",
        b"\xff\xfe{}",  # not UTF-8
        b'{"jsonrpc": "2.0", "id": "\xc3\x28", "method": "GetTask"}',  # invalid UTF-8 inside
        b"NaN",
        b'{"jsonrpc": "2.0", "id": 1e400, "method": "GetTask"}',
        b'{"jsonrpc": "2.0", "id": "\\ud800", "method": "GetTask"}',  # unpaired surrogate
    ],
)
async def test_parse_error(client: httpx.AsyncClient, body: bytes) -> None:
    response = await post_raw(client, body)
    assert response.status_code == 200
    document = response.json()
    assert document["id"] is None
    assert_error(document, -32700, "JSON_PARSE")


async def test_parse_error_0_3_has_no_error_info(client: httpx.AsyncClient) -> None:
    response = await client.post("/a2a", content=b"{", headers={"Content-Type": "application/json"})
    assert_error(response.json(), -32700, None)


async def test_content_type_checked_before_parsing(client: httpx.AsyncClient) -> None:
    response = await post_raw(client, b"not json at all", "text/plain")
    assert response.status_code == 200
    assert_error(response.json(), -32005, "CONTENT_TYPE_NOT_SUPPORTED")


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("a string", "object"),
        ([rpc("GetTask", {"id": "x"})], "batch"),
        ({"id": 1, "method": "GetTask"}, "jsonrpc"),
        ({"jsonrpc": "1.0", "id": 1, "method": "GetTask"}, "jsonrpc"),
        ({"jsonrpc": "2.0", "id": 1}, "method"),
        ({"jsonrpc": "2.0", "id": 1, "method": 5}, "method"),
        ({"jsonrpc": "2.0", "method": "GetTask"}, "id"),
        ({"jsonrpc": "2.0", "id": True, "method": "GetTask"}, "id"),
        ({"jsonrpc": "2.0", "id": [1], "method": "GetTask"}, "id"),
        ({"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": [1]}, "params"),
    ],
)
async def test_invalid_request(client: httpx.AsyncClient, body: Any, fragment: str) -> None:
    error = assert_error(await call(client, body), -32600, "INVALID_REQUEST")
    assert fragment in error["message"]


async def test_invalid_request_keeps_a_valid_id(client: httpx.AsyncClient) -> None:
    document = await call(client, {"jsonrpc": "2.0", "id": "r-9", "method": None})
    assert document["id"] == "r-9"


async def test_too_deep(client: httpx.AsyncClient, handler: FakeHandler) -> None:
    nested: Any = "x"
    for _ in range(40):
        nested = [nested]
    params = {"message": message(), "metadata": {"deep": nested}}
    assert_error(await call(client, rpc("SendMessage", params)), -32600, "INVALID_REQUEST")
    very_deep = b"[" * 100_000 + b"]" * 100_000
    response = await post_raw(client, very_deep)
    assert_error(response.json(), -32600, "INVALID_REQUEST")
    assert handler.calls == []


async def test_too_large_by_content_length(client: httpx.AsyncClient) -> None:
    padding = "x" * (1024 * 1024)
    response = await client.post("/a2a", json=rpc("GetTask", {"id": padding}), headers=V10)
    assert response.status_code == 413
    error = assert_error(response.json(), -32600, "INVALID_REQUEST")
    assert "request body too large" in error["message"]
    assert "limit 1048576" in error["message"]


async def test_too_large_chunked_without_content_length(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": "'
        for _ in range(20):
            yield b"x" * 65536
        yield b'"}}'

    request = client.build_request(
        "POST", "/a2a", content=chunks(), headers={**V10, "Content-Type": "application/json"}
    )
    assert "content-length" not in request.headers
    response = await client.send(request)
    assert response.status_code == 413
    assert_error(response.json(), -32600, "INVALID_REQUEST")


async def test_lying_content_length_is_counted(handler: FakeHandler) -> None:
    async with make_client(handler, limits=Limits(max_body_bytes=100)) as client:
        body = json.dumps(rpc("GetTask", {"id": "y" * 200})).encode()
        request = client.build_request(
            "POST", "/a2a", content=body, headers={**V10, "Content-Type": "application/json"}
        )
        request.headers["Content-Length"] = "10"
        response = await client.send(request)
    assert response.status_code == 413


@pytest.mark.parametrize(
    ("version", "method", "served"),
    [
        ("1.0.1", "GetTask", "1.0"),
        ("1.0.12", "GetTask", "1.0"),
        (" 1.0 ", "GetTask", "1.0"),
        ("0.3.0", "tasks/get", "0.3"),
    ],
)
async def test_patch_numbers_are_ignored(
    client: httpx.AsyncClient, handler: FakeHandler, version: str, method: str, served: str
) -> None:
    """§3.6: a version is matched by major.minor; the patch number MUST be ignored."""
    document = await call(client, rpc(method, {"id": "x"}), {"A2A-Version": version})
    assert document["error"]["code"] == -32001, document  # the handler's: no such task
    response = await client.post(f"/a2a?A2A-Version={version}", json=rpc(method, {"id": "x"}))
    assert response.json()["error"]["code"] == -32001
    assert [ctx.version for _, _, ctx in handler.calls] == [served, served]


@pytest.mark.parametrize("version", ["9.9", "1.1", "0.2", "1", "1.0.x", "1.0.1.2", "v1.0"])
async def test_version_not_supported(
    client: httpx.AsyncClient, handler: FakeHandler, version: str
) -> None:
    document = await call(client, rpc("GetTask", {"id": "x"}), {"A2A-Version": version})
    assert_error(document, -32009, "VERSION_NOT_SUPPORTED")  # in the newest version's shape
    response = await client.post(f"/a2a?A2A-Version={version}", json=rpc("GetTask", {"id": "x"}))
    assert response.json()["error"]["code"] == -32009
    assert handler.calls == []


# Errors of the method and its params


@pytest.mark.parametrize(
    ("method", "headers"),
    [
        ("NoSuchMethod", V10),
        ("message/send", V10),  # 0.3 names only for 0.3 callers
        ("tasks/list", {}),
        ("sendmessage", V10),
    ],
)
async def test_method_not_found(
    client: httpx.AsyncClient, method: str, headers: dict[str, str]
) -> None:
    document = await call(client, rpc(method, {}), headers)
    assert document["error"]["code"] == -32601


async def test_method_not_found_error_info(client: httpx.AsyncClient) -> None:
    assert_error(await call(client, rpc("Nope")), -32601, "METHOD_NOT_FOUND")
    assert_error(await call(client, rpc("Nope"), headers={}), -32601, None)


def many_parts(n: int) -> dict[str, Any]:
    return message(parts=[{"text": str(i)} for i in range(n)])


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({}, "message"),
        ({"message": "hello"}, "message"),
        ({"message": message(parts=[])}, "parts"),
        ({"message": message(parts=[{"text": "a", "url": "b"}])}, "parts.0"),
        ({"message": message(parts=[{"raw": "not base64!"}])}, "parts.0"),
        ({"message": message(role="ROLE_KING")}, "role"),
        ({"message": {**message(), "messageId": 5}}, "messageId"),
        ({"message": many_parts(65)}, "65 parts, limit 64"),
        ({"message": message("x" * (256 * 1024 + 1))}, "limit 262144"),
    ],
)
async def test_invalid_params(
    client: httpx.AsyncClient, handler: FakeHandler, params: Any, fragment: str
) -> None:
    error = assert_error(await call(client, rpc("SendMessage", params)), -32602, "INVALID_PARAMS")
    assert fragment in error["message"]
    assert handler.calls == []


async def test_part_limits_at_the_edge(client: httpx.AsyncClient) -> None:
    at_limit = {"message": message("x" * (256 * 1024), parts=None)}
    at_limit["message"]["parts"] = [{"text": "x" * (256 * 1024)}] + [{"text": "y"}] * 63
    assert "task" in (await call(client, rpc("SendMessage", at_limit)))["result"]


async def test_invalid_params_0_3(client: httpx.AsyncClient, handler: FakeHandler) -> None:
    bad_part = {**message_v03(), "parts": [{"kind": "file"}]}
    for params in [{}, {"message": "x"}, {"message": bad_part}]:
        document = await call(client, rpc("message/send", params), headers={})
        assert_error(document, -32602, None)
    assert handler.calls == []


async def test_invalid_params_other_methods(client: httpx.AsyncClient) -> None:
    assert_error(await call(client, rpc("GetTask", {"id": 5})), -32602, "INVALID_PARAMS")
    document = await call(client, rpc("ListTasks", {"pageSize": 1000}))
    assert "pageSize" in assert_error(document, -32602, "INVALID_PARAMS")["message"]


async def test_a_negative_history_length_is_invalid_params(
    client: httpx.AsyncClient, handler: FakeHandler
) -> None:
    """§3.2.4: historyLength is unset, 0 or a positive count; -1 is the caller's mistake."""
    send = {"message": message(), "configuration": {"historyLength": -1}}
    for method, params in [
        ("GetTask", {"id": "t-1", "historyLength": -1}),
        ("ListTasks", {"historyLength": -5}),
        ("SendMessage", send),
    ]:
        document = await call(client, rpc(method, params))
        assert "historyLength" in assert_error(document, -32602, "INVALID_PARAMS")["message"]
    old = await call(client, rpc("tasks/get", {"id": "t-1", "historyLength": -1}), headers={})
    assert_error(old, -32602, None)
    assert handler.calls == []


async def test_idempotency_key_too_long(client: httpx.AsyncClient, handler: FakeHandler) -> None:
    headers = {**V10, "Idempotency-Key": "k" * 201}
    document = await call(client, rpc("SendMessage", {"message": message()}), headers)
    assert_error(document, -32602, "INVALID_PARAMS")
    assert handler.calls == []


# Errors from the handler


async def test_internal_error_hides_the_exception(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="agent_node.a2a.server.jsonrpc"):
        response = await client.post(
            "/a2a", json=rpc("SendMessage", {"message": message("crash")}, id=3), headers=V10
        )
    assert response.status_code == 200
    assert SECRET not in response.text
    assert "Traceback" not in response.text
    document = response.json()
    assert document["id"] == 3
    error = assert_error(document, -32603, "INTERNAL")
    assert error["message"] == "internal error"
    assert SECRET in caplog.text


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (-32001, "TASK_NOT_FOUND"),
        (-32002, "TASK_NOT_CANCELABLE"),
        (-32004, "UNSUPPORTED_OPERATION"),
    ],
)
async def test_handler_errors_pass_through(
    client: httpx.AsyncClient, code: int, reason: str
) -> None:
    params = {"message": message(f"raise:{code}")}
    assert_error(await call(client, rpc("SendMessage", params)), code, reason)
    old = await call(client, rpc("message/send", {"message": message_v03(f"raise:{code}")}), {})
    assert_error(old, code, None)


async def test_task_errors_from_real_state(client: httpx.AsyncClient) -> None:
    assert_error(await call(client, rpc("GetTask", {"id": "nope"})), -32001, "TASK_NOT_FOUND")
    sent = await call(client, rpc("SendMessage", {"message": message()}))
    task_id = sent["result"]["task"]["id"]
    document = await call(client, rpc("CancelTask", {"id": task_id}))
    assert_error(document, -32002, "TASK_NOT_CANCELABLE")
    follow_up = {"message": message(taskId=task_id)}
    assert_error(await call(client, rpc("SendMessage", follow_up)), -32004, "UNSUPPORTED_OPERATION")


# Methods answered from capabilities


PUSH_PARAMS: dict[str, Any] = {"taskId": "t", "id": "c", "url": "https://example.com/hook"}
GATED = [
    ("SendStreamingMessage", {"message": message()}, -32004, "UNSUPPORTED_OPERATION"),
    ("SubscribeToTask", {"id": "t"}, -32004, "UNSUPPORTED_OPERATION"),
    ("CreateTaskPushNotificationConfig", PUSH_PARAMS, -32003, "PUSH_NOTIFICATION_NOT_SUPPORTED"),
    ("GetTaskPushNotificationConfig", {"taskId": "t", "id": "c"}, -32003, None),
    ("ListTaskPushNotificationConfigs", {"taskId": "t"}, -32003, None),
    ("DeleteTaskPushNotificationConfig", {"taskId": "t", "id": "c"}, -32003, None),
    # A2A 1.0 §3.3.4: not declared -> UnsupportedOperation (0.3 knew only -32007).
    ("GetExtendedAgentCard", {}, -32004, "UNSUPPORTED_OPERATION"),
]
GATED_V03 = [
    ("tasks/pushNotificationConfig/set", {"taskId": "t"}, -32003),
    ("tasks/pushNotificationConfig/get", {"id": "t"}, -32003),
    ("tasks/pushNotificationConfig/list", {"id": "t"}, -32003),
    ("tasks/pushNotificationConfig/delete", {"id": "t"}, -32003),
    ("agent/getAuthenticatedExtendedCard", {}, -32007),
]


@pytest.mark.parametrize(("method", "params", "code", "reason"), GATED)
async def test_capability_gated(
    client: httpx.AsyncClient,
    handler: FakeHandler,
    method: str,
    params: dict[str, Any],
    code: int,
    reason: str | None,
) -> None:
    error = await call(client, rpc(method, params))
    if reason is not None:
        assert_error(error, code, reason)
    assert error["error"]["code"] == code
    assert handler.calls == []


async def test_streaming_message_text(client: httpx.AsyncClient) -> None:
    document = await call(client, rpc("SendStreamingMessage", {"message": message()}))
    assert document["error"]["message"] == "streaming is not supported by this agent"


@pytest.mark.parametrize(("method", "params", "code"), GATED_V03)
async def test_capability_gated_0_3(
    client: httpx.AsyncClient, method: str, params: dict[str, Any], code: int
) -> None:
    assert_error(await call(client, rpc(method, params), headers={}), code, None)


@pytest.mark.parametrize(
    ("method", "params"),
    [("message/stream", {"message": message_v03()}), ("tasks/resubscribe", {"id": "t"})],
)
async def test_a_0_3_stream_refused_is_an_event_stream_of_the_error(
    client: httpx.AsyncClient, handler: FakeHandler, method: str, params: dict[str, Any]
) -> None:
    """0.3 clients of a streaming method (a2a-sdk 0.3, @a2a-js/sdk 0.3) read
    only ``text/event-stream``: the error comes as its one event."""
    response = await client.post("/a2a", json=rpc(method, params, id="s-1"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    lines = [line for line in response.text.splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("data: ")
    document = json.loads(lines[0].removeprefix("data: "))
    assert document["id"] == "s-1"
    assert_error(document, -32004, None)
    assert handler.calls == []


async def test_declared_but_unimplemented_capabilities(handler: FakeHandler) -> None:
    caps = {"streaming": True, "pushNotifications": True, "extendedAgentCard": True}
    async with make_client(handler, capabilities=caps) as client:
        for method, params, _, _ in GATED:
            document = await call(client, rpc(method, params))
            assert document["error"]["code"] in (-32004, -32007)
        declared = await call(client, rpc("GetExtendedAgentCard", {}))
        assert_error(declared, -32007, "EXTENDED_AGENT_CARD_NOT_CONFIGURED")
    assert handler.calls == []


# Fuzzing: every answer is a well-formed JSON-RPC response, never a 500

METHODS = ["SendMessage", "GetTask", "ListTasks", "CancelTask", "message/send", "tasks/get"]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
envelopes = st.fixed_dictionaries(
    {
        "jsonrpc": st.sampled_from(["2.0", "2.0", "1.0"]),
        "method": st.sampled_from(METHODS) | st.text(max_size=30),
        "params": json_values
        | st.fixed_dictionaries({"message": json_values})
        | st.fixed_dictionaries({"id": json_values}),
    },
    optional={"id": st.none() | st.integers() | st.text(max_size=10) | json_values},
)
nested_arrays = st.integers(min_value=0, max_value=200).map(lambda n: ("[" * n + "]" * n).encode())
parts = st.one_of(
    st.fixed_dictionaries({"text": st.text(max_size=20)}),
    st.fixed_dictionaries({"data": json_values}),
    st.fixed_dictionaries({"raw": st.binary(max_size=20).map(base64.b64encode).map(bytes.decode)}),
    st.fixed_dictionaries({"url": st.text(max_size=20)}, optional={"text": st.text(max_size=5)}),
)
sends = st.fixed_dictionaries(
    {
        "jsonrpc": st.just("2.0"),
        "id": st.integers(),
        "method": st.just("SendMessage"),
        "params": st.fixed_dictionaries(
            {
                "message": st.fixed_dictionaries(
                    {
                        "messageId": st.text(max_size=10),
                        "role": st.sampled_from(["ROLE_USER", "ROLE_AGENT", "user", 1, 0]),
                        "parts": st.lists(parts, max_size=3),
                    },
                    optional={"taskId": st.sampled_from(["t-1", "missing"]), "extra": json_values},
                )
            },
            optional={"configuration": json_values, "metadata": json_values},
        ),
    }
)
bodies = (
    sends.map(lambda v: json.dumps(v).encode())
    | envelopes.map(lambda v: json.dumps(v).encode())
    | json_values.map(lambda v: json.dumps(v).encode())
    | st.binary(max_size=200)
    | nested_arrays
)


def assert_well_formed(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code in (200, 413)
    assert response.headers["content-type"] == "application/json"
    document: dict[str, Any] = response.json()
    assert document["jsonrpc"] == "2.0"
    assert "id" in document
    assert ("result" in document) != ("error" in document)
    if "error" in document:
        assert isinstance(document["error"]["code"], int)
        assert isinstance(document["error"]["message"], str)
    return document


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=bodies, version=st.sampled_from(["1.0", "", "0.3", "2"]))
async def test_fuzz_never_a_500(body: bytes, version: str) -> None:
    handler = FakeHandler()
    handler.tasks["t-1"] = Task(id="t-1", status=TaskStatus(state=TaskState.WORKING))
    before = handler.snapshot()
    async with make_client(handler) as client:
        response = await client.post(
            "/a2a",
            content=body,
            headers={"Content-Type": "application/json", "A2A-Version": version},
        )
    document = assert_well_formed(response)
    event(f"code {document['error']['code']}" if "error" in document else "result")
    if "error" in document:
        assert handler.snapshot() == before

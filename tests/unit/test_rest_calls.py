"""A delegation's calls over HTTP+JSON: each operation as its resource, and a
peer's AIP-193 errors judged as its JSON-RPC errors are."""

from __future__ import annotations

import httpx
import pytest

from agent_node.a2a.peers.discovery import PeerCard
from agent_node.a2a.peers.peer_errors import PeerError
from agent_node.a2a.peers.rest_calls import rest_call, rest_result

CARD = PeerCard(
    name="b",
    base_url="https://b.example",
    card={},
    endpoint="https://b.example/rest/",
    version="1.0",
    identity=None,
    etag=None,
    fetched_at=0.0,
    expires_at=0.0,
    signed_by=None,
    card_url="https://b.example/.well-known/agent-card.json",
    binding="HTTP+JSON",
)


def aip193(status: int, reason: str, message: str = "no") -> httpx.Response:
    info = {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason}
    body = {"error": {"code": status, "status": "X", "message": message, "details": [info]}}
    return httpx.Response(status, json=body)


def test_each_operation_is_its_resource() -> None:
    send = rest_call(CARD.endpoint, "SendMessage", {"message": {"messageId": "m"}})
    assert (send.method, send.url, send.body) == (
        "POST",
        "https://b.example/rest/message:send",
        {"message": {"messageId": "m"}},
    )
    get = rest_call(CARD.endpoint, "GetTask", {"id": "t/1", "historyLength": 0})
    assert (get.method, get.url, dict(get.query)) == (
        "GET",
        "https://b.example/rest/tasks/t%2F1",
        {"historyLength": "0"},
    )
    assert rest_call(CARD.endpoint, "CancelTask", {"id": "t"}).url.endswith("/tasks/t:cancel")
    subscribe = rest_call(CARD.endpoint, "SubscribeToTask", {"id": "t"})
    assert (subscribe.method, subscribe.url) == ("GET", "https://b.example/rest/tasks/t:subscribe")
    listed = rest_call(CARD.endpoint, "ListTasks", {"contextId": "c", "pageSize": 10})
    assert (listed.method, listed.url, listed.body) == ("GET", "https://b.example/rest/tasks", None)
    assert dict(listed.query) == {"contextId": "c", "pageSize": "10"}
    with pytest.raises(ValueError):
        rest_call(CARD.endpoint, "DeleteTaskPushNotificationConfig", {})


def test_an_answer_is_its_json_object() -> None:
    task = {"id": "t", "status": {"state": "TASK_STATE_WORKING"}}
    assert rest_result(CARD, "GetTask", httpx.Response(200, json=task)) == task


@pytest.mark.parametrize(
    ("response", "code", "transient"),
    [
        (aip193(404, "TASK_NOT_FOUND"), -32001, False),
        (aip193(400, "TASK_NOT_CANCELABLE"), -32002, False),
        (aip193(500, "INTERNAL"), -32603, True),
        (aip193(400, "SOMETHING_NEW"), None, False),  # unknown: by its status
        (aip193(503, "SOMETHING_NEW"), None, True),
        (httpx.Response(502, text="<html>Bad gateway</html>"), None, True),
        (httpx.Response(404, text="not here"), None, False),
    ],
)
def test_errors_say_whether_trying_again_may_help(
    response: httpx.Response, code: int | None, transient: bool
) -> None:
    with pytest.raises(PeerError) as failed:
        rest_result(CARD, "CancelTask", response)
    assert (failed.value.code, failed.value.transient) == (code, transient)
    assert "peer 'b'" in str(failed.value) and "https://" not in str(failed.value)

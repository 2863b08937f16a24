"""The official a2a-sdk client (1.x) against a running node: interop, not mocks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from a2a.client import A2ACardResolver, ClientConfig, create_client
from a2a.types import (
    AuthenticationInfo,
    CancelTaskRequest,
    DeleteTaskPushNotificationConfigRequest,
    GetTaskPushNotificationConfigRequest,
    GetTaskRequest,
    ListTaskPushNotificationConfigsRequest,
    ListTasksRequest,
    Message,
    Part,
    Role,
    SendMessageRequest,
    StreamResponse,
    SubscribeToTaskRequest,
    TaskPushNotificationConfig,
    TaskState,
)
from google.protobuf import json_format
from support.nodes import serving
from support.webhook import receiving

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def node_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serving(tmp_path_factory.mktemp("interop")) as url:
        yield url


@pytest.fixture
async def client(node_url: str) -> AsyncIterator[object]:
    async with httpx.AsyncClient(timeout=30) as http:
        sdk = await create_client(node_url, ClientConfig(streaming=False, httpx_client=http))
        yield sdk
        await sdk.close()


def message(text: str, **fields: object) -> Message:
    return Message(message_id="sdk-1", role=Role.ROLE_USER, parts=[Part(text=text)], **fields)


def data_message(data: dict[str, object], **fields: object) -> Message:
    body = {"messageId": "sdk-2", "role": "ROLE_USER", "parts": [{"data": data}], **fields}
    return json_format.ParseDict(body, Message())


async def only_task(client: object, request: SendMessageRequest) -> object:
    responses = [r async for r in client.send_message(request)]  # type: ignore[attr-defined]
    assert len(responses) == 1 and responses[0].HasField("task")
    return responses[0].task


async def test_discover_and_send_blocking(client: object) -> None:
    request = SendMessageRequest(message=data_message({"name": "Ada Lovelace"}))
    task = await only_task(client, request)
    assert task.status.state == TaskState.TASK_STATE_COMPLETED  # type: ignore[attr-defined]
    (artifact,) = task.artifacts  # type: ignore[attr-defined]
    output = json_format.MessageToDict(artifact)["parts"][-1]["data"]
    assert output == {
        "greeting": "Hello, Ada Lovelace!",
        "verdict": "Ada Lovelace is a long name (11 letters)",
    }


async def test_send_non_blocking_then_get_and_list(client: object, node_url: str) -> None:
    request = SendMessageRequest(message=data_message({"name": "Grace"}, contextId="sdk-ctx"))
    request.configuration.return_immediately = True
    task = await only_task(client, request)
    for _ in range(100):
        got = await client.get_task(GetTaskRequest(id=task.id))  # type: ignore[attr-defined]
        if got.status.state == TaskState.TASK_STATE_COMPLETED:
            break
        await asyncio.sleep(0.05)
    assert got.status.state == TaskState.TASK_STATE_COMPLETED
    assert got.context_id == "sdk-ctx"
    listed = await client.list_tasks(ListTasksRequest(context_id="sdk-ctx"))  # type: ignore[attr-defined]
    assert [t.id for t in listed.tasks] == [task.id]  # type: ignore[attr-defined]


async def test_input_required_answer_and_cancel(client: object) -> None:
    book = message("Lisbon")
    book.metadata.update({"skill": "book"})
    asked = await only_task(client, SendMessageRequest(message=book))
    assert asked.status.state == TaskState.TASK_STATE_INPUT_REQUIRED  # type: ignore[attr-defined]
    answer = message("early May", task_id=asked.id)  # type: ignore[attr-defined]
    done = await only_task(client, SendMessageRequest(message=answer))
    assert done.status.state == TaskState.TASK_STATE_COMPLETED  # type: ignore[attr-defined]
    other = await only_task(client, SendMessageRequest(message=book))
    canceled = await client.cancel_task(CancelTaskRequest(id=other.id))  # type: ignore[attr-defined]
    assert canceled.status.state == TaskState.TASK_STATE_CANCELED


async def test_an_unknown_task_is_task_not_found(client: object) -> None:
    with pytest.raises(Exception) as caught:
        await client.get_task(GetTaskRequest(id="no-such-task"))  # type: ignore[attr-defined]
    assert type(caught.value).__name__ == "TaskNotFoundError", repr(caught.value)


async def test_streaming_send_and_subscribe(node_url: str) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        card = await A2ACardResolver(http, node_url).get_agent_card()
        assert card.capabilities.streaming  # the node declares it; the client relies on it
        sdk = await create_client(card, ClientConfig(streaming=True, httpx_client=http))
        try:
            greet = SendMessageRequest(message=data_message({"name": "Ada"}))
            done = [e async for e in sdk.send_message(greet)]
            assert done[0].HasField("task") and done[-1].HasField("status_update")
            assert done[-1].status_update.status.state == TaskState.TASK_STATE_COMPLETED
            assert [e for e in done if e.HasField("artifact_update")]

            book = message("Lisbon")
            book.metadata.update({"skill": "book"})
            asked = [e async for e in sdk.send_message(SendMessageRequest(message=book))]
            last = asked[-1].status_update
            assert last.status.state == TaskState.TASK_STATE_INPUT_REQUIRED
            subscription = sdk.subscribe(SubscribeToTaskRequest(id=last.task_id))
            first = await anext(subscription)
            assert first.task.status.state == TaskState.TASK_STATE_INPUT_REQUIRED
            answer = message("early May", task_id=last.task_id)
            answered = [e async for e in sdk.send_message(SendMessageRequest(message=answer))]
            assert answered[-1].status_update.status.state == TaskState.TASK_STATE_COMPLETED
            followed = [e async for e in subscription]
            assert followed[-1].status_update.status.state == TaskState.TASK_STATE_COMPLETED
        finally:
            await sdk.close()


async def test_push_configs_and_delivery(client: object) -> None:
    sdk: Any = client
    async with receiving() as hook:
        auth = AuthenticationInfo(scheme="Bearer", credentials="sdk-cred")
        push = TaskPushNotificationConfig(id="sdk-push", url=f"{hook.url}/a2a-hook", token="t-1")
        push.authentication.CopyFrom(auth)
        book = message("Lisbon")
        book.metadata.update({"skill": "book"})
        request = SendMessageRequest(message=book)
        request.configuration.task_push_notification_config.CopyFrom(push)
        asked = await only_task(sdk, request)

        extra = TaskPushNotificationConfig(
            task_id=asked.id, id="extra", url="https://example.com/tck-push-webhook"
        )
        created = await sdk.create_task_push_notification_config(extra)
        assert (created.task_id, created.id, created.url) == (asked.id, "extra", extra.url)
        got = await sdk.get_task_push_notification_config(
            GetTaskPushNotificationConfigRequest(task_id=asked.id, id="sdk-push")
        )
        assert got.url == push.url and got.authentication.credentials == "sdk-cred"
        listed = await sdk.list_task_push_notification_configs(
            ListTaskPushNotificationConfigsRequest(task_id=asked.id)
        )
        assert sorted(c.id for c in listed.configs) == ["extra", "sdk-push"]
        delete = DeleteTaskPushNotificationConfigRequest(task_id=asked.id, id="extra")
        await sdk.delete_task_push_notification_config(delete)
        await sdk.delete_task_push_notification_config(delete)  # idempotent

        await only_task(sdk, SendMessageRequest(message=message("May", task_id=asked.id)))
        await hook.wait_for(
            lambda pushes: any(
                p.body["task"]["status"]["state"] == "TASK_STATE_COMPLETED" for p in pushes
            ),
            "the completed task's push",
        )
    for received in hook.accepted():
        assert received.path == "/a2a-hook"
        assert received.headers["authorization"] == "Bearer sdk-cred"
        assert received.headers["x-a2a-notification-token"] == "t-1"
        parsed = json_format.ParseDict(received.body, StreamResponse())
        assert parsed.task.id == asked.id

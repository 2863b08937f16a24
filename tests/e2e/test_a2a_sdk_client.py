"""The official a2a-sdk client (1.x) against a running node: interop, not mocks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from a2a.client import A2ACardResolver, ClientConfig, create_client
from a2a.types import (
    CancelTaskRequest,
    GetTaskRequest,
    ListTasksRequest,
    Message,
    Part,
    Role,
    SendMessageRequest,
    SubscribeToTaskRequest,
    TaskState,
)
from google.protobuf import json_format
from support.nodes import serving

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

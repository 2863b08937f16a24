"""acceptedOutputModes: parts a client does not accept are not sent, and a
task none of whose output it accepts fails, saying why."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from support.workflows import echo

from agent_node import Runtime
from agent_node.a2a.protocol.models import (
    GetTaskRequest,
    ListTasksRequest,
    Message,
    Part,
    Role,
    SendMessageConfiguration,
    SendMessageRequest,
    Task,
    TaskState,
)
from agent_node.a2a.server.handler import CallContext
from agent_node.a2a.server.output_modes import accepts
from agent_node.a2a.server.tasks import TaskService

CTX = CallContext()


@pytest.fixture
async def service(durable_url: str) -> AsyncIterator[TaskService]:
    async with Runtime(durable_url, scope="all", poll_interval=0.05) as runtime:
        yield TaskService(runtime, {"echo": echo(end=True).compile()})


async def send(service: TaskService, *modes: str) -> Task:
    message = Message(message_id="m", role=Role.USER, parts=[Part(text="hi")])
    config = SendMessageConfiguration(accepted_output_modes=list(modes))
    task = (
        await service.send_message(SendMessageRequest(message=message, configuration=config), CTX)
    ).task
    assert task is not None
    return task


def parts(task: Task) -> list[dict[str, Any]]:
    return [p.to_json() for a in task.artifacts or [] for p in a.parts]


async def test_only_accepted_parts_are_sent(service: TaskService) -> None:
    everything = await send(service)
    assert parts(everything) == [{"text": "echo: hi"}, {"data": {"reply": "echo: hi"}}]
    assert parts(await send(service, "application/json")) == [{"data": {"reply": "echo: hi"}}]
    text = await send(service, "text/*; charset=utf-8")
    assert text.status.state == TaskState.COMPLETED and parts(text) == [{"text": "echo: hi"}]
    # The modes stay with the task: read again, it is shown the same way.
    again = await service.get_task(GetTaskRequest(id=text.id), CTX)
    assert parts(again) == [{"text": "echo: hi"}]


async def test_a_task_whose_output_is_in_no_accepted_mode_fails_saying_why(
    service: TaskService,
) -> None:
    task = await send(service, "image/png")
    assert task.status.state == TaskState.FAILED and task.artifacts is None
    assert task.status.message is not None
    assert task.status.message.parts[0].text == (
        "the task's output is in application/json, text/plain; none of it is in an"
        " accepted output mode (image/png)"
    )
    listed = await service.list_tasks(ListTasksRequest(), CTX)
    shown = {t.id: t.status.state for t in listed.tasks}
    assert shown[task.id] == TaskState.FAILED


def test_wildcards_parameters_and_case() -> None:
    assert accepts(["*/*"], "image/png") and accepts(["TEXT/*"], "text/markdown")
    assert accepts(["application/json; q=0.9"], "application/json")
    assert not accepts(["text/plain"], "text/markdown")
    assert not accepts(["application/*"], "text/plain")

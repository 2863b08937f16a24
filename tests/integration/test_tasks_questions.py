"""A task asking again while it is read: the status shows the question asked.

``GetTask`` reads the task's log, then its waits. Our caller's answer may
land in between and the workflow ask its next question at once (a node
relaying a foreign peer's second question does, within milliseconds): the
waits then hold a question the log read before does not. The status must
still say that question, not a generic prompt.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import BaseModel

from agent_node import Runtime, Workflow
from agent_node.a2a.protocol.models import (
    GetTaskRequest,
    Message,
    Part,
    Role,
    SendMessageRequest,
    TaskState,
)
from agent_node.a2a.server.handler import CallContext
from agent_node.a2a.server.tasks import TaskService
from agent_node.engine import faults

CTX = CallContext()


class Quest(BaseModel):
    text: str = ""
    name: str | None = None
    quest: str | None = None
    reply: str = ""


def twice() -> Workflow:
    wf = Workflow("twice", version="1", description="Asks two questions.")
    wf.state(Quest)
    wf.wait("name", input="What is your name?", output="name")
    wf.wait("quest", input="What is your quest?", output="quest")

    @wf.step
    async def greet(s: Quest) -> dict[str, Any]:
        return {"reply": f"{s.name} seeks {s.quest}"}

    wf.end("done", output=["reply"])
    return wf


@pytest.fixture
async def service(durable_url: str) -> AsyncIterator[TaskService]:
    async with Runtime(durable_url, scope="all", poll_interval=0.05) as runtime:
        yield TaskService(runtime, {"twice": twice().compile()}, default_skill="twice")
    faults.disarm()


def send(text: str, task_id: str | None = None) -> SendMessageRequest:
    message = Message(message_id=f"m-{text}", role=Role.USER, parts=[Part(text=text)])
    message.task_id = task_id
    return SendMessageRequest(message=message)


async def test_a_question_asked_while_the_task_is_read_is_the_one_shown(
    service: TaskService,
) -> None:
    asked = (await service.send_message(send("hello"), CTX)).task
    assert asked is not None and asked.status.message is not None
    assert asked.status.message.parts[0].text == "What is your name?"

    async def answer_meanwhile(_point: str, _record: Any) -> None:
        faults.on("task_render", None)  # once: the answer's own reply renders too
        again = (await service.send_message(send("Arthur", asked.id), CTX)).task
        assert again is not None and again.status.state == TaskState.INPUT_REQUIRED

    faults.on("task_render", answer_meanwhile)
    read = await service.get_task(GetTaskRequest(id=asked.id), CTX)
    assert read.status.state == TaskState.INPUT_REQUIRED and read.status.message is not None
    assert read.status.message.parts[0].text == "What is your quest?"
    assert read.history is not None and read.history[-1] == read.status.message

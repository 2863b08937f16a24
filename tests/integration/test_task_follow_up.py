"""A message to a task that asks nothing: refused in A2A terms, saying what
the task does instead (found by an integrator's walk: the refusal named the
engine's waits, "it waits for 'delegation:…/ask/1'")."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import BaseModel
from support.delegation_rig import delegating, rig, until

from agent_node import Runtime, Workflow
from agent_node.a2a.protocol.errors import InvalidParams, UnsupportedOperation
from agent_node.a2a.protocol.models import (
    Message,
    Part,
    Role,
    SendMessageConfiguration,
    SendMessageRequest,
)
from agent_node.a2a.server.handler import CallContext
from agent_node.a2a.server.tasks import TaskService

CTX = CallContext()
AT_ONCE = SendMessageConfiguration(return_immediately=True)


class Nap(BaseModel):
    text: str = ""


class Age(BaseModel):
    text: str = ""
    age: int = 0


def send(text: str, task_id: str | None = None) -> SendMessageRequest:
    message = Message(message_id=f"m-{text}", role=Role.USER, parts=[Part(text=text)])
    message.task_id = task_id
    return SendMessageRequest(message=message, configuration=AT_ONCE)


async def refusal(service: TaskService, task_id: str) -> str:
    try:
        await service.send_message(send("are you there?", task_id), CTX)
    except UnsupportedOperation as exc:
        return exc.message
    raise AssertionError("the message was taken")


async def test_a_task_on_its_delegation_says_it_works_for_the_peer(store_url: str) -> None:
    async with rig(store_url) as r:
        service = TaskService(r.runtime, {"hand": delegating("hang")})
        task = (await service.send_message(send("go"), CTX)).task
        assert task is not None

        async def delegated() -> bool:
            return await r.row(task.id) is not None

        await until(delegated, "the delegation row")
        said = await refusal(service, task.id)
    assert said == (
        f"task {task.id} is not asking for input or authorization;"
        " it is working (it waits for its delegation to peer 'p')"
    )


async def test_a_task_on_a_timer_says_it_works(durable_url: str) -> None:
    napping = Workflow("napping", version="1")
    napping.state(Nap)
    napping.wait("nap", duration="1h")
    async with Runtime(durable_url, scope="all", poll_interval=0.05) as runtime:
        service = TaskService(runtime, {"nap": napping.compile()})
        task = (await service.send_message(send("zz"), CTX)).task
        assert task is not None
        while (record := await runtime.store.get(task.id)) and record.status != "waiting":
            await asyncio.sleep(0.02)
        said = await refusal(service, task.id)
    assert said == (
        f"task {task.id} is not asking for input or authorization;"
        " it is working (it waits for a timer)"
    )
    assert "event" not in said and "'input'" not in said


async def test_an_answer_that_does_not_fit_is_invalid_params(durable_url: str) -> None:
    """The task asks: a refused answer is the answer's fault, not a task
    that asks nothing."""
    asking = Workflow("asking", version="1")
    asking.state(Age)
    asking.wait("age", input="How old are you?", output="age")
    async with Runtime(durable_url, scope="all", poll_interval=0.05) as runtime:
        service = TaskService(runtime, {"age": asking.compile()})
        blocking = send("hi")
        blocking.configuration = None
        task = (await service.send_message(blocking, CTX)).task
        assert task is not None
        with pytest.raises(InvalidParams, match=f"does not answer task {task.id}: .*age"):
            await service.send_message(send("very", task.id), CTX)

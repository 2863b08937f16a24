"""A2A operations on real executions, through the task service."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from agent_node import Runtime, Workflow, load_workflow
from agent_node.a2a.protocol.errors import (
    IdempotencyKeyReused,
    InvalidParams,
    TaskNotCancelable,
    TaskNotFound,
    UnsupportedOperation,
)
from agent_node.a2a.protocol.models import (
    CancelTaskRequest,
    GetTaskRequest,
    ListTasksRequest,
    Message,
    Part,
    Role,
    SendMessageConfiguration,
    SendMessageRequest,
    TaskState,
)
from agent_node.a2a.server.handler import CallContext
from agent_node.a2a.server.tasks import TaskService
from agent_node.workflow.compiled import CompiledWorkflow

ROOT = Path(__file__).resolve().parents[2]


class Greeting(BaseModel):
    text: str = ""
    name: str = "stranger"
    reply: str = ""


def greeter() -> Workflow:
    wf = Workflow("greeter", version="1", description="Greets whoever writes.")
    wf.state(Greeting)

    @wf.step
    async def greet(s: Greeting) -> dict[str, Any]:
        return {"reply": f"Hello, {s.name}! You said: {s.text}"}

    wf.end("done", output=["reply", "name"])
    return wf


def booker() -> CompiledWorkflow:
    """The shipped example's book skill: asks when (INPUT_REQUIRED), then books."""
    return load_workflow(str(ROOT / "examples/greeter/book.py") + ":wf")


@pytest.fixture
async def service(durable_url: str) -> AsyncIterator[TaskService]:
    async with Runtime(durable_url, scope="all", poll_interval=0.05) as runtime:
        skills = {"greet": greeter().compile(), "book": booker()}
        yield TaskService(runtime, skills, default_skill="greet")


def send(
    text: str = "hi", *, data: dict[str, Any] | None = None, **fields: Any
) -> SendMessageRequest:
    parts = [Part(text=text)] + ([Part(data=data)] if data else [])
    config = fields.pop("configuration", None)
    meta = fields.pop("metadata", None)
    message = Message(message_id="m-1", role=Role.USER, parts=parts, **fields)
    return SendMessageRequest(message=message, configuration=config, metadata=meta)


CTX = CallContext()


async def test_a_blocking_send_returns_the_completed_task_with_its_artifact(
    service: TaskService,
) -> None:
    response = await service.send_message(send("good morning", data={"name": "Ada"}), CTX)
    task = response.task
    assert task is not None and task.status.state == TaskState.COMPLETED
    (artifact,) = task.artifacts or []
    assert artifact.parts[0].text == "Hello, Ada! You said: good morning"
    assert artifact.parts[1].data == {"reply": "Hello, Ada! You said: good morning", "name": "Ada"}
    (received,) = task.history or []
    assert received.message_id == "m-1" and received.task_id == task.id
    assert received.context_id == task.context_id
    fetched = await service.get_task(GetTaskRequest(id=task.id, history_length=0), CTX)
    assert fetched.status.state == TaskState.COMPLETED and fetched.history is None


async def test_return_immediately_and_a_kept_context(service: TaskService) -> None:
    request = send(
        context_id="ctx-42", configuration=SendMessageConfiguration(return_immediately=True)
    )
    task = (await service.send_message(request, CTX)).task
    assert task is not None and task.context_id == "ctx-42"
    assert task.status.state in {TaskState.SUBMITTED, TaskState.WORKING, TaskState.COMPLETED}
    await service.runtime.engine.wait(task.id)
    done = await service.get_task(GetTaskRequest(id=task.id), CTX)
    assert done.status.state == TaskState.COMPLETED


async def test_an_idempotency_key_returns_the_same_task_per_caller(service: TaskService) -> None:
    alice = CallContext(caller="spiffe://test/agent/alice", idempotency_key="order-7")
    first = (await service.send_message(send("one"), alice)).task
    # A retry: a new messageId, and asked to be answered another way.
    retry = send("one", configuration=SendMessageConfiguration(return_immediately=True))
    retry.message.message_id = "m-2"
    again = (await service.send_message(retry, alice)).task
    other = (
        await service.send_message(
            send("one"), CallContext(caller="bob", idempotency_key="order-7")
        )
    ).task
    plain = [(await service.send_message(send("one"), CTX)).task for _ in range(2)]
    assert first is not None and again is not None and other is not None
    assert again.id == first.id and len(again.history or []) == 1  # nothing new started
    assert other.id != first.id
    assert plain[0] is not None and plain[1] is not None and plain[0].id != plain[1].id


@pytest.mark.parametrize(
    "changed",
    [
        pytest.param(send("two"), id="another text"),
        pytest.param(send("one", data={"name": "Ada"}), id="another part"),
        pytest.param(send("one", metadata={"skill": "book"}), id="another skill"),
        pytest.param(send("one", context_id="ctx-other"), id="another context"),
    ],
)
async def test_an_idempotency_key_sent_again_with_another_request_is_refused(
    service: TaskService, changed: SendMessageRequest
) -> None:
    """The IETF draft's 422: the key's task is not what the second request
    asked for, so it is not answered as if it were (found by an
    integrator's walk: the first task came back, silently)."""
    alice = CallContext(caller="spiffe://test/agent/alice", idempotency_key="order-8")
    first = (await service.send_message(send("one", context_id="ctx-1"), alice)).task
    assert first is not None
    with pytest.raises(IdempotencyKeyReused) as refused:
        await service.send_message(changed, alice)
    assert refused.value.metadata == {"taskId": first.id}
    with pytest.raises(IdempotencyKeyReused):
        [e async for e in await service.send_streaming_message(changed, alice)]
    # Nothing started or recorded: the key's task is as the first send left it.
    listed = await service.list_tasks(ListTasksRequest(), alice)
    assert [t.id for t in listed.tasks] == [first.id]
    kept = await service.get_task(GetTaskRequest(id=first.id), alice)
    assert len(kept.history or []) == 1 and kept.context_id == "ctx-1"
    # The same request, without its context (the repeat may leave it out), is a repeat.
    again = (await service.send_message(send("one"), alice)).task
    assert again is not None and again.id == first.id


async def test_a_stream_repeated_with_its_key_begins_with_the_task_as_it_is(
    service: TaskService,
) -> None:
    """A new task's stream begins with it as accepted (SUBMITTED); the same
    send again, with its Idempotency-Key, begins with the task as it is now
    (it asks a question), not as it was accepted (found by an integrator's
    walk: SUBMITTED, then INPUT_REQUIRED)."""
    ctx = CallContext(caller="spiffe://test/agent/alice", idempotency_key="trip-1")
    book = send("Lisbon", metadata={"skill": "book"})
    first = [e async for e in await service.send_streaming_message(book, ctx)]
    assert first[0].task is not None
    assert first[0].task.status.state == TaskState.SUBMITTED
    again = [e async for e in await service.send_streaming_message(book, ctx)]
    assert again[0].task is not None and again[0].task.id == first[0].task.id
    assert again[0].task.status.state == TaskState.INPUT_REQUIRED
    assert again[0].task.status.message is not None  # the question, as GetTask shows it


async def test_the_question_in_the_status_is_the_one_in_the_history(
    service: TaskService,
) -> None:
    """One message, one id: a client that keeps the status message in its
    history (a2a-sdk 0.3 does) must not see the question twice."""
    asked = (await service.send_message(send("Lisbon", metadata={"skill": "book"}), CTX)).task
    assert asked is not None and asked.status.message is not None
    assert asked.history is not None and asked.history[-1] == asked.status.message


async def test_input_required_then_the_answer_completes_it(service: TaskService) -> None:
    asked = (await service.send_message(send("Lisbon", metadata={"skill": "book"}), CTX)).task
    assert asked is not None and asked.status.state == TaskState.INPUT_REQUIRED
    assert asked.status.message is not None
    assert asked.status.message.parts[0].text == "When do you want to go to Lisbon?"
    answer = send("early May", task_id=asked.id)
    done = (await service.send_message(answer, CTX)).task
    assert done is not None and done.status.state == TaskState.COMPLETED
    assert done.context_id == asked.context_id
    assert [(m.role, m.parts[0].text) for m in done.history or []] == [
        (Role.USER, "Lisbon"),
        (Role.AGENT, "When do you want to go to Lisbon?"),
        (Role.USER, "early May"),
    ]
    assert (done.artifacts or [])[0].parts[0].text == "Booked Lisbon for early May."
    with pytest.raises(UnsupportedOperation, match="is completed"):
        await service.send_message(send("again", task_id=done.id), CTX)


async def test_errors_for_unknown_tasks_skills_and_contexts(service: TaskService) -> None:
    with pytest.raises(TaskNotFound):
        await service.get_task(GetTaskRequest(id="nope"), CTX)
    with pytest.raises(TaskNotFound):
        await service.send_message(send("x", task_id="nope"), CTX)
    with pytest.raises(InvalidParams, match="no skill 'translate' here"):
        await service.send_message(send("x", metadata={"skill": "translate"}), CTX)
    with pytest.raises(InvalidParams, match="does not fit the skill's input"):
        await service.send_message(send("x", data={"name": 42}), CTX)
    asked = (await service.send_message(send("Rome", metadata={"skill": "book"}), CTX)).task
    assert asked is not None
    with pytest.raises(InvalidParams, match="belongs to context"):
        await service.send_message(send("May", task_id=asked.id, context_id="other"), CTX)


async def test_cancel_and_list_by_context_with_pages(service: TaskService) -> None:
    ids = []
    for index in range(5):
        task = (await service.send_message(send(f"#{index}", context_id="ctx-list"), CTX)).task
        assert task is not None
        ids.append(task.id)
    asked = (await service.send_message(send("Oslo", metadata={"skill": "book"}), CTX)).task
    assert asked is not None
    canceled = await service.cancel_task(CancelTaskRequest(id=asked.id), CTX)
    assert canceled.status.state == TaskState.CANCELED
    with pytest.raises(TaskNotCancelable):
        await service.cancel_task(CancelTaskRequest(id=asked.id), CTX)
    first = await service.list_tasks(ListTasksRequest(context_id="ctx-list", page_size=2), CTX)
    assert len(first.tasks) == 2 and first.next_page_token
    assert first.total_size == 5  # before pagination
    seen = [t.id for t in first.tasks]
    token = first.next_page_token
    while token:
        page = await service.list_tasks(
            ListTasksRequest(context_id="ctx-list", page_size=2, page_token=token), CTX
        )
        seen += [t.id for t in page.tasks]
        token = page.next_page_token
    assert sorted(seen) == sorted(ids)
    completed = await service.list_tasks(ListTasksRequest(status=TaskState.CANCELED), CTX)
    assert [t.id for t in completed.tasks] == [asked.id]
    with pytest.raises(InvalidParams, match="pageToken"):
        await service.list_tasks(ListTasksRequest(page_token="%%%"), CTX)


class Answer(BaseModel):
    text: str = ""
    reply: str = ""
    status_message: str | None = None
    respond_with: str | None = None
    artifacts: list[dict[str, Any]] | None = None


def answering(kind: str) -> Workflow:
    """A workflow whose output shapes the A2A answer, by the message's text."""
    wf = Workflow(f"answer-{kind}", version="1")
    wf.state(Answer)

    @wf.step
    async def decide(s: Answer) -> dict[str, Any]:
        if s.text == "message":
            return {"reply": "Direct message response", "respond_with": "message"}
        if s.text == "files":
            raw = {"raw": "dGNr", "filename": "output.txt", "mediaType": "text/plain"}
            return {"artifacts": [{"parts": [raw]}, {"name": "d", "parts": [{"data": {"k": 1}}]}]}
        if s.text == "broken":
            return {"artifacts": [{"parts": []}], "reply": "fallback"}
        return {"reply": "done", "status_message": "Hello from TCK"}

    return wf


async def test_the_output_shapes_the_answer(durable_url: str) -> None:
    async with Runtime(durable_url, scope="all", poll_interval=0.05) as runtime:
        service = TaskService(runtime, {"answer": answering("x").compile()})
        said = await service.send_message(send("hello"), CTX)
        assert said.task is not None and said.task.status.message is not None
        assert said.task.status.message.parts[0].text == "Hello from TCK"
        direct = await service.send_message(send("message"), CTX)
        assert direct.task is None and direct.message is not None
        assert direct.message.role == Role.AGENT
        assert direct.message.parts[0].text == "Direct message response"
        files = (await service.send_message(send("files"), CTX)).task
        assert files is not None
        first, second = files.artifacts or []
        assert first.parts[0].raw == "dGNr" and first.parts[0].filename == "output.txt"
        assert (second.name, second.parts[0].data) == ("d", {"k": 1})
        broken = (await service.send_message(send("broken"), CTX)).task
        assert broken is not None
        (fallback,) = broken.artifacts or []
        assert fallback.name == "result" and fallback.parts[0].text == "fallback"


async def test_control_keys_are_not_echoed_in_the_result(durable_url: str) -> None:
    async with Runtime(durable_url, scope="all", poll_interval=0.05) as runtime:
        service = TaskService(runtime, {"answer": answering("y").compile()})
        task = (await service.send_message(send("hello"), CTX)).task
    assert task is not None
    (result,) = task.artifacts or []
    # The final state, less the keys that only instruct the A2A layer.
    assert result.parts[-1].data == {"text": "hello", "reply": "done"}


async def test_list_tells_input_required_from_working(durable_url: str) -> None:
    """Both are parked executions; only a wait for input is INPUT_REQUIRED."""
    napping = Workflow("napping", version="1")
    napping.state(Greeting)
    napping.wait("nap", duration="1h")
    async with Runtime(durable_url, scope="all", poll_interval=0.05) as runtime:
        skills = {"nap": napping.compile(), "book": booker()}
        service = TaskService(runtime, skills, default_skill="nap")
        # On a timer a task is WORKING, not interrupted: a blocking send would wait an hour.
        immediately = SendMessageConfiguration(return_immediately=True)
        nap = (await service.send_message(send("zz", configuration=immediately), CTX)).task
        ask = (await service.send_message(send("Rome", metadata={"skill": "book"}), CTX)).task
        assert nap is not None
        while (record := await runtime.store.get(nap.id)) and record.status != "waiting":
            await asyncio.sleep(0.02)
        assert (await service.get_task(GetTaskRequest(id=nap.id), CTX)).status.state == (
            TaskState.WORKING
        )
        assert ask is not None and ask.status.state == TaskState.INPUT_REQUIRED
        for state, expected in [
            (TaskState.WORKING, [nap.id]),
            (TaskState.INPUT_REQUIRED, [ask.id]),
            (TaskState.COMPLETED, []),
        ]:
            listed = await service.list_tasks(ListTasksRequest(status=state), CTX)
            assert [t.id for t in listed.tasks] == expected, state
            assert listed.total_size == len(expected)

"""A task started in an existing context reads its earlier tasks, and the
tasks its message references — the caller's own only, bounded."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import BaseModel

from agent_node import Runtime, Workflow
from agent_node.a2a.protocol.errors import InvalidParams
from agent_node.a2a.protocol.models import Message, Part, Role, SendMessageRequest, Task, TaskState
from agent_node.a2a.server.handler import CallContext
from agent_node.a2a.server.task_context import MAX_CONTEXT_TASKS, MAX_REFERENCES
from agent_node.a2a.server.tasks import TaskService
from agent_node.security.authz import Policy
from agent_node.settings import PolicySettings

ALICE = CallContext(caller="spiffe://test/agent/alice")
BOB = CallContext(caller="spiffe://test/agent/bob")


class Chat(BaseModel):
    text: str = ""
    context: dict[str, Any] = {}
    reply: str = ""


def chat() -> Workflow:
    """Replies with what it knows: the earlier messages and referenced answers."""
    wf = Workflow("chat", version="1")
    wf.state(Chat)

    @wf.step
    async def answer(s: Chat) -> dict[str, Any]:
        said = [
            p["text"]
            for t in s.context["tasks"]
            for m in t["messages"]
            for p in m["parts"]
            if "text" in p
        ]
        cited = [a["parts"][0]["text"] for r in s.context["references"] for a in r["artifacts"]]
        return {"reply": f"{s.text} | earlier: {said} | cited: {cited}"}

    wf.end("done", output=["reply"])
    return wf


@pytest.fixture
async def service(durable_url: str) -> AsyncIterator[TaskService]:
    async with Runtime(durable_url, scope="all", poll_interval=0.05) as runtime:
        policy = Policy.of(PolicySettings())
        yield TaskService(runtime, {"chat": chat().compile()}, policy=policy)


async def say(
    service: TaskService, ctx: CallContext, text: str, context: str | None = None, **fields: Any
) -> Task:
    message = Message(
        message_id="m", role=Role.USER, parts=[Part(text=text)], context_id=context, **fields
    )
    task = (await service.send_message(SendMessageRequest(message=message), ctx)).task
    assert task is not None and task.status.state == TaskState.COMPLETED
    return task


def reply(task: Task) -> str:
    text = (task.artifacts or [])[0].parts[0].text
    assert text is not None
    return text


async def test_a_task_in_an_existing_context_reads_the_callers_earlier_tasks(
    service: TaskService,
) -> None:
    first = await say(service, ALICE, "one", "c1")
    assert reply(first) == "one | earlier: [] | cited: []"
    await say(service, BOB, "bob's secret", "c1")  # the same context id, another caller
    second = await say(service, ALICE, "two", "c1")
    assert reply(second) == "two | earlier: ['one'] | cited: []"
    third = await say(service, ALICE, "three", "c1")
    assert reply(third) == "three | earlier: ['one', 'two'] | cited: []"
    elsewhere = await say(service, ALICE, "new", None)
    assert reply(elsewhere) == "new | earlier: [] | cited: []"


async def test_the_context_is_bounded_to_the_newest_tasks(service: TaskService) -> None:
    for n in range(MAX_CONTEXT_TASKS + 2):
        last = await say(service, ALICE, str(n), "long")
    kept = [str(n) for n in range(1, MAX_CONTEXT_TASKS + 1)]  # "0" is left out
    assert reply(last).startswith(f"{MAX_CONTEXT_TASKS + 1} | earlier: {kept}")


async def test_referenced_tasks_give_their_artifacts_and_only_the_callers(
    service: TaskService,
) -> None:
    mine = await say(service, ALICE, "report", "c1")
    theirs = await say(service, BOB, "bob's report", "c2")
    cited = await say(service, ALICE, "summarize", "c3", reference_task_ids=[mine.id])
    assert reply(cited) == f"summarize | earlier: [] | cited: [{reply(mine)!r}]"
    for ids in ([theirs.id], ["no-such-task"]):  # one answer for both: nothing disclosed
        with pytest.raises(InvalidParams, match=f"referenceTaskIds: no task {ids[0]!r} of yours"):
            await say(service, ALICE, "steal", "c3", reference_task_ids=ids)
    with pytest.raises(InvalidParams, match=f"limit {MAX_REFERENCES}"):
        await say(service, ALICE, "many", reference_task_ids=[mine.id] * (MAX_REFERENCES + 1))

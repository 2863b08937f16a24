"""ListTasks honours every filter of the request, on every store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from support.workflows import echo

from agent_node import Runtime
from agent_node.a2a.protocol.errors import InvalidParams
from agent_node.a2a.protocol.models import (
    ListTasksRequest,
    Message,
    Part,
    Role,
    SendMessageRequest,
    Task,
    TaskState,
)
from agent_node.a2a.server.handler import CallContext
from agent_node.a2a.server.tasks import TaskService
from agent_node.security.authz import Policy
from agent_node.settings import PolicySettings

ALICE = CallContext(caller="spiffe://test/agent/alice")
BOB = CallContext(caller="spiffe://test/agent/bob")


@pytest.fixture
async def service(store_url: str) -> AsyncIterator[TaskService]:
    async with Runtime(store_url, scope="all", poll_interval=0.05) as runtime:
        policy = Policy.of(PolicySettings())
        yield TaskService(runtime, {"echo": echo("").compile()}, policy=policy)


async def send(service: TaskService, text: str, ctx: CallContext, context: str) -> Task:
    message = Message(message_id="m", role=Role.USER, parts=[Part(text=text)], context_id=context)
    task = (await service.send_message(SendMessageRequest(message=message), ctx)).task
    assert task is not None and task.status.state == TaskState.COMPLETED
    return task


async def test_status_timestamp_after_and_the_other_filters(service: TaskService) -> None:
    first = await send(service, "one", ALICE, "c1")
    await asyncio.sleep(0.01)
    second = await send(service, "two", ALICE, "c1")
    third = await send(service, "three", ALICE, "c2")
    await send(service, "bob's", BOB, "c1")
    assert first.status.timestamp is not None and second.status.timestamp is not None

    async def listed(**fields: Any) -> list[str]:
        page = await service.list_tasks(ListTasksRequest(**fields), ALICE)
        assert page.total_size == len(page.tasks)
        return [t.id for t in page.tasks]

    # At or after: the status timestamp of a task lists it.
    assert await listed(status_timestamp_after=second.status.timestamp) == [third.id, second.id]
    assert await listed(status_timestamp_after="2999-01-01T00:00:00Z") == []
    assert await listed(status_timestamp_after=second.status.timestamp, context_id="c1") == [
        second.id
    ]
    all_of_c1 = await listed(context_id="c1", status=TaskState.COMPLETED)
    assert all_of_c1 == [second.id, first.id]  # alice's only: bob's task is not listed
    page = await service.list_tasks(ListTasksRequest(context_id="c1", history_length=0), ALICE)
    assert all(t.history is None and t.artifacts is None for t in page.tasks)


async def test_pages_follow_their_token_even_while_tasks_arrive(service: TaskService) -> None:
    """A page token names where the last page ended (keyset paging): a task
    created meanwhile neither repeats nor hides one on the next page, and a
    token of an earlier release (an offset) still pages."""
    import base64

    sent = [(await send(service, f"t{n}", ALICE, "c")).id for n in range(5)]
    first = await service.list_tasks(ListTasksRequest(page_size=2), ALICE)
    assert [t.id for t in first.tasks] == sent[::-1][:2]
    await send(service, "newer", ALICE, "c")  # lands before the first page, not in the next
    seen = [t.id for t in first.tasks]
    token = first.next_page_token
    while token:
        page = await service.list_tasks(ListTasksRequest(page_size=2, page_token=token), ALICE)
        seen += [t.id for t in page.tasks]
        token = page.next_page_token
    assert seen == sent[::-1]
    offset = base64.urlsafe_b64encode(b"4").decode()
    old = await service.list_tasks(ListTasksRequest(page_size=2, page_token=offset), ALICE)
    assert [t.id for t in old.tasks] == sent[::-1][3:5]


async def test_the_total_is_counted_once_for_the_pages_of_a_listing(service: TaskService) -> None:
    """``totalSize`` is counted for the first page and carried in the token:
    the pages after it are not counted again (at a million tasks the count
    is what a listing costs), and a token without one still pages, counted."""
    import base64

    sent = [(await send(service, f"t{n}", ALICE, "c")).id for n in range(5)]
    first = await service.list_tasks(ListTasksRequest(page_size=2), ALICE)
    assert first.total_size == 5
    await send(service, "newer", ALICE, "c")
    second = await service.list_tasks(
        ListTasksRequest(page_size=2, page_token=first.next_page_token), ALICE
    )
    assert second.total_size == 5  # the listing's, as its first page counted it
    assert [t.id for t in second.tasks] == sent[::-1][2:4]
    # A token of the release before (no count): the page, counted now.
    text = base64.urlsafe_b64decode(first.next_page_token).decode()
    bare = base64.urlsafe_b64encode(text.partition(":")[2].encode()).decode()
    again = await service.list_tasks(ListTasksRequest(page_size=2, page_token=bare), ALICE)
    assert [t.id for t in again.tasks] == sent[::-1][2:4] and again.total_size == 6
    # A count that is not one is refused, as any token we did not issue.
    forged = base64.urlsafe_b64encode(b"x:" + text.partition(":")[2].encode()).decode()
    with pytest.raises(InvalidParams):
        await service.list_tasks(ListTasksRequest(page_size=2, page_token=forged), ALICE)


async def test_a_page_of_tasks_reads_their_logs_at_once(store_url: str) -> None:
    """``Store.events_of``: the given kinds of each execution's log, in order,
    an empty list for one without any, nothing for an unknown id."""
    async with Runtime(store_url, scope="all", poll_interval=0.05) as runtime:
        service = TaskService(
            runtime, {"echo": echo("").compile()}, policy=Policy.of(PolicySettings())
        )
        one = await send(service, "one", ALICE, "c")
        two = await send(service, "two", ALICE, "c")
        store = runtime.store
        logs = await store.events_of([one.id, two.id, "nobody"], {"execution_completed"})
        assert [e.kind for e in logs[one.id]] == ["execution_completed"]
        assert [e.execution_id for e in logs[two.id]] == [two.id]
        assert logs["nobody"] == []
        every = [
            e for e in await store.events(one.id) if e.kind in ("node_started", "node_completed")
        ]
        kinds = {"node_completed", "node_started"}
        assert (await store.events_of([one.id], kinds))[one.id] == every
        assert await store.events_of([], kinds) == {}

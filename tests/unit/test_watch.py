"""A watch's life: it renders its task on a poll while idle, tells its
followers each change, and stops when the task ends, when rendering fails,
or when its last follower leaves mid-render (a task runs only while it
renders)."""

from __future__ import annotations

import asyncio
import time

import pytest

from agent_node.a2a.protocol.errors import TaskNotFound
from agent_node.a2a.protocol.models import StreamResponse, Task, TaskState, TaskStatus
from agent_node.a2a.server import streaming
from agent_node.a2a.server.inbox import Inbox
from agent_node.a2a.server.streaming import Watch
from agent_node.a2a.server.task_stream import TaskStream
from agent_node.store.memory import MemoryStore

POLL = 0.01


class Tasks:
    """Renders tasks from a dict; counts renders; can hold a render until let go."""

    def __init__(self, state: TaskState) -> None:
        self.state = state
        self.renders = 0
        self.hold: asyncio.Event | None = None

    async def render(self, task_id: str) -> Task:
        self.renders += 1
        if self.hold is not None:
            await self.hold.wait()
        if self.state == TaskState.UNSPECIFIED:
            raise TaskNotFound(task_id)
        return Task(id=task_id, context_id="c", status=TaskStatus(state=self.state))


def watching() -> list[asyncio.Task[object]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("watch ")]


async def started(tasks: Tasks) -> tuple[Watch, Inbox[StreamResponse | Exception | None]]:
    watch = Watch(MemoryStore(), "t", tasks.render, POLL)
    await watch.start()
    queue: Inbox[StreamResponse | Exception | None] = Inbox()
    watch.join(queue)
    return watch, queue


async def test_an_idle_watch_polls_its_task_and_stops_once_it_ends() -> None:
    tasks = Tasks(TaskState.WORKING)
    watch, queue = await started(tasks)
    await asyncio.sleep(POLL * 5)
    assert tasks.renders > 2 and queue.empty()  # polled, nothing changed
    await asyncio.sleep(POLL / 2)  # between two polls, most likely
    tasks.state = TaskState.COMPLETED
    event = await asyncio.wait_for(queue.get(), 1)
    assert isinstance(event, StreamResponse) and event.status_update is not None
    assert event.status_update.status.state == TaskState.COMPLETED
    await asyncio.sleep(0)
    assert watch.stopped and not watching()
    renders = tasks.renders
    await asyncio.sleep(POLL * 3)
    assert tasks.renders == renders  # no poll after the end


async def test_a_failed_render_is_told_and_stops_the_watch() -> None:
    tasks = Tasks(TaskState.WORKING)
    watch, queue = await started(tasks)
    tasks.state = TaskState.UNSPECIFIED  # rendered next as not found
    failure = await asyncio.wait_for(queue.get(), 1)
    assert isinstance(failure, TaskNotFound) and watch.stopped
    await asyncio.sleep(0)
    assert not watching()


async def test_the_last_follower_leaving_mid_render_ends_the_render_and_the_watch() -> None:
    tasks = Tasks(TaskState.WORKING)
    watch, queue = await started(tasks)
    tasks.hold = asyncio.Event()  # the next render waits
    renders = tasks.renders
    while tasks.renders == renders:
        await asyncio.sleep(POLL / 2)
    assert len(watching()) == 1  # a task while it renders
    watch.leave(queue)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert watch.stopped and not watching()
    tasks.hold.set()
    await asyncio.sleep(POLL * 3)
    assert tasks.renders == renders + 1 and queue.empty()


async def test_followers_sent_nothing_for_the_keepalive_interval_are_told_the_stream_lives(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(streaming, "KEEPALIVE_SECONDS", 0.05)
    tasks = Tasks(TaskState.WORKING)
    watch = Watch(MemoryStore(), "t", tasks.render, poll=60)  # the interval wakes it, not the poll
    await watch.start()
    queue: Inbox[StreamResponse | Exception | None] = Inbox()
    watch.join(queue)
    began = time.monotonic()
    assert await asyncio.wait_for(queue.get(), 1) is None
    assert time.monotonic() - began >= 0.05
    assert await asyncio.wait_for(queue.get(), 1) is None  # and again, while it stays quiet
    assert not watching()  # a timer between the two, no task
    tasks.state = TaskState.COMPLETED  # rendered as the timer wakes, at the interval
    event = await asyncio.wait_for(queue.get(), 1)
    assert isinstance(event, StreamResponse) and event.status_update is not None
    await asyncio.sleep(0.1)
    assert watch.stopped and queue.empty()


async def test_a_follower_says_none_while_quiet_and_iterating_it_skips_that(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The SSE bindings ask for the keep-alive; gRPC iterates and never sees it."""
    monkeypatch.setattr(streaming, "KEEPALIVE_SECONDS", POLL * 3)
    tasks = Tasks(TaskState.WORKING)
    watch = Watch(MemoryStore(), "t", tasks.render, POLL)
    await watch.start()
    pinged, iterated = TaskStream(watch, at_interrupt=False), TaskStream(watch, at_interrupt=False)
    first = await pinged.next_or_keepalive()
    assert first is not None and first.task is not None
    assert await asyncio.wait_for(pinged.next_or_keepalive(), 1) is None
    assert (await anext(iterated)).task is not None
    following = asyncio.create_task(anext(iterated))
    await asyncio.sleep(POLL * 12)  # keep-alives went by
    assert not following.done()
    tasks.state = TaskState.COMPLETED
    event = await asyncio.wait_for(following, 1)
    assert event.status_update is not None
    assert event.status_update.status.state == TaskState.COMPLETED
    await pinged.aclose()

"""An event stream's response, driven as a server drives it: it holds no
event it has sent while it waits for the next (most of a stream's life)."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
from collections.abc import AsyncIterator
from typing import Any

from agent_node.a2a.protocol.models import StreamResponse, Task, TaskState, TaskStatus
from agent_node.a2a.server.sse import bare_event_stream

BIG = 2**20  # a task with a long history, say


async def test_an_event_sent_is_not_held_while_the_next_is_awaited() -> None:
    more = asyncio.Event()

    def task() -> Task:
        status = TaskStatus(state=TaskState.WORKING)
        return Task(id="t", context_id="c", status=status, metadata={"pad": "x" * BIG})

    async def events() -> AsyncIterator[StreamResponse]:
        yield StreamResponse(task=task())  # held by nothing here once yielded
        await more.wait()

    sent: list[str] = []
    first_sent = asyncio.Event()
    gone = asyncio.Event()

    async def send(message: dict[str, Any]) -> None:
        sent.append(message["type"])  # not the body: a server writes it out
        if message["type"] == "http.response.body":
            first_sent.set()

    async def receive() -> dict[str, Any]:
        await gone.wait()
        return {"type": "http.disconnect"}

    gc.collect()
    tracemalloc.start()
    try:
        response = bare_event_stream("SubscribeToTask", events(), lambda exc: {})
        streaming = asyncio.create_task(response({"type": "http"}, receive, send))
        await first_sent.wait()
        await asyncio.sleep(0)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0]
        more.set()
        await asyncio.wait_for(streaming, 1)
    finally:
        tracemalloc.stop()
    assert sent == ["http.response.start", "http.response.body", "http.response.body"]
    assert held < BIG / 2, f"{held} bytes held while waiting"

"""A delegation followed over SSE, with peers whose streams mislead.

When the peer's stream says its task is over, the watchdog reads the task
whole (artifacts and all) with ``GetTask``. A peer that writes its task
store after it streams (a2a-sdk 0.3's ``tasks/resubscribe`` relaying the
events its send's consumer is still storing; any peer whose reads go to a
replica) may answer that read with the task still WORKING for a moment.
The watchdog then asks again, briefly, rather than taking the stale task
as the news and leaving the delegation to its next poll a minute later.

A stream may also stay open and say nothing while the task moves on (a2a-sdk
0.3 can hand a resubscription a queue nothing reaches any more): a followed
task is still polled when its row comes due, the safety net it is meant to be.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from support.delegation_rig import Rig, delegating, rig, until
from support.fake_peer import now


@pytest.fixture
async def r(store_url: str) -> AsyncIterator[Rig]:
    async with rig(store_url) as made:
        made.peer.streaming = True
        yield made


def _lagging(r: Rig, stale_reads: int) -> list[str]:
    """The peer streams its task COMPLETED at once, while its first
    ``stale_reads`` GetTask answers still show it WORKING; the states read."""
    read: list[str] = []

    def answer(body: dict[str, Any]) -> httpx.Response | None:
        method, params = body["method"], body["params"]
        if method == "SubscribeToTask":
            update = {"taskId": params["id"], "status": {"state": "TASK_STATE_COMPLETED"}}
            event = {"jsonrpc": "2.0", "id": body["id"], "result": {"statusUpdate": update}}
            sse = f"data: {json.dumps(event)}\n\n"
            return httpx.Response(200, headers={"content-type": "text/event-stream"}, text=sse)
        if method == "GetTask":
            task = r.peer.tasks[params["id"]]
            if len(read) >= stale_reads:  # the store has caught up
                task["status"] = {"state": "TASK_STATE_COMPLETED", "timestamp": now()}
                task["artifacts"] = [{"artifactId": "a", "parts": [{"text": "streamed"}]}]
            read.append(task["status"]["state"])
        return None

    r.peer.answer = answer
    return read


async def test_a_task_read_behind_the_stream_is_read_again(r: Rig) -> None:
    read = _lagging(r, stale_reads=2)
    execution_id = await r.start(delegating("hang"))  # WORKING at the send
    await r.drive()  # sent; then followed over SSE

    async def ended() -> bool:
        await r.drive()
        record = await r.runtime.store.get(execution_id)
        return record is not None and record.status == "completed"

    await until(ended, "the execution to complete from the stream's news")
    record = await r.runtime.store.get(execution_id)
    assert record is not None
    assert json.loads(record.state)["answer"]["text"] == "streamed"
    assert read == ["TASK_STATE_WORKING", "TASK_STATE_WORKING", "TASK_STATE_COMPLETED"]
    events = await r.runtime.store.events(execution_id)
    (resolved,) = [e for e in events if e.kind == "wait_resolved"]
    assert json.loads(resolved.data or "{}")["payload"]["via"] == "stream"


class Silent(httpx.AsyncByteStream):
    """An SSE body that never sends an event, nor ends."""

    async def __aiter__(self) -> AsyncIterator[bytes]:
        await asyncio.Event().wait()
        yield b""


async def test_a_followed_task_whose_stream_stays_silent_is_still_polled(r: Rig) -> None:
    def answer(body: dict[str, Any]) -> httpx.Response | None:
        if body["method"] == "SubscribeToTask":
            return httpx.Response(
                200, headers={"content-type": "text/event-stream"}, stream=Silent()
            )
        return None

    r.peer.answer = answer
    execution_id = await r.start(delegating("hang"))
    await r.drive()  # sent
    await r.drive()  # followed: its stream opens, and says nothing
    row = await r.row(execution_id)
    assert row is not None and row.state == "sent"
    (task,) = r.peer.tasks.values()
    task["status"] = {"state": "TASK_STATE_COMPLETED", "timestamp": now()}
    task["artifacts"] = [{"artifactId": "a", "parts": [{"text": "polled"}]}]
    await r.due_now(execution_id)  # as the row comes due again (max_poll)
    await r.drive()
    await until(lambda: _completed(r, execution_id), "the execution to complete")
    events = await r.runtime.store.events(execution_id)
    (resolved,) = [e for e in events if e.kind == "wait_resolved"]
    assert json.loads(resolved.data or "{}")["payload"]["via"] == "poll"


async def _completed(r: Rig, execution_id: str) -> bool:
    record = await r.runtime.store.get(execution_id)
    return record is not None and record.status == "completed"

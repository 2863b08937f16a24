"""A peer's stream is closed as soon as its delegation settles.

A delegation followed over SSE may settle by other news than its stream's:
a poll (the safety net, when the stream went silent), a cancel of the
execution, the delegate node's timeout. Its stream then has nothing left to
tell: it is closed at once, giving back its descriptor and its place among
the ``max_follow`` (found by a walk: three streams to a stalled peer still
open 17 minutes after their delegations had settled by poll; each held one
of the 100 places for good, and once they were used up new delegations were
only polled, a minute slower).
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


class Silent(httpx.AsyncByteStream):
    """An SSE body that never sends an event nor ends; counts the open ones."""

    open = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        Silent.open += 1
        try:
            await asyncio.Event().wait()
            yield b""
        finally:
            Silent.open -= 1


@pytest.fixture
async def r(store_url: str) -> AsyncIterator[Rig]:
    Silent.open = 0
    async with rig(store_url) as made:
        made.peer.streaming = True

        def answer(body: dict[str, Any]) -> httpx.Response | None:
            if body["method"] == "SubscribeToTask":
                headers = {"content-type": "text/event-stream"}
                return httpx.Response(200, headers=headers, stream=Silent())
            return None

        made.peer.answer = answer
        yield made


async def _followed(r: Rig, workflow: Any) -> str:
    """Start ``workflow``; once its delegation is sent, its task followed over
    a stream that stays silent."""
    execution_id = await r.start(workflow)
    await r.drive()  # sent
    await r.drive()  # followed

    async def streaming() -> bool:
        return Silent.open == 1

    await until(streaming, "the peer's stream to open")
    assert len(r.watchdog.streams.following) == 1
    return execution_id


async def _closed(r: Rig) -> None:
    async def closed() -> bool:
        return Silent.open == 0 and not r.watchdog.streams.following

    await until(closed, "the stream to close")


async def test_a_stream_is_closed_when_a_poll_settles_its_delegation(r: Rig) -> None:
    execution_id = await _followed(r, delegating("hang"))
    (task,) = r.peer.tasks.values()
    task["status"] = {"state": "TASK_STATE_COMPLETED", "timestamp": now()}
    task["artifacts"] = [{"artifactId": "a", "parts": [{"text": "polled"}]}]
    await r.due_now(execution_id)  # the safety-net poll comes due
    await r.drive()
    record = await r.finish(execution_id)
    assert record.status == "completed"
    events = await r.runtime.store.events(execution_id)
    (resolved,) = [e for e in events if e.kind == "wait_resolved"]
    assert json.loads(resolved.data or "{}")["payload"]["via"] == "poll"
    await _closed(r)


async def test_a_stream_is_closed_when_its_execution_is_canceled(r: Rig) -> None:
    execution_id = await _followed(r, delegating("hang"))
    assert await r.runtime.cancel(execution_id, "no longer wanted")
    await _closed(r)


async def test_a_stream_is_closed_when_its_delegation_times_out(r: Rig) -> None:
    execution_id = await _followed(r, delegating("hang", "timeout: 1s"))
    await _closed(r)
    row = await r.row(execution_id)
    assert row is None or row.state == "canceling"  # the peer's task is to be canceled

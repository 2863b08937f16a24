"""A delegation followed over SSE, with a peer whose ``GetTask`` lags its stream.

When the peer's stream says its task is over, the watchdog reads the task
whole (artifacts and all) with ``GetTask``. A peer that writes its task
store after it streams (a2a-sdk 0.3's ``tasks/resubscribe`` relaying the
events its send's consumer is still storing; any peer whose reads go to a
replica) may answer that read with the task still WORKING for a moment.
The watchdog then asks again, briefly, rather than taking the stale task
as the news and leaving the delegation to its next poll a minute later.
"""

from __future__ import annotations

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

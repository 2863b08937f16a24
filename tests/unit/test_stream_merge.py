"""A slow follower's queued chunks of one artifact come out as one chunk."""

from __future__ import annotations

from agent_node.a2a.protocol.models import (
    Artifact,
    Part,
    StreamResponse,
    TaskArtifactUpdateEvent,
    TaskState,
    TaskStatus,
    TaskStatusUpdateEvent,
)
from agent_node.a2a.server.inbox import Inbox
from agent_node.a2a.server.task_stream import _merged


def chunk(artifact: str, text: str, append: bool, last: bool = False) -> StreamResponse:
    update = TaskArtifactUpdateEvent(
        task_id="t",
        context_id="c",
        artifact=Artifact(artifact_id=artifact, name="write", parts=[Part(text=text)]),
        append=append,
        last_chunk=last,
    )
    return StreamResponse(artifact_update=update)


def status() -> StreamResponse:
    update = TaskStatusUpdateEvent(
        task_id="t", context_id="c", status=TaskStatus(state=TaskState.WORKING)
    )
    return StreamResponse(status_update=update)


def test_chunks_queued_behind_one_are_merged_in_order_up_to_another_event() -> None:
    queue: Inbox[StreamResponse | Exception] = Inbox()
    for item in (chunk("a", "b", True), chunk("a", "c", True, last=True), chunk("a", "x", False)):
        queue.put_nowait(item)
    merged = _merged(chunk("a", "a", False), queue).artifact_update
    assert merged is not None
    assert (merged.artifact.parts[0].text, merged.append, merged.last_chunk) == ("abc", False, True)
    assert queue.qsize() == 1  # the next stream's opening stays: a new artifact text

    alone = chunk("a", "y", True)
    assert _merged(alone, Inbox()) is alone  # nothing behind it
    queue2: Inbox[StreamResponse | Exception] = Inbox()
    queue2.put_nowait(status())
    queue2.put_nowait(chunk("a", "after", True))
    assert _merged(alone, queue2) is alone  # another event first: order kept
    assert queue2.qsize() == 2
    queue2 = Inbox()
    queue2.put_nowait(chunk("b", "other", True))
    assert _merged(alone, queue2) is alone  # another artifact's

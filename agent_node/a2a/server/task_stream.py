"""One stream's events from a task's :class:`~.streaming.Watch`.

A :class:`TaskStream` joins the watch of its task and yields the task as the
watch last showed it, then its changes, until the stream ends
(:func:`ends_stream`): after a terminal state, and for a
``SendStreamingMessage`` stream also after an interrupted one. Chunks of one
artifact queued behind each other reach a slow reader as one longer chunk.
A stream quiet for :data:`~.streaming.KEEPALIVE_SECONDS` says so with
``None`` (:meth:`TaskStream.next_or_keepalive`), which the SSE bindings send
as a comment line; iterating a task stream skips it.
"""

from __future__ import annotations

from agent_node.a2a.protocol.models import Part, StreamResponse, TaskState
from agent_node.a2a.server.inbox import Inbox
from agent_node.a2a.server.streaming import Item, Watch

__all__ = ["TaskStream", "ends_stream"]


def ends_stream(event: StreamResponse, *, at_interrupt: bool) -> bool:
    """Whether a stream ends after ``event``."""
    if event.task is not None:
        state = event.task.status.state
    elif event.status_update is not None:
        state = event.status_update.status.state
    else:
        return event.message is not None
    return TaskState(state).is_terminal or (at_interrupt and TaskState(state).is_interrupted)


class TaskStream:
    """One stream's events from a :class:`Watch`: the task, then its changes
    until the stream ends. It joins the watch at once; iterating to the end or
    :meth:`aclose` leaves it (one never iterated must be closed)."""

    def __init__(self, watch: Watch, *, at_interrupt: bool) -> None:
        self._watch = watch
        self._at_interrupt = at_interrupt
        self._queue: Inbox[Item] = Inbox()
        self._first: StreamResponse | None = StreamResponse(task=watch.join(self._queue))
        self._closed = False

    def __aiter__(self) -> TaskStream:
        return self

    async def __anext__(self) -> StreamResponse:
        while (event := await self.next_or_keepalive()) is None:
            pass
        return event

    async def next_or_keepalive(self) -> StreamResponse | None:
        """The next event, or None when the stream has been quiet for
        :data:`KEEPALIVE_SECONDS` (a stream tells its client it is alive);
        raises StopAsyncIteration after the last."""
        if self._closed:
            raise StopAsyncIteration
        try:
            event = self._first if self._first is not None else await self._queue.get()
            self._first = None
            if isinstance(event, Exception):
                raise event
        except BaseException:
            await self.aclose()
            raise
        if event is None:
            return None
        if ends_stream(event, at_interrupt=self._at_interrupt):
            await self.aclose()
        return _merged(event, self._queue)

    async def aclose(self) -> None:
        """Stop following (idempotent)."""
        if not self._closed:
            self._closed = True
            self._watch.leave(self._queue)


def _merged(event: StreamResponse, queue: Inbox[Item]) -> StreamResponse:
    """``event`` and the chunks of the same artifact queued behind it, as one
    chunk: a follower that reads slower than a model writes gets fewer,
    longer chunks, never a growing backlog of tiny ones."""
    update = event.artifact_update
    if update is None or update.last_chunk or not update.artifact.parts:
        return event
    texts = [update.artifact.parts[0].text or ""]
    last = False
    while not queue.empty() and not last:
        following = queue.peek()
        more = following.artifact_update if isinstance(following, StreamResponse) else None
        if (
            more is None
            or not more.append
            or more.artifact.artifact_id != update.artifact.artifact_id
        ):
            break
        queue.get_nowait()
        texts.append(more.artifact.parts[0].text or "")
        last = bool(more.last_chunk)
    if len(texts) == 1:
        return event
    artifact = update.artifact.model_copy(update={"parts": [Part(text="".join(texts))]})
    merged = update.model_copy(update={"artifact": artifact, "last_chunk": last})
    return StreamResponse(artifact_update=merged)

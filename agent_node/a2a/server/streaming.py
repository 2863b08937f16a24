"""Streams of one task's changes, for ``SendStreamingMessage`` and ``SubscribeToTask``.

A :class:`Watch` follows one task: it subscribes to the store's
notifications for the task's id and, on every wake and on a safety poll
(notifications from other processes can be missed, e.g. on SQLite), renders
the task again and turns what changed into :class:`StreamResponse` events:

* an ``artifactUpdate`` for each artifact not sent yet (whole: ``lastChunk``
  true, ``append`` false), then
* a ``statusUpdate`` when the state or the status message changed. A task
  never goes back to SUBMITTED once past it (a resumed execution is pending
  for a moment): that is shown as WORKING.

Between nodes run on one worker the store sends no notification, so a brief
WORKING may be seen late or not at all; the terminal state always is.

While a node writes text (a model streaming its answer), the store's live
channel (:mod:`agent_node.store.live`) brings it here piece by piece, and
followers get it as ``artifactUpdate`` chunks of one artifact per node
visit (its id the visit's stream, its name the node's): the first with
``append`` false (also when a visit starts its text over), the last with
``lastChunk``. A follower that joins while a node writes gets the text so
far in one opening chunk, then what follows. Those artifacts are live only:
the task's artifacts are what its workflow ends with, committed once.

A watch is shared: every subscriber of a task joins the one watch of that
task (:class:`Watches`), so concurrent subscribers get identical events. A
follower's first event is the task as the watch last showed it, which is the
base of the changes that follow. A stream ends after a terminal state, and a
``SendStreamingMessage`` stream also after an interrupted one (input- or
auth-required). The watch stops when its task is terminal or when its last
follower leaves (a client that disconnects closes its iterator).

A task may stay quiet for long (a model thinking, a timer, a question
nobody answers yet), and a silent stream looks dead: clients' read
timeouts (the a2a-sdk's httpx, 20 s) and proxies' idle cuts end it. So a
watch whose followers have been sent nothing for :data:`KEEPALIVE_SECONDS`
tells them the stream is alive, on the poll timer it keeps anyway (no task
nor timer more per stream): :meth:`.task_stream.TaskStream.next_or_keepalive` says so
with ``None``, which the SSE bindings send as a comment line; iterating a
follower skips it (gRPC has HTTP/2's own pings).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from agent_node.a2a.protocol.models import (
    Artifact,
    Part,
    StreamResponse,
    Task,
    TaskArtifactUpdateEvent,
    TaskState,
    TaskStatus,
    TaskStatusUpdateEvent,
)
from agent_node.a2a.server.inbox import Inbox
from agent_node.store.base import Store
from agent_node.store.live import Chunk

__all__ = [
    "KEEPALIVE_SECONDS",
    "POLL_SECONDS",
    "Item",
    "Render",
    "Watch",
    "Watches",
]

log = logging.getLogger(__name__)

#: How often a watch renders its task when no notification came.
POLL_SECONDS = 1.0
#: How long a watch's followers may be sent nothing before they are told the
#: stream is alive (the official a2a-sdk server pings every 15 s too).
KEEPALIVE_SECONDS = 15.0

#: Renders a task by id (raises TaskNotFound when there is none).
Render = Callable[[str], Awaitable[Task]]
#: What a follower's queue holds; None: "still alive" (nothing happened).
Item = StreamResponse | Exception | None


class Watch:
    """One task's changes, fanned out to its followers' queues."""

    def __init__(
        self, store: Store, task_id: str, render: Render, poll: float, *, private: bool = False
    ) -> None:
        self.task_id = task_id
        #: Chunks that came before the first follower (a private watch's only).
        self._backlog: list[StreamResponse] | None = [] if private else None
        self._private = private
        self._store = store
        self._render = render
        self._poll = poll
        self._followers: list[Inbox[Item]] = []
        #: When the followers were last sent anything (``time.monotonic``).
        self._spoke = time.monotonic()
        #: The next poll while the watch waits; the render under way while not.
        self._timer: asyncio.TimerHandle | None = None
        self._rendering: asyncio.Task[None] | None = None
        #: A wake came while the task was being rendered: render it again.
        self._again = False
        self._unsubscribe: Callable[[], None] | None = None
        self._unlive: Callable[[], None] | None = None
        #: The streams being written now: stream → (node, text so far).
        self._writing: dict[str, tuple[str, str]] = {}
        #: Chunks that came while the task was first rendered (None: since).
        self._early: list[Chunk] | None = []
        self._sent: set[str] = set()
        self.latest: Task | None = None
        #: Set once the watch follows its task no more.
        self.stopped = False
        #: Called once the watch has stopped (the registry forgets it).
        self.on_stop: Callable[[Watch], None] | None = None

    async def start(self, base: Task | None = None) -> None:
        """Subscribe, then render the task (or take ``base`` as what was last
        shown, and check it against the store at once); raises what rendering raises."""
        self._unsubscribe = self._store.subscribe(self._notice)
        self._unlive = self._store.live.subscribe(self.task_id, self._listen)
        try:
            self.latest = base if base is not None else await self._render(self.task_id)
        except BaseException:
            self._stop()
            raise
        early, self._early = self._early or [], None
        for chunk in early:
            self._chunk(chunk)
        self._sent = {a.artifact_id for a in self.latest.artifacts or []}
        if _terminal(self.latest):  # once its caller has joined, as the others stop
            asyncio.get_running_loop().call_soon(self._stop)
        elif base is not None:
            self._wake()
        else:
            self._wait()

    @property
    def followers(self) -> int:
        return len(self._followers)

    def join(self, queue: Inbox[Item]) -> Task:
        """Add a follower; returns the task its events start from (chunks
        that came before a private watch's follower joined follow it)."""
        if self.latest is None:
            raise RuntimeError("join() before start()")
        self._followers.append(queue)
        base = self.latest
        if self._private:  # nobody joins later: what a next change is told against will do
            self.latest = _slim(base, base.status)
        if self._backlog is not None:
            for item in self._backlog:
                queue.put_nowait(item)
            self._backlog = None
        else:  # joining mid-stream: the text so far, then what follows
            for stream, (node, text) in self._writing.items():
                queue.put_nowait(self._update(base, stream, node, text, append=False, last=False))
        return base

    def leave(self, queue: Inbox[Item]) -> None:
        """Remove a follower; the last one to leave stops the watch."""
        if queue in self._followers:
            self._followers.remove(queue)
        if not self._followers:
            if self._rendering is not None:
                self._rendering.cancel()
            self._stop()

    def _notice(self, kind: str, execution_id: str) -> None:
        if execution_id == self.task_id:
            self._wake()

    def _wait(self) -> None:
        """Wait for a notification, or poll after a while; the followers are
        told the stream is alive once they have been sent nothing for
        :data:`KEEPALIVE_SECONDS` (the timer wakes by then)."""
        quiet = time.monotonic() - self._spoke
        if quiet >= KEEPALIVE_SECONDS:
            self._publish(None)
            quiet = 0.0
        delay = min(self._poll, KEEPALIVE_SECONDS - quiet)
        self._timer = asyncio.get_running_loop().call_later(delay, self._wake)

    def _wake(self) -> None:
        """Render the task again (once more after the render under way)."""
        if self.stopped:
            return
        if self._rendering is not None:
            self._again = True
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._rendering = asyncio.create_task(self._renders(), name=f"watch {self.task_id}")

    async def _renders(self) -> None:
        """The task rendered until no wake came meanwhile; then the watch
        waits again, or stops once the task is terminal or rendering failed.
        A task only while it renders: an idle watch (most of a stream's
        life) is a timer and a subscription, not a task waiting (~1.5 KiB)."""
        ended = True  # unless every render went through
        try:
            self._again = True
            while self._again:
                self._again = False
                await self._refresh()
            ended = self.latest is None or _terminal(self.latest)
        except Exception as exc:
            log.warning("watching task %s failed: %r", self.task_id, exc)
            self._publish(exc)
        finally:
            self._rendering = None
            if ended:
                self._stop()
            elif not self.stopped:
                self._wait()

    async def _refresh(self) -> None:
        # A method of its own: the task rendered is not held (in the loop's
        # frame) while the watch waits for the next change.
        for event in self._changes(await self._render(self.task_id)):
            self._publish(event)

    def _changes(self, task: Task) -> list[StreamResponse]:
        previous = self.latest
        if previous is None:
            return []
        status = _no_regress(previous.status, task.status)
        shared = not self._private
        self.latest = task.model_copy(update={"status": status}) if shared else _slim(task, status)
        context_id = task.context_id or task.id
        events: list[StreamResponse] = []
        for artifact in task.artifacts or []:
            if artifact.artifact_id not in self._sent:
                self._sent.add(artifact.artifact_id)
                added = TaskArtifactUpdateEvent(  # whole: its own last chunk
                    task_id=task.id, context_id=context_id, artifact=artifact, last_chunk=True
                )
                events.append(StreamResponse(artifact_update=added))
        if _status_key(status) != _status_key(previous.status):
            changed = TaskStatusUpdateEvent(task_id=task.id, context_id=context_id, status=status)
            events.append(StreamResponse(status_update=changed))
        return events

    def _listen(self, chunk: Chunk) -> None:
        if self._early is not None:  # the task is still being rendered
            self._early.append(chunk)
        else:
            self._chunk(chunk)

    def _chunk(self, chunk: Chunk) -> None:
        """A piece of the text a node of the task is writing, as it comes:
        an ``artifactUpdate`` of that node visit's artifact."""
        latest = self.latest
        if latest is None or self.stopped:
            return
        if chunk.last:
            self._writing.pop(chunk.stream, None)
        else:
            before = self._writing.get(chunk.stream, ("", ""))[1] if chunk.append else ""
            self._writing[chunk.stream] = (chunk.node, before + chunk.text)
        event = self._update(latest, chunk.stream, chunk.node, chunk.text, chunk.append, chunk.last)
        if not self._followers and self._backlog is not None:
            self._backlog.append(event)
        self._publish(event)

    def _update(
        self, task: Task, stream: str, node: str, text: str, append: bool, last: bool
    ) -> StreamResponse:
        """The ``artifactUpdate`` of a chunk of ``stream`` on ``task`` (the latest seen)."""
        update = TaskArtifactUpdateEvent(
            task_id=self.task_id,
            context_id=task.context_id or self.task_id,
            artifact=Artifact(artifact_id=stream, name=node, parts=[Part(text=text)]),
            append=append,
            last_chunk=last,
        )
        return StreamResponse(artifact_update=update)

    def _publish(self, item: Item) -> None:
        self._spoke = time.monotonic()
        for queue in self._followers:
            queue.put_nowait(item)

    def _stop(self) -> None:
        self.stopped = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._unlive is not None:
            self._unlive()
            self._unlive = None
        if self.on_stop is not None:
            self.on_stop(self)
            self.on_stop = None


def _terminal(task: Task) -> bool:
    return TaskState(task.status.state).is_terminal


def _status_key(status: TaskStatus) -> tuple[str, object]:
    message = status.message.to_json() if status.message is not None else None
    return str(status.state), message


def _slim(task: Task, status: TaskStatus) -> Task:
    """``task`` without its history, artifacts and metadata."""
    return Task(id=task.id, context_id=task.context_id, status=status)


def _no_regress(previous: TaskStatus, status: TaskStatus) -> TaskStatus:
    if status.state == TaskState.SUBMITTED and previous.state != TaskState.SUBMITTED:
        return status.model_copy(update={"state": TaskState.WORKING})
    return status


class Watches:
    """The shared watches of one task service: one per watched task."""

    def __init__(self, store: Store, render: Render, poll: float = POLL_SECONDS) -> None:
        self._store = store
        self._render = render
        self._poll = poll
        self._watches: dict[str, Watch] = {}
        self._starting: dict[str, asyncio.Future[Watch]] = {}

    def followers(self, task_id: str) -> int:
        """How many streams follow ``task_id`` now (0 when it is not watched)."""
        watch = self._watches.get(task_id)
        return watch.followers if watch is not None else 0

    def __len__(self) -> int:
        return len(self._watches)

    async def private(self, task_id: str, base: Task) -> Watch:
        """A watch for one stream alone, starting from ``base``."""
        watch = Watch(self._store, task_id, self._render, self._poll, private=True)
        await watch.start(base)
        return watch

    async def shared(self, task_id: str) -> Watch:
        """The watch every subscriber of ``task_id`` joins, started if need be.
        The caller joins it before its next ``await``: a watch returned is live."""
        while True:
            watch = self._watches.get(task_id)
            if watch is None and (pending := self._starting.get(task_id)) is not None:
                watch = await asyncio.shield(pending)
            elif watch is None:
                watch = await self._start_shared(task_id)
            if not watch.stopped:
                return watch

    async def _start_shared(self, task_id: str) -> Watch:
        future: asyncio.Future[Watch] = asyncio.get_running_loop().create_future()
        self._starting[task_id] = future
        try:
            watch = Watch(self._store, task_id, self._render, self._poll)
            watch.on_stop = self._forget
            await watch.start()
            self._watches[task_id] = watch
            future.set_result(watch)
            return watch
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: a lone starter must not log "never retrieved"
            raise
        finally:
            self._starting.pop(task_id, None)

    def _forget(self, watch: Watch) -> None:
        if self._watches.get(watch.task_id) is watch:
            del self._watches[watch.task_id]

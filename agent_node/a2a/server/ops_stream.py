"""Server-Sent Events of the operator API: what changes, as it changes.

``GET /ops/stream``: the executions of this node that changed. A ``hello``
event opens it (the engine's state, and the ``store`` the node serves:
:func:`~.ops_store.store_identity`). The store's
notices (``status``, ``work``, ``cancel``, …: :mod:`agent_node.store.base`)
name an execution, often many times a second; so do this process's
commits (a step started or done, an execution created: the notices tell
only when work becomes ready, or an execution parks or ends — a chain of
steps run here, or a step that sleeps 12 s, would say nothing until it
ends). The stream observes commits only while someone follows it. What
they name is gathered for :data:`COALESCE` seconds and sent as one
``changes`` event holding each execution's summary as it is then; an
execution already sent less than :data:`SPACING` seconds ago waits out
the rest of it (a busy execution costs a viewer two rows a second, not
one per step). More than :data:`MAX_IDS` at once are
sent as ``{"overflow": n}`` instead (a viewer reloads its page). A comment
line every :data:`HEARTBEAT` seconds keeps proxies from closing the stream
and tells a client the node is alive.

``GET /ops/executions/{id}/live``: the text the execution's nodes write as
they write it (the store's live channel, :mod:`agent_node.store.live`):
``chunk`` events (``stream``, ``node``, ``text``, ``append``, ``last``);
a subscriber that comes late first gets each open stream's text so far.
An ``end`` event says the execution is over (it is sent at once for one
that has ended), and the stream closes. A reader too slow to keep up with
:data:`MAX_QUEUED` chunks gets ``overflow`` and the stream closes; it may
subscribe again and get the text so far.

Both end when the client goes (its unsubscribes run as the response
ends), and with a ``bye`` event when the node drains (``serving`` turns
false: looked at every :data:`TICK` seconds), so that a stop is not held
by its watchers.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from starlette.responses import StreamingResponse

from agent_node.engine.engine import EngineState
from agent_node.runtime import Runtime
from agent_node.store import TERMINAL, ExecutionRecord
from agent_node.store.base import Commit
from agent_node.store.live import Chunk

from .ops_edge import summary
from .ops_store import store_identity

__all__ = [
    "COALESCE",
    "HEARTBEAT",
    "MAX_IDS",
    "MAX_QUEUED",
    "SPACING",
    "TICK",
    "changes_stream",
    "live_stream",
]

HEARTBEAT = 15.0
#: How often a quiet stream looks whether the node still serves.
TICK = 1.0
COALESCE = 0.1
#: The least time between two changes of one execution on one stream.
SPACING = 0.5
MAX_IDS = 200
MAX_QUEUED = 4096
_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def frame(event: str, data: Any) -> bytes:
    """One SSE event (``event:`` line, one ``data:`` line of JSON)."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def _stream(frames: AsyncIterator[bytes]) -> StreamingResponse:
    return StreamingResponse(frames, media_type="text/event-stream", headers=_HEADERS)


def changes_stream(runtime: Runtime, serving: Callable[[], bool]) -> StreamingResponse:
    return _stream(_changes(runtime, serving))


class _Beat:
    """When a quiet stream owes its client a heartbeat."""

    def __init__(self) -> None:
        self.last = asyncio.get_running_loop().time()

    def due(self) -> bool:
        now = asyncio.get_running_loop().time()
        if now - self.last < HEARTBEAT:
            return False
        self.last = now
        return True


_BYE = frame("bye", {"reason": "the node is stopping"})


async def _changes(runtime: Runtime, serving: Callable[[], bool]) -> AsyncIterator[bytes]:
    store = runtime.store
    pace = _Pace()

    def noticed(kind: str, execution_id: str) -> None:
        pace.add(execution_id)

    def committed(commits: Sequence[Commit]) -> None:
        for record, _ in commits:
            pace.add(record.id)

    unsubscribe = store.subscribe(noticed)
    forget = store.observe(committed)
    try:
        hello = {"engine": runtime.engine.state.value, "store": await store_identity(store)}
        yield b"retry: 2000\n" + frame("hello", hello)
        beat = _Beat()
        while runtime.engine.state is EngineState.RUNNING and serving():
            try:
                await asyncio.wait_for(pace.wake.wait(), min(TICK, pace.wait()))
            except TimeoutError:
                if beat.due():
                    yield b": heartbeat\n\n"
                if not pace.ready():
                    continue
            await asyncio.sleep(COALESCE)
            ids = pace.take()
            if not ids:
                continue
            if len(ids) > MAX_IDS:
                yield frame("changes", {"executions": [], "overflow": len(ids)})
                continue
            found = [await store.get(execution_id) for execution_id in ids]
            rows = [summary(r) for r in found if r is not None]
            yield frame("changes", {"executions": rows, "overflow": 0})
        yield _BYE
    finally:
        forget()
        unsubscribe()


class _Pace:
    """The executions a stream owes its client, each at most once every
    :data:`SPACING` seconds: one sent less than that ago is held back."""

    def __init__(self) -> None:
        self.wake = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._pending: set[str] = set()
        #: When each execution was last sent (only those sent within SPACING).
        self._sent: dict[str, float] = {}

    def add(self, execution_id: str) -> None:
        self._pending.add(execution_id)
        if execution_id not in self._sent:
            self.wake.set()

    def wait(self) -> float:
        """Seconds until the first held-back execution may go (TICK if none)."""
        now = self._loop.time()
        held = [self._sent[i] + SPACING - now for i in self._pending if i in self._sent]
        return max(0.01, min(held, default=TICK))

    def ready(self) -> bool:
        return bool(self._pending) and self.wait() <= 0.01

    def take(self) -> list[str]:
        """The executions due now, sorted; those held back stay pending."""
        self.wake.clear()
        now = self._loop.time()
        self._sent = {i: at for i, at in self._sent.items() if now - at < SPACING}
        due = sorted(i for i in self._pending if i not in self._sent)
        self._pending.difference_update(due)
        for execution_id in due:
            self._sent[execution_id] = now
        return due


def live_stream(
    runtime: Runtime, record: ExecutionRecord, serving: Callable[[], bool]
) -> StreamingResponse:
    return _stream(_live(runtime, record, serving))


async def _live(
    runtime: Runtime, record: ExecutionRecord, serving: Callable[[], bool]
) -> AsyncIterator[bytes]:
    if record.status in TERMINAL:
        yield frame("end", {"status": record.status})
        return
    store = runtime.store
    queue: asyncio.Queue[Chunk | str] = asyncio.Queue(MAX_QUEUED)

    def put(item: Chunk | str) -> None:
        try:
            queue.put_nowait(item)
        except asyncio.QueueFull:
            _end_with(queue, "overflow")

    def noticed(kind: str, execution_id: str) -> None:
        if execution_id == record.id and kind in ("status", "cancel"):
            put("status")

    unsubscribe_notices = store.subscribe(noticed)
    unsubscribe_live = store.live.subscribe(record.id, put)
    try:
        beat = _Beat()
        while serving():
            try:
                item = await asyncio.wait_for(queue.get(), TICK)
            except TimeoutError:
                if not beat.due():
                    continue
                item = "status"  # a notice may come from elsewhere: look again
                yield b": heartbeat\n\n"
            if item == "overflow":
                yield frame("overflow", {"queued": MAX_QUEUED})
                return
            if isinstance(item, Chunk):
                yield frame("chunk", _chunk(item))
                continue
            now = await store.get(record.id)
            if now is None or now.status in TERMINAL:
                yield frame("end", {"status": now.status if now else None})
                return
        yield _BYE
    finally:
        unsubscribe_live()
        unsubscribe_notices()


def _end_with(queue: asyncio.Queue[Chunk | str], item: str) -> None:
    """Put ``item`` at the end of a full queue, dropping its oldest entry
    (the reader stops at ``overflow``: what follows it is lost anyway)."""
    try:
        queue.get_nowait()
    except asyncio.QueueEmpty:
        pass
    queue.put_nowait(item)


def _chunk(chunk: Chunk) -> dict[str, Any]:
    return {
        "stream": chunk.stream,
        "node": chunk.node,
        "text": chunk.text,
        "append": chunk.append,
        "last": chunk.last,
    }

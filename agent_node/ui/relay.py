"""Server-Sent Events for the page, relayed from the nodes' own streams.

``changes``: one stream for the page, fed by each node's ``/ops/stream``
(:mod:`agent_node.a2a.server.ops_stream`). Each node's ``changes`` event is
passed on with the node's name added, and the store it serves (as its
``hello`` said, told apart as :meth:`.Replicas.shown` does: the replicas
of a node tell the same changes, which the page applies to one row); a
``node`` event says when a node's
stream opens (``up``) or is lost (``down``, with why and since when: the
outage :mod:`.reach` keeps), and the relay tries
again with a growing pause (up to :data:`MAX_PAUSE` seconds); a node that
is down is followed through a replica of its store (:mod:`.calls`) where
the page follows none of them itself. A node that hangs keeps its stream
open and says nothing: a stream silent for :attr:`Watch.quiet` seconds
has its node asked ``/readyz``, and one that does not answer in
:attr:`Watch.answer` seconds counts as lost (its stream is let go and
followed again), not only after the :data:`~.calls.STREAM_IDLE` seconds
of silence that end a stream. ``live``: one execution's
``/ops/executions/{id}/live`` (a replica's when the node is down), its
``chunk``, ``end``, ``overflow`` and ``bye`` (the node stops) events
passed on, and an ``error`` event when the node cannot be followed. Only
those events are passed on, re-encoded here (nothing a node sends goes to
the page as raw bytes), and every upstream stream closes when the page
goes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from starlette.responses import StreamingResponse

from .calls import GLANCE, Calls, NodeDown, Stream, path
from .replicas import store_of
from .targets import Target

__all__ = ["Watch", "changes", "live"]

HEARTBEAT = 15.0
MAX_PAUSE = 15.0
_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
_LIVE_EVENTS = frozenset({"chunk", "end", "overflow", "bye"})


@dataclass(frozen=True)
class Watch:
    """How a node that hangs is told from one with nothing to say."""

    #: Seconds a followed stream may be silent before its node is asked
    #: whether it still answers (its heartbeats come every 15).
    quiet: float = 8.0
    #: Seconds it has to answer.
    answer: float = GLANCE


def frame(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def _response(frames: AsyncIterator[bytes]) -> StreamingResponse:
    return StreamingResponse(frames, media_type="text/event-stream", headers=_HEADERS)


async def events(lines: AsyncIterator[str]) -> AsyncIterator[tuple[str, Any]]:
    """``(event, data)`` of an SSE stream whose data lines are JSON."""
    name = "message"
    async for line in lines:
        if line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            try:
                data = json.loads(line[5:])
            except ValueError:
                continue
            yield name, data
        elif not line:
            name = "message"


def changes(calls: Calls, targets: list[Target], watch: Watch) -> StreamingResponse:
    return _response(_changes(calls, targets, watch))


async def _changes(calls: Calls, targets: list[Target], watch: Watch) -> AsyncIterator[bytes]:
    queue: asyncio.Queue[bytes] = asyncio.Queue(1000)
    followers = [asyncio.create_task(_follow(calls, t, targets, queue, watch)) for t in targets]
    try:
        yield b"retry: 3000\n\n"
        while True:
            try:
                yield await asyncio.wait_for(queue.get(), HEARTBEAT)
            except TimeoutError:
                yield b": heartbeat\n\n"
    finally:
        for follower in followers:
            follower.cancel()
        for follower in followers:
            with contextlib.suppress(asyncio.CancelledError):
                await follower


async def _follow(
    calls: Calls,
    target: Target,
    followed: list[Target],
    queue: asyncio.Queue[bytes],
    watch: Watch,
) -> None:
    pause = 1.0
    while True:
        # A replica stands in for the node only where the page follows none of them.
        alone = not any(r in followed for r in calls.replicas.of(target))
        try:
            async with calls.stream(target, "/ops/stream", fall_over=alone) as stream:
                await queue.put(frame("node", {"node": target.key, "up": True}))
                pause = 1.0
                why = await _heard(calls, target, stream, queue, watch)
        except NodeDown as exc:
            why = str(exc)
        outage = calls.reach.lost(target.key, why)
        down = {"node": target.key, "up": False, "error": why, "since": outage.since}
        await queue.put(frame("node", down))
        await asyncio.sleep(pause)
        pause = min(pause * 2, MAX_PAUSE)


async def _heard(
    calls: Calls, target: Target, stream: Stream, queue: asyncio.Queue[bytes], watch: Watch
) -> str:
    """Pass on what ``target``'s stream tells until it ends, or its node
    stops answering (:func:`_hung`); why it was lost."""
    silence = _Silence()
    passing = asyncio.create_task(_pass_on(calls, target, stream, silence, queue))
    hanging = asyncio.create_task(_hung(calls, stream.by, silence, watch))
    try:
        done, _ = await asyncio.wait((passing, hanging), return_when=asyncio.FIRST_COMPLETED)
        return await next(iter(done))
    finally:
        for task in (passing, hanging):
            task.cancel()
        await asyncio.gather(passing, hanging, return_exceptions=True)


async def _pass_on(
    calls: Calls, target: Target, stream: Stream, silence: _Silence, queue: asyncio.Queue[bytes]
) -> str:
    why = "its stream ended"
    named: dict[str, Any] = {"node": target.key}
    async for name, data in events(silence.heard(stream.lines)):
        if name == "hello" and store_of(data) is not None:
            calls.replicas.learn(stream.by, data, stream.identity)
            named = {"node": target.key, "store": calls.replicas.shown(stream.by)}
        elif name == "changes" and isinstance(data, dict):
            await queue.put(frame("changes", {**data, **named}))
        elif name == "bye":
            why = "it is stopping"
    return why


class _Silence:
    """When a followed stream last said anything (a heartbeat too)."""

    def __init__(self) -> None:
        self.at = time.monotonic()

    async def heard(self, lines: AsyncIterator[str]) -> AsyncIterator[str]:
        async for line in lines:
            self.at = time.monotonic()
            yield line

    def lasted(self) -> float:
        return time.monotonic() - self.at


async def _hung(calls: Calls, by: Target, silence: _Silence, watch: Watch) -> str:
    """Returns (why) once the node serving a stream silent for ``watch.quiet``
    seconds does not answer ``/readyz`` in ``watch.answer`` seconds."""
    while True:
        await asyncio.sleep(max(0.0, watch.quiet - silence.lasted()))
        if silence.lasted() < watch.quiet:
            continue
        try:
            await calls.get(by, "/readyz", timeout=watch.answer, fall_over=False)
        except NodeDown as exc:
            return f"{exc} (its stream was silent for {silence.lasted():.0f} s)"
        silence.at = time.monotonic()  # it answers: quiet, not hung


def live(calls: Calls, target: Target, execution_id: str) -> StreamingResponse:
    return _response(_live(calls, target, execution_id))


async def _live(calls: Calls, target: Target, execution_id: str) -> AsyncIterator[bytes]:
    where = path("ops", "executions", execution_id, "live")
    try:
        async with calls.stream(target, where) as stream:
            yield b"retry: 3000\n\n"
            async for name, data in events(stream.lines):
                if name in _LIVE_EVENTS and isinstance(data, dict):
                    yield frame(name, data)
                    if name != "chunk":
                        return
    except NodeDown as exc:
        yield frame("error", {"message": str(exc)})

"""Server-Sent Events for the page, relayed from the nodes' own streams.

``changes``: one stream for the page, fed by each node's ``/ops/stream``
(:mod:`agent_node.a2a.server.ops_stream`). Each node's ``changes`` event is
passed on with the node's name added, and the store it serves (as its
``hello`` said: nodes of one store tell the same changes, which the page
applies to one row); a ``node`` event says when a node's
stream opens (``up``) or is lost (``down``, with why), and the relay tries
again with a growing pause (up to :data:`MAX_PAUSE` seconds); a node that
is down is followed through a replica of its store (:mod:`.calls`) where
the page follows none of them itself. ``live``: one execution's
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
from collections.abc import AsyncIterator
from typing import Any

from starlette.responses import StreamingResponse

from .calls import Calls, NodeDown, path
from .replicas import store_of
from .targets import Target

__all__ = ["changes", "live"]

HEARTBEAT = 15.0
MAX_PAUSE = 15.0
_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
_LIVE_EVENTS = frozenset({"chunk", "end", "overflow", "bye"})


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


def changes(calls: Calls, targets: list[Target]) -> StreamingResponse:
    return _response(_changes(calls, targets))


async def _changes(calls: Calls, targets: list[Target]) -> AsyncIterator[bytes]:
    queue: asyncio.Queue[bytes] = asyncio.Queue(1000)
    followers = [asyncio.create_task(_follow(calls, t, targets, queue)) for t in targets]
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
    calls: Calls, target: Target, followed: list[Target], queue: asyncio.Queue[bytes]
) -> None:
    pause = 1.0
    while True:
        # A replica stands in for the node only where the page follows none of them.
        alone = not any(r in followed for r in calls.replicas.of(target))
        try:
            async with calls.stream(target, "/ops/stream", fall_over=alone) as lines:
                await queue.put(frame("node", {"node": target.key, "up": True}))
                pause = 1.0
                why = "its stream ended"
                named: dict[str, Any] = {"node": target.key}
                async for name, data in events(lines):
                    if name == "hello" and (store := store_of(data)) is not None:
                        named = {"node": target.key, "store": store}
                    elif name == "changes" and isinstance(data, dict):
                        await queue.put(frame("changes", {**data, **named}))
                    elif name == "bye":
                        why = "it is stopping"
        except NodeDown as exc:
            why = str(exc)
        await queue.put(frame("node", {"node": target.key, "up": False, "error": why}))
        await asyncio.sleep(pause)
        pause = min(pause * 2, MAX_PAUSE)


def live(calls: Calls, target: Target, execution_id: str) -> StreamingResponse:
    return _response(_live(calls, target, execution_id))


async def _live(calls: Calls, target: Target, execution_id: str) -> AsyncIterator[bytes]:
    where = path("ops", "executions", execution_id, "live")
    try:
        async with calls.stream(target, where) as lines:
            yield b"retry: 3000\n\n"
            async for name, data in events(lines):
                if name in _LIVE_EVENTS and isinstance(data, dict):
                    yield frame(name, data)
                    if name != "chunk":
                        return
    except NodeDown as exc:
        yield frame("error", {"message": str(exc)})

"""Server-Sent Events for the streaming methods of the HTTP bindings.

Each event is one line ``data: <json>`` and a blank line. Over JSON-RPC the
JSON is a whole JSON-RPC response: ``{"jsonrpc": "2.0", "id": …, "result":
<event>}``, the event being the 1.0 ``StreamResponse``, or for a 0.3 caller
the bare 0.3 event (``kind``; a status update says ``final`` when the stream
ends after it); an error once the stream has begun is sent as one event with
a JSON-RPC ``error`` body, and the stream ends. Over HTTP+JSON the JSON is
the bare ``StreamResponse``, and an error is an ``error`` event holding the
binding's error object.

A stream of a task (a :class:`~.task_stream.TaskStream`) quiet for
:data:`~.streaming.KEEPALIVE_SECONDS` gets a comment line, ``: ping``, as
the official a2a-sdk server sends: SSE clients skip comments (the a2a-sdk's
0.3 and 1.x clients, a2a-js), and a read timeout or a proxy's idle cut no
longer ends a stream whose task is just slow. (Another handler's iterator
is streamed as it comes.)

The handler's iterator is always closed when the response ends, also when
the client went away, so that it stops following its task at once.

A client that goes away is noticed while its stream is idle. The node's
server tells the response itself (:class:`~agent_node.scope.WhenGone`
in the scope), so an open stream runs no task but its request's. Elsewhere
(another server, tests over ``httpx.ASGITransport``) a task waits on
``receive`` for ``http.disconnect``, as Starlette's ``StreamingResponse``
does; but that one task is all it adds, where Starlette runs an anyio task
group of two tasks, with cancel scopes and an event (some 5 KiB a stream,
idle almost all its life).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any, Literal

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from agent_node.a2a.protocol import compat
from agent_node.a2a.protocol.errors import A2AError, InternalError, to_jsonrpc_error
from agent_node.a2a.protocol.models import StreamResponse
from agent_node.a2a.server.task_stream import TaskStream, ends_stream
from agent_node.errors import StoreError
from agent_node.scope import WHEN_GONE, WhenGone

__all__ = ["PING", "EventStreamResponse", "bare_event_stream", "event_stream"]

log = logging.getLogger(__name__)

Version = Literal["1.0", "0.3"]

#: What a quiet stream sends to say it is alive: a comment, which clients skip.
PING = b": ping\n\n"

#: Streams that end at an interrupted state too (a subscription waits on).
_UNTIL_INTERRUPTED = frozenset({"SendStreamingMessage"})


class EventStreamResponse(StreamingResponse):
    """A ``text/event-stream`` response that closes its events when it ends."""

    media_type = "text/event-stream"

    def __init__(
        self, content: AsyncGenerator[bytes, None], events: AsyncIterator[StreamResponse]
    ) -> None:
        super().__init__(content, headers={"Cache-Control": "no-cache"})
        self._content = content
        self._events = events

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        streaming = asyncio.current_task()
        if streaming is None:
            raise RuntimeError("an event stream is sent from a task")
        phase: Literal["streaming", "gone"] = "streaming"

        def gone() -> None:
            nonlocal phase
            phase = "gone"
            streaming.cancel()  # lands where the stream waits: nowhere else awaits

        def heard(listener: asyncio.Task[None]) -> None:
            if not listener.cancelled():
                listener.exception()  # retrieved: a receive that failed is a client gone too
            gone()

        told = scope.get(WHEN_GONE)
        listener: asyncio.Task[None] | None = None
        if isinstance(told, WhenGone):  # the node's server tells: no task need listen
            told.callback = gone
        else:
            listener = asyncio.create_task(_until_disconnect(receive), name="sse disconnect")
            listener.add_done_callback(heard)
        try:
            try:
                await self.stream_response(send)
            finally:
                if listener is not None:
                    listener.remove_done_callback(heard)
                    listener.cancel()
                if isinstance(told, WhenGone):
                    told.callback = None
                await self._content.aclose()
                await _close(self._events)
        except asyncio.CancelledError:
            if phase == "streaming" or streaming.uncancel() > 0:
                raise  # not (only) ours: the server stops, say

    async def stream_response(self, send: Send) -> None:
        """Starlette's, but not holding the last event sent while it waits for
        the next (most of a stream's life); the first is the whole task."""
        status, headers = self.status_code, self.raw_headers
        await send({"type": "http.response.start", "status": status, "headers": headers})
        async for chunk in self._content:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            del chunk
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def event_stream(
    rpc_id: Any, method: str, version: Version, events: AsyncIterator[StreamResponse]
) -> EventStreamResponse:
    """The response streaming ``events`` of the 1.0 ``method`` to a ``version``
    JSON-RPC caller."""
    at_interrupt = method in _UNTIL_INTERRUPTED

    def frame(event: StreamResponse) -> bytes:
        result = event.to_json()
        if version == "0.3":
            final = ends_stream(event, at_interrupt=at_interrupt)
            result = compat.stream_event_to_v03(result, final=final)
        return _frame({"jsonrpc": "2.0", "id": rpc_id, "result": result}, ascii_only=False)

    def error(exc: A2AError) -> bytes:
        body = {"jsonrpc": "2.0", "id": rpc_id, "error": to_jsonrpc_error(exc, version)}
        return _frame(body, ascii_only=True)

    return EventStreamResponse(_frames(method, events, frame, error), events)


def bare_event_stream(
    method: str,
    events: AsyncIterator[StreamResponse],
    error_body: Callable[[A2AError], dict[str, Any]],
) -> EventStreamResponse:
    """The response streaming ``events`` of the 1.0 ``method`` as bare
    ``StreamResponse`` objects (the HTTP+JSON binding); an error is an
    ``error`` event whose data is ``error_body(exc)``."""

    def frame(event: StreamResponse) -> bytes:
        return _frame(event.to_json(), ascii_only=False)

    def error(exc: A2AError) -> bytes:
        return b"event: error\n" + _frame(error_body(exc), ascii_only=True)

    return EventStreamResponse(_frames(method, events, frame, error), events)


async def _frames(
    method: str,
    events: AsyncIterator[StreamResponse],
    frame: Callable[[StreamResponse], bytes],
    error: Callable[[A2AError], bytes],
) -> AsyncGenerator[bytes, None]:
    step: Callable[[], Awaitable[StreamResponse | None]] = events.__anext__
    following = isinstance(events, TaskStream)
    if isinstance(events, TaskStream):  # a task's stream: None when it is quiet
        step = events.next_or_keepalive
    try:
        while True:
            try:
                event = await step()
            except StopAsyncIteration:
                break
            if event is None and following:
                yield PING
                continue
            if not isinstance(event, StreamResponse):
                raise TypeError(f"{method} handler streamed {type(event).__name__}")
            yield frame(event)
            del event  # not held while the next one is awaited: most of a stream's life
    except A2AError as exc:
        yield error(exc)
    except StoreError as exc:  # says what failed: no traceback needed
        log.error("A2A %s stream failed: %s", method, exc)
        yield error(InternalError.of(exc))
    except Exception:
        log.exception("A2A %s stream failed", method)
        yield error(InternalError("internal error"))
    finally:
        await _close(events)


async def _close(events: AsyncIterator[StreamResponse]) -> None:
    aclose = getattr(events, "aclose", None)
    if aclose is not None:
        await aclose()


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def _frame(body: dict[str, Any], *, ascii_only: bool) -> bytes:
    text = json.dumps(body, ensure_ascii=ascii_only, allow_nan=False, separators=(",", ":"))
    return f"data: {text}\n\n".encode()

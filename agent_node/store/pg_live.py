"""The live channel across the replicas of one PostgreSQL database.

A node visit writes its text where it runs; its task's subscriber may be
connected to another replica. Chunks therefore also travel as ``NOTIFY
agent_node_live`` payloads, sent on a connection of their own (one session:
PostgreSQL delivers its notifications in order), several chunks to a
payload (under PostgreSQL's 8000-byte limit; a longer text is cut), and
delivered by every other replica to its local listeners.

Only what someone elsewhere watches is sent: a replica whose listener
subscribes to an execution announces it (``watch``), again every
:data:`ANNOUNCE_EVERY` seconds while it listens; a replica writing that
execution's text sends its chunks while an announcement younger than
:data:`INTEREST` seconds stands, and answers a fresh announcement with the
text so far of each stream being written (one opening chunk each), so a
subscriber on another replica joins mid-stream as a local one does. A
replica that starts asks the others what they watch (``q``), so one that
restarted after a crash streams to their subscribers at once.
Best effort, like the channel itself: a replica that misses a notification
(its listening connection lost) misses those chunks; the task's artifacts
are in the store regardless.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from agent_node.store.live import Chunk, Live, LiveListener

__all__ = ["LIVE_CHANNEL", "PgLive"]

log = logging.getLogger(__name__)

LIVE_CHANNEL = "agent_node_live"
#: Seconds between two announcements of an execution watched here.
ANNOUNCE_EVERY = 10.0
#: Seconds an announcement keeps an execution's chunks going out.
INTEREST = 30.0
#: Characters of chunk text in one piece (at most 4 bytes each in UTF-8).
PAYLOAD_TEXT = 1500
#: Bytes of one payload at most (NOTIFY takes under 8000).
PAYLOAD_BYTES = 7000

Send = Callable[[str], Any]  # an awaitable NOTIFY of one payload


class PgLive(Live):
    """:class:`~.live.Live`, and the other replicas' listeners through NOTIFY."""

    def __init__(self) -> None:
        super().__init__()
        self.origin = uuid.uuid4().hex[:16]
        self._interest: dict[str, float] = {}  # execution → until when elsewhere watches it
        self._outbox: list[dict[str, Any]] = []
        self._wake = asyncio.Event()
        self._sender: asyncio.Task[None] | None = None
        self._announcer: asyncio.Task[None] | None = None

    # Lifecycle (the store's)

    def start(self, send: Send) -> None:
        self._sender = asyncio.create_task(self._send_loop(send), name="live-notify")
        self._announcer = asyncio.create_task(self._announce_loop(), name="live-announce")
        # A replica that (re)starts knows of no watcher yet: ask them to say
        # so now, not at their next announcement (a node re-run after a crash
        # streams to a subscriber on another replica from its first chunk).
        self._queue({"q": 1})

    async def stop(self) -> None:
        for task in (self._sender, self._announcer):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._sender = self._announcer = None

    # The channel

    def subscribe(self, execution_id: str, listener: LiveListener) -> Callable[[], None]:
        first = execution_id not in self._listeners
        unsubscribe = super().subscribe(execution_id, listener)
        if first:
            self._queue({"w": execution_id})
        return unsubscribe

    def publish(self, chunk: Chunk, *, share: bool = True) -> None:
        super().publish(chunk)
        if share and self._interest.get(chunk.execution_id, 0.0) > time.monotonic():
            self._queue_chunk(chunk)

    def on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        """A notification of another replica (ours come back too: skipped)."""
        try:
            message = json.loads(payload)
            if message.get("o") == self.origin:
                return
            if "w" in message:
                self._watched_elsewhere(str(message["w"]))
            if "q" in message:  # a replica started: what is watched here?
                for execution_id in list(self._listeners):
                    self._queue({"w": execution_id})
            for fields in message.get("c", ()):
                super().publish(Chunk(*fields))
        except (ValueError, TypeError, KeyError) as exc:
            log.warning("a live notification that is not one: %s", exc)

    def _watched_elsewhere(self, execution_id: str) -> None:
        fresh = self._interest.get(execution_id, 0.0) <= time.monotonic()
        self._interest[execution_id] = time.monotonic() + INTEREST
        if fresh:  # what it missed: the text so far of each stream being written
            for stream, (node, pieces) in list(self._open.get(execution_id, {}).items()):
                opening = Chunk(execution_id, stream, node, "".join(pieces), False, False)
                self._queue_chunk(opening)

    # Sending

    def _queue_chunk(self, chunk: Chunk) -> None:
        text, append = chunk.text, chunk.append
        while True:  # a long text goes in pieces, the last keeping ``last``
            piece, text = text[:PAYLOAD_TEXT], text[PAYLOAD_TEXT:]
            last = chunk.last and not text
            fields = [chunk.execution_id, chunk.stream, chunk.node, piece, append, last]
            self._queue({"c": [fields]})
            append = True
            if not text:
                return

    def _queue(self, message: dict[str, Any]) -> None:
        self._outbox.append(message)
        self._wake.set()

    async def _send_loop(self, send: Send) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._outbox = self._outbox, []
            for payload in _payloads(self.origin, batch):
                try:
                    await send(payload)
                except Exception as exc:  # best effort: the store has the results
                    log.warning("live chunks not sent to other replicas: %s", exc)

    async def _announce_loop(self) -> None:
        while True:
            await asyncio.sleep(ANNOUNCE_EVERY)
            for execution_id in list(self._listeners):
                self._queue({"w": execution_id})
            now = time.monotonic()
            for execution_id, until in list(self._interest.items()):
                if until <= now:
                    del self._interest[execution_id]


def _payloads(origin: str, batch: list[dict[str, Any]]) -> list[str]:
    """``batch`` as few NOTIFY payloads as fit (announcements alone, chunks
    together, in order)."""
    payloads: list[str] = []
    chunks: list[list[Any]] = []
    size = 0

    def flush() -> None:
        nonlocal chunks, size
        if chunks:
            payloads.append(_json({"o": origin, "c": chunks}))
            chunks, size = [], 0

    for message in batch:
        if "w" in message or "q" in message:
            flush()
            payloads.append(_json({"o": origin, **message}))
            continue
        for fields in message["c"]:
            cost = len(_json(fields).encode()) + 1
            if size + cost > PAYLOAD_BYTES - 64:
                flush()
            chunks.append(fields)
            size += cost
    flush()
    return payloads


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))

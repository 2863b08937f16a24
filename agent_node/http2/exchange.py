"""One request on an HTTP/2 stream, as the app sees it
(:class:`~agent_node.http2.asgi.AsgiConnection` serves the streams): what
the client sent, the app's ``receive`` and ``send``, and how its answer
stands. A body that makes no progress for the connection's
``read_timeout`` while the app waits for it is the connection's to answer
(``body_late``)."""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

__all__ = ["Answering", "Exchange"]


class Answering(Protocol):
    """What a stream asks of its connection."""

    read_timeout: float

    async def answer(self, stream: Exchange, body: bytes, more: bool) -> None: ...

    async def body_late(self, stream: Exchange) -> None: ...


class Exchange:
    """One request on a stream, as the app sees it: what the client sent, and
    how its answer stands (the stream's windows are :class:`.sender.Stream`'s)."""

    __slots__ = (
        "body",
        "conn",
        "done",
        "ended",
        "gone",
        "head",
        "read_all",
        "received",
        "scope",
        "sid",
        "started",
        "told",
        "waiter",
    )

    def __init__(self, conn: Answering, sid: int, scope: dict[str, Any], ended: bool) -> None:
        self.conn, self.sid, self.scope = conn, sid, scope
        self.body: list[bytes] = []
        self.received = 0  # body bytes kept
        self.ended = ended  # the request's body is all here
        self.read_all = False  # ... and the app was told
        self.waiter: asyncio.Future[None] | None = None  # receive() waiting
        self.head: tuple[int, Any] | None = None  # http.response.start, not sent yet
        self.started = False  # the response's headers are out
        self.done = False  # the response is complete
        self.gone = False  # the client reset the stream, or left
        self.told: Any = None  # the scope's WhenGone

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def leave(self) -> None:
        """The client is gone: the app's receive and WhenGone say so."""
        if self.gone:
            return
        self.gone = True
        self.wake()
        told = self.told
        if told is not None and not self.done and told.callback is not None:
            told.callback()

    async def receive(self) -> dict[str, Any]:
        while True:
            if self.body:
                body = self.body[0] if len(self.body) == 1 else b"".join(self.body)
                self.body.clear()
                self.read_all = self.ended
                return {"type": "http.request", "body": body, "more_body": not self.ended}
            if self.ended and not self.read_all:
                self.read_all = True
                return {"type": "http.request", "body": b"", "more_body": False}
            if self.gone or self.done:
                return {"type": "http.disconnect"}
            self.waiter = asyncio.get_running_loop().create_future()
            try:
                patience = None if self.ended else self.conn.read_timeout
                came, _ = await asyncio.wait((self.waiter,), timeout=patience)
                if not came:
                    await self.conn.body_late(self)
            finally:
                self.waiter = None

    async def send(self, message: Any) -> None:
        if self.gone or self.done:
            return  # as uvicorn: a response nobody reads is dropped
        kind = message["type"]
        if kind == "http.response.start":
            if self.head is not None or self.started:
                raise RuntimeError("the response has started already")
            self.head = (int(message["status"]), message.get("headers") or ())
            return
        if kind != "http.response.body":
            raise RuntimeError(f"unexpected ASGI message {kind!r}")
        if self.head is None and not self.started:
            raise RuntimeError("a response body before http.response.start")
        body = b"" if self.scope["method"] == "HEAD" else message.get("body") or b""
        await self.conn.answer(self, body, bool(message.get("more_body")))

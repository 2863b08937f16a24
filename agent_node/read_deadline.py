"""How long an HTTP/1.1 connection waits for its client (``limits.read_timeout``).

uvicorn times a connection only between two requests (its keep-alive timer
starts once a response is out): one that never sent a request, or stopped
halfway through its head or its body, was held open for ever — a thousand
of them, each a descriptor, took the node's last ones, and a body that
never ended held its caller's in-flight slot. :class:`ReadDeadline` is a
mixin for the node's uvicorn protocol (``agent_node.http_protocol``) that
closes such connections:

* a request head (its line and headers) must be complete within
  ``read_timeout`` of connecting, or of its first byte on a kept-alive
  connection; sending it a byte at a time does not move the deadline;
* a body must make progress: ``read_timeout`` without a part of it ends
  the request, answered ``408 Request Timeout`` when nothing was answered
  yet. While the node itself does not read (the app has not asked for the
  body yet, or a ``100 Continue`` is still to be sent) the client is not
  waited on.

A response takes as long as it takes: an event stream is not timed here.

One deadline a connection, moved lazily: what a client sends stores when it
is late next (a body's every part moves it), and one timer of the loop's
rings at the earliest such time; when it rings it looks at the stored time,
and waits on (one timer more) when that moved. A body of a thousand parts
costs one timer, not a thousand made and cancelled ones (each a heap entry
the loop sorts, then drops).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Literal

__all__ = ["ReadDeadline"]

log = logging.getLogger(__name__)

_LATE_TEXT = b"Request Timeout: the request did not arrive in time."
_LATE = (
    b"HTTP/1.1 408 Request Timeout\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"content-length: " + str(len(_LATE_TEXT)).encode() + b"\r\n"
    b"connection: close\r\n\r\n" + _LATE_TEXT
)

#: What a connection waits on its client for: a first request, the rest of
#: a request's head, the next part of its body.
Awaited = Literal["request", "head", "body"]


class ReadDeadline:
    """Closes an HTTP/1.1 connection whose client is late (see the module).
    The subclass sets ``read_timeout`` and keeps ``_read_timer``,
    ``_read_due`` and ``_read_for`` in slots of its own (of a class's bases
    only one may have slots)."""

    read_timeout: float
    loop: asyncio.AbstractEventLoop
    transport: Any
    cycle: Any
    flow: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        #: The loop's timer; it may ring before the deadline, never after.
        self._read_timer: asyncio.TimerHandle | None = None
        #: When (the loop's time) the client is late; None: not waited on.
        self._read_due: float | None = None
        self._read_for: Awaited = "request"
        super().__init__(*args, **kwargs)

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._wait("request")

    def connection_lost(self, exc: Exception | None) -> None:
        self._read_due = None
        if self._read_timer is not None:  # it would hold the connection until it rings
            self._read_timer.cancel()
            self._read_timer = None
        super().connection_lost(exc)  # type: ignore[misc]

    def on_message_begin(self) -> None:
        super().on_message_begin()  # type: ignore[misc]
        if self._read_for == "request" and self._read_due is not None:
            self._read_for = "head"  # the first: its deadline counts from connecting
        else:  # a kept-alive connection's next request
            self._wait("head")

    def on_headers_complete(self) -> None:
        super().on_headers_complete()  # type: ignore[misc]
        self._wait("body")  # until on_message_complete: at once without a body

    def on_body(self, body: bytes) -> None:
        super().on_body(body)  # type: ignore[misc]
        self._wait("body")

    def on_message_complete(self) -> None:
        super().on_message_complete()  # type: ignore[misc]
        self._read_due = None  # the timer, if any, rings and finds nothing due

    def _wait(self, awaited: Awaited) -> None:
        """Wait ``read_timeout`` from now for what is ``awaited``. A timer
        already set stays: it rings before this deadline (one
        ``read_timeout`` for all, so a deadline only ever moves later)."""
        due = self.loop.time() + self.read_timeout
        self._read_due, self._read_for = due, awaited
        if self._read_timer is None:
            self._read_timer = self.loop.call_at(due, self._rang)

    def _rang(self) -> None:
        timer, self._read_timer = self._read_timer, None
        due = self._read_due
        if due is None or timer is None:
            return
        if due > timer.when():  # moved since it was set: wait on
            self._read_timer = self.loop.call_at(due, self._rang)
            return
        self._read_due = None
        _LATE_FOR[self._read_for](self)

    def _nothing_came(self) -> None:
        log.debug("closed a connection that sent no request in %ss", self.read_timeout)
        self.transport.close()

    def _head_late(self) -> None:
        log.debug("closed a connection whose request head took over %ss", self.read_timeout)
        self._answer_late()

    def _body_late(self) -> None:
        cycle = self.cycle
        if cycle is None or self.transport.is_closing():
            return
        if self.flow.read_paused or cycle.waiting_for_100_continue:
            self._wait("body")  # the app has not read yet: nothing is late
            return
        log.debug(
            "%s %s: no part of the body in %ss",
            cycle.scope.get("method"),
            cycle.scope.get("path"),
            self.read_timeout,
        )
        if cycle.response_started:
            self.transport.close()
            return
        # The app waits for the body: it is told the caller is gone, and
        # whatever it answers is dropped (uvicorn sends nothing once disconnected).
        cycle.disconnected = True
        cycle.message_event.set()
        self._answer_late()

    def _answer_late(self) -> None:
        if not self.transport.is_closing():
            self.transport.write(_LATE)
            self.transport.close()


_LATE_FOR = {
    "request": ReadDeadline._nothing_came,
    "head": ReadDeadline._head_late,
    "body": ReadDeadline._body_late,
}

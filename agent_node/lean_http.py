"""What uvicorn's HTTP protocol holds per connection, made less.

An open SSE stream is a connection idle almost all its life, and a node may
hold thousands; uvicorn keeps objects per connection and per request that
cost more than they need to (measured per open stream over mutual TLS,
``bench/a2a/sse_memory.py``). :class:`LeanConnection` is a mixin for
uvicorn's ``HttpToolsProtocol`` (``agent_node.http_protocol`` serves with it).
Its asyncio counterpart, for the TLS layer under it, is
:mod:`agent_node.lean_tls`.
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["Event", "LeanConnection", "Pipeline"]


class Event:
    """``asyncio.Event``'s ``set``, ``clear`` and ``wait``, with a list of
    waiters only while some wait: an ``asyncio.Event`` holds a deque (~0.7
    KiB with its first block) for its whole life."""

    __slots__ = ("_set", "_waiters")

    def __init__(self) -> None:
        self._set = False
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        if self._set:
            return
        self._set = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> bool:
        if self._set:
            return True
        waiter = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            if self._waiters is not None and waiter in self._waiters:
                self._waiters.remove(waiter)
        return True


class Pipeline(list[Any]):
    """uvicorn's queue of pipelined requests (``appendleft``, ``pop``) as a
    list: an empty deque keeps a block of 64 items (~0.7 KiB)."""

    __slots__ = ()

    def appendleft(self, item: Any) -> None:
        self.insert(0, item)


class LeanConnection:
    """What uvicorn's HTTP protocol holds for each connection, made less: an
    open SSE stream is a connection idle almost all its life, and a node may
    hold thousands.

    * Its attributes fit the instance's shared-key values: past 29
      attributes CPython gives an instance a dict of its own (~1.6 KiB,
      against ~0.3 KiB). uvicorn sets 28; what our subclasses add lives in
      ``__slots__``.
    * Its events (the flow control's "writable" and each request's "message
      came") are :class:`Event`, and its queue of pipelined requests a
      :class:`Pipeline`: an ``asyncio.Event`` and a deque hold ~0.7 KiB
      each, idle or not.
    * A lost connection lets go of its requests, so that it is freed once
      they end, not at the cyclic collector's next full pass.

    The objects replaced are uvicorn's own attributes, swapped right after
    uvicorn made them and before anything waits on them; should a later
    uvicorn name them otherwise, its own stay and work as before.
    """

    __slots__ = ()
    flow: Any
    cycle: Any
    pipeline: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pipeline = Pipeline()

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        writable = Event()
        writable.set()
        self.flow._is_writable_event = writable

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)  # type: ignore[misc]
        # The last request holds the protocol (its response's callback), the
        # protocol held it: a cycle that kept a lost connection, its TLS state
        # too (~30 KiB), until the collector's next full pass.
        self.cycle = None
        self.pipeline.clear()

    def on_headers_complete(self) -> None:
        before = self.cycle
        super().on_headers_complete()  # type: ignore[misc]
        if self.cycle is not before:  # a new request's, not started: nobody waits on it yet
            self.cycle.message_event = Event()

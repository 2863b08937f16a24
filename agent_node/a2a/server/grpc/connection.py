"""gRPC over HTTP/2 on asyncio: a connection and its calls.

The server side of the gRPC protocol (`PROTOCOL-HTTP2`_) for the methods of
:class:`~.calls.Method`: a request is a ``POST /package.Service/Method``
whose body is length-prefixed messages; the answer is ``:status 200``, the
reply messages, and trailers whose ``grpc-status`` says how the call ended
(an error before any reply is one *trailers-only* HEADERS frame). HTTP/2
itself is :mod:`.wire`.

Why not grpcio's server: grpc.aio hands the event loop one call per
iteration from its own threads, which cost ~0.2 ms of CPU per call more
than an asyncio protocol and defeated the store's group commit (a batch of
~2 jobs under gRPC against ~13 under JSON-RPC); and its TLS can require a
client certificate or not ask for one, not ask without requiring it, so a
client authenticating with a bearer token or an API key could not use gRPC
over TLS. Here a connection is an :class:`asyncio.Protocol`, as the HTTP
bindings' are, and TLS is the node's own context (client certificates asked
for, verified when given).

What a connection enforces:

* Requests as :func:`~.calls.request_head` and :func:`~.calls.request_message`
  read them; ``grpc-timeout`` bounds the call (DEADLINE_EXCEEDED).
* A client that resets a stream cancels its call; a lost connection
  cancels all of them; a reset flood, or an HTTP/2 protocol error, ends the
  connection (:mod:`agent_node.http2.connection`). A connection with no
  call for ``idle_close`` (:data:`~.server.IDLE_CLOSE`) seconds is closed
  with a GOAWAY (clients reconnect on their next call); meanwhile it is idle
  to the listener's cap (:mod:`agent_node.connection_cap`), which may give
  its place to a new connection (a GOAWAY, then closed at once).
* Replies respect the client's flow-control windows and the socket's
  backpressure, so a slow reader of a stream holds no unbounded buffer.
  What the calls of one turn of the event loop answer leaves in one write.
* Stopping (:meth:`~.server.Http2Server.stop`): no new connections, a GOAWAY on
  every open one (streams it opens later are refused, so the client
  retries them elsewhere), calls in flight get the grace, the rest are
  cancelled and answered UNAVAILABLE.

.. _PROTOCOL-HTTP2: https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

from agent_node.a2a.server.grpc.calls import (
    ENCODINGS,
    PREFIX,
    Call,
    HttpRefusal,
    Method,
    request_head,
    request_message,
)
from agent_node.a2a.server.grpc.status import OK, Code, RpcError, Status
from agent_node.connection_cap import waits, works
from agent_node.http2.connection import Http2Connection
from agent_node.http2.fields import header_block
from agent_node.http2.frames import ErrorCode


class Serving(Protocol):
    """What a connection reads of the server that accepted it (:class:`~.server.Http2Server`)."""

    methods: dict[str, Method]
    connections: set[Connection]
    max_body_bytes: int
    max_header_bytes: int
    idle_close: float
    read_timeout: float | None


__all__ = ["Connection", "Serving"]

log = logging.getLogger(__name__)

#: Streams one connection may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS).
MAX_STREAMS = 256

_RESPONSE = [
    (b":status", b"200"),
    (b"content-type", b"application/grpc"),
    (b"grpc-accept-encoding", ",".join(ENCODINGS).encode()),
]
_RESPONSE_BLOCK = header_block(_RESPONSE)
_OK_BLOCK = header_block(OK.trailers())


@dataclass(slots=True)
class _Call:
    """A call's life on its stream."""

    sid: int
    method: Method
    call: Call
    encoding: str
    deadline: float | None
    body: bytearray = field(default_factory=bytearray)
    task: asyncio.Task[None] | None = None
    started: bool = False  # the response headers are out
    done: bool = False  # the response is complete, or the client reset it
    cut: bool = False  # cancelled by a stop


class Connection(Http2Connection):
    """One client's HTTP/2 connection and its calls."""

    kind = "gRPC"

    def __init__(self, server: Serving) -> None:
        # A call over the metadata limit is refused alone, unread; HPACK
        # refuses (the whole connection, ENHANCE_YOUR_CALM) only far past it.
        block = max(4 * server.max_header_bytes, 1 << 16)
        super().__init__(max_streams=MAX_STREAMS, max_header_block=block)
        self.server = server
        self.calls: dict[int, _Call] = {}
        self.certificate: bytes | None = None
        self._going_away = False
        self._idle: asyncio.TimerHandle | None = None
        self._last_read: (
            tuple[list[tuple[bytes, bytes]], tuple[dict[str, str], int, dict[str, str]]] | None
        ) = None

    # asyncio's side

    @property
    def read_timeout(self) -> float | None:
        """Seconds for the TLS handshake (asyncio's protocol asks, :mod:`agent_node.lean_tls`)."""
        return self.server.read_timeout

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.server.connections.add(self)
        tls = transport.get_extra_info("ssl_object")
        if tls is not None:
            self.certificate = tls.getpeercert(binary_form=True) or None
        super().connection_made(transport)
        self._idle_soon()

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        if self._idle is not None:
            self._idle.cancel()
        for call in self.calls.values():
            call.done = True
            if call.task is not None:
                call.task.cancel()
        self.calls.clear()
        super().connection_lost(exc)

    # What the wire reports

    def on_request(self, sid: int, headers: list[tuple[bytes, bytes]], end: bool) -> None:
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        if not self.calls:
            works(self.transport)
        if self._going_away:
            return self.wire.reset(sid, ErrorCode.REFUSED_STREAM)
        fields, size, metadata = self._read(headers)
        try:
            path, method, encoding, deadline = request_head(
                fields, size, self.server.methods, self.server.max_header_bytes
            )
        except HttpRefusal as refusal:
            return self._refuse_http(sid, refusal.status)
        except RpcError as error:
            return self._refuse(sid, error)
        call = Call(path.rpartition("/")[2], metadata, self.client, self.certificate)
        self.calls[sid] = _Call(sid, method, call, encoding, deadline)
        if end:
            self.on_data(sid, b"", True)

    def _read(
        self, headers: list[tuple[bytes, bytes]]
    ) -> tuple[dict[str, str], int, dict[str, str]]:
        """A request's header fields by name, their size as HTTP/2 counts it,
        and its metadata (the fields but the pseudo-headers). The wire gives
        a repeated block's very list again: it is read once (callers only
        read what they get)."""
        if self._last_read is not None and self._last_read[0] is headers:
            return self._last_read[1]
        fields: dict[str, str] = {}
        size = 0
        for name, value in headers:
            size += len(name) + len(value) + 32
            fields[name.decode("latin-1")] = value.decode("latin-1")
        metadata = {k: v for k, v in fields.items() if not k.startswith(":")}
        self._last_read = (headers, (fields, size, metadata))
        return fields, size, metadata

    def on_data(self, sid: int, data: bytes, end: bool) -> None:
        call = self.calls.get(sid)
        if call is None or call.task is not None:
            return  # refused already, or a misbehaving client: dropped
        call.body += data
        limit = self.server.max_body_bytes
        if len(call.body) > limit + PREFIX.size:
            return self._refuse(
                sid, RpcError(Code.RESOURCE_EXHAUSTED, f"message over {limit} bytes")
            )
        if not end:
            return
        try:
            request = request_message(call.body, call.encoding, limit)
        except RpcError as error:
            return self._refuse(sid, error)
        call.body = bytearray()
        call.task = asyncio.get_running_loop().create_task(self._run(call, request))

    def on_reset(self, sid: int) -> None:
        call = self.calls.pop(sid, None)
        if call is not None:
            call.done = True
            if call.task is not None:
                call.task.cancel()
        self.count_reset()
        self._idle_soon()

    def on_goaway(self) -> None:
        self._going_away = True

    # Answers

    async def _run(self, call: _Call, request: bytes) -> None:
        try:
            if call.deadline is None:
                await self._answer(call, request)
            else:
                async with asyncio.timeout(call.deadline - time.monotonic()):
                    await self._answer(call, request)
            error = None
        except RpcError as exc:
            error = exc
        except TimeoutError:
            error = RpcError(Code.DEADLINE_EXCEEDED, "deadline exceeded")
        except asyncio.CancelledError:
            if not call.cut:
                raise  # the client reset the stream, or the connection is gone
            error = RpcError(Code.UNAVAILABLE, "the node is stopping; call again")
        except Exception:  # the method's own fault: the call is answered, the node lives
            log.exception("gRPC %s failed", call.call.method)
            error = RpcError(Code.INTERNAL, "internal error")
        finally:
            self.calls.pop(call.sid, None)
        if not call.done and self.transport is not None:
            self._finish(call.sid, call.started, error)
        self._idle_soon()

    async def _answer(self, call: _Call, request: bytes) -> None:
        if call.method.streaming:
            replies: AsyncIterator[bytes] = call.method.run(call.call, request)
            async for reply in replies:
                await self._reply(call, reply)
        else:
            await self._reply(call, await call.method.run(call.call, request))

    async def _reply(self, call: _Call, message: bytes) -> None:
        if not call.started:
            call.started = True
            self.wire.send_headers(call.sid, _RESPONSE_BLOCK)
        data = PREFIX.pack(0, len(message)) + message
        view = memoryview(data)
        while view:
            if call.done or self.transport is None:
                raise asyncio.CancelledError
            size = min(self.wire.credit(call.sid), len(view))
            if size <= 0:
                await self.credit()
                continue
            self.wire.send_data(call.sid, data if size == len(data) else bytes(view[:size]))
            view = view[size:]
        self.flush_soon()
        await self.drained()

    def _finish(self, sid: int, started: bool, error: RpcError | None) -> None:
        """End ``sid`` with its trailers (trailers-only when nothing was sent)."""
        if error is None:
            block = _OK_BLOCK
        else:
            status: Status = error.status
            fields = status.trailers() if started else [*_RESPONSE, *status.trailers()]
            block = header_block(fields)
        if not started and error is None:
            block = _RESPONSE_BLOCK + block
        self.wire.send_headers(sid, block, end=True)
        if self.wire.open_remotely(sid):  # the client still sends: tell it to stop
            self.wire.reset(sid, ErrorCode.NO_ERROR)
        self.flush_soon()

    def _refuse(self, sid: int, error: RpcError) -> None:
        """Answer ``error`` before the call ran (trailers-only)."""
        self.calls.pop(sid, None)
        self._finish(sid, False, error)
        self._idle_soon()

    def _refuse_http(self, sid: int, status: int) -> None:
        self.calls.pop(sid, None)
        fields = [(b":status", str(status).encode()), (b"content-length", b"0")]
        self.wire.send_headers(sid, header_block(fields), end=True)
        if self.wire.open_remotely(sid):
            self.wire.reset(sid, ErrorCode.NO_ERROR)
        self._idle_soon()

    # The connection's life

    def go_away(self) -> None:
        """Refuse streams from now on (a stop): the client opens them elsewhere."""
        if self._going_away or self.transport is None:
            return
        self._going_away = True
        self.wire.goaway()
        self.flush()
        if not self.calls:
            self.close()

    def cut(self) -> None:
        """Cancel the calls still running (a stop whose grace is over)."""
        for call in list(self.calls.values()):
            if call.task is not None and not call.task.done():
                call.cut = True
                call.task.cancel()

    def _idle_soon(self) -> None:
        if self.calls or self.transport is None:
            return
        if self._going_away:
            self.close()
            return
        if self._idle is None:
            self._idle = asyncio.get_running_loop().call_later(
                self.server.idle_close, self._close_idle
            )
        if not self.transport.is_closing():
            waits(self.transport, self._evicted)

    def _evicted(self) -> None:
        """The listener, at its cap, gives this idle connection's place to a
        new one: a GOAWAY, then closed at once (its socket is closed next)."""
        if self.transport is None:
            return
        if not self._going_away:
            self._going_away = True
            self.wire.goaway()
            self.flush()
        self.transport.abort()

    def _close_idle(self) -> None:
        self._idle = None
        if not self.calls and self.transport is not None:
            self.wire.goaway()
            self.close()

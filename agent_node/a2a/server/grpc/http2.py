"""gRPC's wire over HTTP/2, on asyncio: the connection and its calls.

The server side of the gRPC protocol (`PROTOCOL-HTTP2`_) on the ``h2``
state machine, for the methods of :class:`Method`: a request is a
``POST /package.Service/Method`` whose body is length-prefixed messages;
the answer is ``:status 200``, the reply messages, and trailers whose
``grpc-status`` says how the call ended (an error before any reply is one
*trailers-only* HEADERS frame).

Why not grpcio's server: grpc.aio hands the event loop one call per
iteration from its own threads, which costs ~0.2 ms of CPU per call more
than an asyncio protocol and defeats the store's group commit (a batch of
~2 jobs under gRPC against ~13 under JSON-RPC); and its TLS can require a
client certificate or not ask for one, not ask without requiring it, so a
client authenticating with a bearer token or an API key could not use
gRPC over TLS. Here a connection is an :class:`asyncio.Protocol`, as the
HTTP bindings' are, and TLS is the node's own context (client certificates
asked for, verified when given).

What a connection enforces:

* Requests: ``POST`` (else HTTP 405), ``content-type: application/grpc``
  or ``application/grpc+proto`` (else HTTP 415, or UNIMPLEMENTED for
  another ``+`` codec), a known method (else UNIMPLEMENTED), metadata
  within ``max_header_bytes`` and one request message within
  ``max_body_bytes`` (else RESOURCE_EXHAUSTED, the body left unread),
  ``identity`` or ``gzip`` message encoding (else UNIMPLEMENTED, with
  ``grpc-accept-encoding``). ``grpc-timeout`` bounds the call
  (DEADLINE_EXCEEDED).
* A client that resets a stream cancels its call; a lost connection
  cancels all of them; more than :data:`RESETS_PER_SECOND` resets a
  second (HTTP/2's "rapid reset" flood) end the connection with
  ENHANCE_YOUR_CALM. A connection with no call for ``idle_close``
  (:data:`IDLE_CLOSE`) seconds is closed with a GOAWAY (clients reconnect on their next call);
  an HTTP/2 protocol error closes the connection, never the server.
* Replies respect the client's flow-control windows and the socket's
  backpressure, so a slow reader of a stream holds no unbounded buffer.
* Stopping (:meth:`Http2Server.stop`): no new connections, a GOAWAY on
  every open one (streams it opened later are refused, so the client
  retries them elsewhere), calls in flight get the grace, the rest are
  cancelled and answered UNAVAILABLE.

.. _PROTOCOL-HTTP2: https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import struct
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
from hyperframe.frame import GoAwayFrame

from agent_node.a2a.server.grpc.status import OK, Code, RpcError, Status

__all__ = ["Call", "Http2Server", "Method"]

log = logging.getLogger(__name__)

#: Seconds a connection without calls stays open.
IDLE_CLOSE = 120.0
#: Client resets a connection may make in a second before it is closed.
RESETS_PER_SECOND = 200
#: Streams one connection may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS).
MAX_STREAMS = 256
#: Seconds the calls a stop cut get to answer before connections close.
CUT_ANSWER_GRACE = 1.0
#: Seconds a closing TLS connection gets to say goodbye before it is aborted.
SSL_CLOSE_GRACE = 0.3
#: Seconds a connection ended in error gets to read its GOAWAY before it is aborted.
HANG_UP_GRACE = 1.0

_PREFIX = struct.Struct(">BI")  # compressed flag, message length
_ENCODINGS = b"identity,gzip"


@dataclass(slots=True)
class Call:
    """One call as its method sees it."""

    method: str
    metadata: Mapping[str, str]
    client: tuple[str, int] | None
    #: The client certificate (DER) of the connection, if it showed one.
    certificate: bytes | None


@dataclass(frozen=True, slots=True)
class Method:
    """A method: ``run(call, request)`` answers the reply message's bytes
    (``streaming``: yields the messages of the reply stream)."""

    streaming: bool
    run: Callable[[Call, bytes], Any]


Unary = Callable[[Call, bytes], Awaitable[bytes]]
Streaming = Callable[[Call, bytes], AsyncIterator[bytes]]


class Http2Server:
    """gRPC methods (``"/package.Service/Method"`` → :class:`Method`) served
    on a bound socket, over ``tls`` when given."""

    def __init__(
        self,
        sock: socket.socket,
        tls: ssl.SSLContext | None,
        *,
        max_body_bytes: int,
        max_header_bytes: int,
        idle_close: float = IDLE_CLOSE,
    ) -> None:
        self.sock = sock
        self.tls = tls
        self.max_body_bytes = max_body_bytes
        self.max_header_bytes = max_header_bytes
        self.idle_close = idle_close
        self.methods: dict[str, Method] = {}
        self.connections: set[_Connection] = set()
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    async def start(self, methods: Mapping[str, Method]) -> None:
        self.methods = dict(methods)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Connection(self), sock=self.sock, ssl=self.tls
        )

    async def stop(self, grace: float) -> None:
        """Stop serving: see the module doc. Idempotent."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for connection in list(self.connections):
            connection.go_away()
        deadline = time.monotonic() + grace
        while any(c.streams for c in self.connections) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        cut = [s.task for c in self.connections for s in c.streams.values() if s.task]
        for connection in list(self.connections):
            connection.cut()
        if cut:
            await asyncio.wait(cut, timeout=CUT_ANSWER_GRACE)
        for connection in list(self.connections):
            connection.close()
        deadline = time.monotonic() + SSL_CLOSE_GRACE + 0.2
        while self.connections and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        self.sock.close()


@dataclass(slots=True)
class _Stream:
    id: int
    method: Method | None = None
    call: Call | None = None
    body: bytearray = field(default_factory=bytearray)
    deadline: float | None = None
    encoding: str = "identity"
    task: asyncio.Task[None] | None = None
    started: bool = False  # the response headers are out
    done: bool = False  # the response is complete, or the client reset it
    cut: bool = False  # cancelled by a stop


class _Connection(asyncio.Protocol):
    def __init__(self, server: Http2Server) -> None:
        self.server = server
        self.h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(
                client_side=False,
                header_encoding=None,
                # Headers are read as bytes, decoded as Latin-1 and looked up
                # by name: h2's checks of their HTTP form cost a tenth of a call.
                validate_inbound_headers=False,
                normalize_inbound_headers=False,
                validate_outbound_headers=False,
                normalize_outbound_headers=False,
            )
        )
        self.streams: dict[int, _Stream] = {}
        self.transport: asyncio.Transport | None = None
        self.client: tuple[str, int] | None = None
        self.certificate: bytes | None = None
        self._window = asyncio.Event()  # set (then replaced) when the peer grants credit
        self._writable: asyncio.Future[None] | None = None
        self._last_stream = 0
        self._going_away = False
        self._resets = 0
        self._resets_since = 0.0
        self._idle: asyncio.TimerHandle | None = None
        self._flushing = False  # a flush is due at the loop's next turn
        self._hung_up = False  # ended in error: what comes is not read

    # asyncio's side

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.server.connections.add(self)
        peer = transport.get_extra_info("peername")
        self.client = (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) else None
        tls = transport.get_extra_info("ssl_object")
        if tls is not None:
            self.certificate = tls.getpeercert(binary_form=True) or None
        settings = self.h2.local_settings
        settings.max_concurrent_streams = MAX_STREAMS
        # A call over the limit is refused alone, unread; hpack refuses (the
        # whole connection, ENHANCE_YOUR_CALM) only far past it.
        settings.max_header_list_size = max(4 * self.server.max_header_bytes, 1 << 16)
        self.h2.initiate_connection()
        self._flush()
        self._idle_soon()

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        self.transport = None
        if self._idle is not None:
            self._idle.cancel()
        for stream in self.streams.values():
            stream.done = True
            if stream.task is not None:
                stream.task.cancel()
        self.streams.clear()
        self._window.set()
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    def pause_writing(self) -> None:
        if self._writable is None or self._writable.done():
            self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        self._writable = None

    def data_received(self, data: bytes) -> None:
        if self._hung_up:
            return
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            log.debug("gRPC connection from %s: HTTP/2 error: %s", self.client, exc)
            self._hang_up()  # after h2's GOAWAY
            return
        for event in events:
            if isinstance(event, h2.events.DataReceived):
                self._data(event)
            elif isinstance(event, h2.events.RequestReceived):
                self._request(event)
            elif isinstance(event, h2.events.StreamEnded):
                self._ended(event.stream_id)
            elif isinstance(event, h2.events.StreamReset):
                self._reset(event.stream_id)
            elif isinstance(event, (h2.events.WindowUpdated, h2.events.RemoteSettingsChanged)):
                self._window.set()
                self._window = asyncio.Event()
            elif isinstance(event, h2.events.ConnectionTerminated):
                self._going_away = True
        self._flush_soon()

    # HTTP/2 events

    def _request(self, event: h2.events.RequestReceived) -> None:
        sid = event.stream_id
        self._last_stream = max(self._last_stream, sid)
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        if self._going_away:
            self.h2.reset_stream(sid, h2.errors.ErrorCodes.REFUSED_STREAM)
            return
        stream = self.streams[sid] = _Stream(sid)
        headers: dict[str, str] = {}
        size = 0
        for name, value in event.headers or ():
            size += len(name) + len(value) + 32  # as HTTP/2 counts a header list
            headers[name.decode("latin-1")] = value.decode("latin-1")
        if headers.get(":method") != "POST":
            return self._refuse_http(stream, 405)
        kind = headers.get("content-type", "")
        if kind != "application/grpc" and not kind.startswith("application/grpc"):
            return self._refuse_http(stream, 415)
        if kind not in ("application/grpc", "application/grpc+proto"):
            return self._refuse(stream, RpcError(Code.UNIMPLEMENTED, f"content-type {kind!r}"))
        path = headers.get(":path", "")
        method = self.server.methods.get(path)
        if method is None:
            return self._refuse(stream, RpcError(Code.UNIMPLEMENTED, f"unknown method {path!r}"))
        if size > self.server.max_header_bytes:
            limit = self.server.max_header_bytes
            message = f"metadata of {size} bytes, limit {limit}"
            return self._refuse(stream, RpcError(Code.RESOURCE_EXHAUSTED, message))
        stream.encoding = headers.get("grpc-encoding", "identity")
        if stream.encoding not in ("identity", "gzip"):
            message = f"grpc-encoding {stream.encoding!r}: this server takes identity or gzip"
            return self._refuse(stream, RpcError(Code.UNIMPLEMENTED, message))
        timeout = headers.get("grpc-timeout")
        if timeout is not None:
            seconds = _timeout(timeout)
            if seconds is None:
                return self._refuse(stream, RpcError(Code.INTERNAL, f"grpc-timeout {timeout!r}"))
            stream.deadline = time.monotonic() + seconds
        metadata = {k: v for k, v in headers.items() if not k.startswith(":")}
        stream.method = method
        stream.call = Call(path.rpartition("/")[2], metadata, self.client, self.certificate)

    def _data(self, event: h2.events.DataReceived) -> None:
        self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        stream = self.streams.get(event.stream_id)
        if stream is None or stream.method is None or stream.task is not None:
            return  # refused already: its data is dropped
        stream.body += event.data or b""
        if len(stream.body) > self.server.max_body_bytes + _PREFIX.size:
            limit = self.server.max_body_bytes
            self._refuse(stream, RpcError(Code.RESOURCE_EXHAUSTED, f"message over {limit} bytes"))

    def _ended(self, sid: int) -> None:
        stream = self.streams.get(sid)
        if stream is None or stream.method is None or stream.done or stream.task is not None:
            return
        try:
            request = self._message(stream)
        except RpcError as error:
            return self._refuse(stream, error)
        loop = asyncio.get_running_loop()
        stream.task = loop.create_task(self._run(stream, request))

    def _reset(self, sid: int) -> None:
        stream = self.streams.pop(sid, None)
        if stream is not None:
            stream.done = True
            if stream.task is not None:
                stream.task.cancel()
        now = time.monotonic()
        if now - self._resets_since > 1.0:
            self._resets, self._resets_since = 0, now
        self._resets += 1
        if self._resets > RESETS_PER_SECOND:
            log.warning("gRPC connection from %s: reset flood, closed", self.client)
            self.h2.close_connection(h2.errors.ErrorCodes.ENHANCE_YOUR_CALM)
            self._hang_up()
        self._idle_soon()
        self._window.set()

    def _message(self, stream: _Stream) -> bytes:
        """The one request message of ``stream``'s body."""
        body = stream.body
        if len(body) < _PREFIX.size:
            raise RpcError(Code.INTERNAL, "no request message")
        compressed, length = _PREFIX.unpack_from(body)
        if len(body) != _PREFIX.size + length:
            raise RpcError(Code.INTERNAL, "one request message expected")
        message = bytes(body[_PREFIX.size :])
        if not compressed:
            return message
        if stream.encoding != "gzip":
            raise RpcError(Code.INTERNAL, "a compressed message without grpc-encoding")
        inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            plain = inflate.decompress(message, self.server.max_body_bytes + 1)
        except zlib.error as exc:
            raise RpcError(Code.INTERNAL, f"gzip: {exc}") from None
        if len(plain) > self.server.max_body_bytes or inflate.unconsumed_tail:
            limit = self.server.max_body_bytes
            raise RpcError(Code.RESOURCE_EXHAUSTED, f"message over {limit} bytes")
        return plain

    # Answers

    async def _run(self, stream: _Stream, request: bytes) -> None:
        assert stream.method is not None and stream.call is not None
        try:
            remaining = None if stream.deadline is None else stream.deadline - time.monotonic()
            async with asyncio.timeout(remaining):
                if stream.method.streaming:
                    replies: AsyncIterator[bytes] = stream.method.run(stream.call, request)
                    async for reply in replies:
                        await self._reply(stream, reply)
                else:
                    await self._reply(stream, await stream.method.run(stream.call, request))
            error = None
        except RpcError as exc:
            error = exc
        except TimeoutError:
            error = RpcError(Code.DEADLINE_EXCEEDED, "deadline exceeded")
        except asyncio.CancelledError:
            if not stream.cut:
                raise  # the client reset the stream, or the connection is gone
            error = RpcError(Code.UNAVAILABLE, "the node is stopping; call again")
        except Exception:  # the method's own fault: the call is answered, the node lives
            log.exception("gRPC %s failed", stream.call.method)
            error = RpcError(Code.INTERNAL, "internal error")
        finally:
            self.streams.pop(stream.id, None)
        if not stream.done and self.transport is not None:
            self._finish(stream, error)
        self._idle_soon()

    async def _reply(self, stream: _Stream, message: bytes) -> None:
        if not stream.started:
            stream.started = True
            self.h2.send_headers(stream.id, _HEADERS)
        await self._send(stream, _PREFIX.pack(0, len(message)) + message)

    async def _send(self, stream: _Stream, data: bytes) -> None:
        """Send ``data`` on ``stream`` as the flow-control windows allow."""
        view = memoryview(data)
        while view:
            if stream.done or self.transport is None:
                raise asyncio.CancelledError
            window = self.h2.local_flow_control_window(stream.id)
            size = min(window, self.h2.max_outbound_frame_size, len(view))
            if size <= 0:
                await self._window.wait()
                continue
            self.h2.send_data(stream.id, data if size == len(data) else bytes(view[:size]))
            view = view[size:]
        self._flush_soon()
        if self._writable is not None:
            await self._writable

    def _finish(self, stream: _Stream, error: RpcError | None) -> None:
        """The trailers (with the response headers when none went out)."""
        status: Status = OK if error is None else error.status
        trailers = status.trailers()
        if not stream.started:
            trailers = [*_HEADERS, *trailers]
        stream.done = True
        try:
            self.h2.send_headers(stream.id, trailers, end_stream=True)
        except h2.exceptions.StreamClosedError:
            return
        if self._open_remotely(stream.id):  # the client still sends: tell it to stop
            self.h2.reset_stream(stream.id, h2.errors.ErrorCodes.NO_ERROR)
        self._flush_soon()

    def _refuse(self, stream: _Stream, error: RpcError) -> None:
        """Answer ``error`` before the call ran (trailers-only)."""
        stream.method = None
        self.streams.pop(stream.id, None)
        self._finish(stream, error)
        self._idle_soon()

    def _refuse_http(self, stream: _Stream, status: int) -> None:
        self.streams.pop(stream.id, None)
        stream.done = True
        headers = [(b":status", str(status).encode()), (b"content-length", b"0")]
        self.h2.send_headers(stream.id, headers, end_stream=True)
        if self._open_remotely(stream.id):
            self.h2.reset_stream(stream.id, h2.errors.ErrorCodes.NO_ERROR)
        self._idle_soon()

    def _open_remotely(self, sid: int) -> bool:
        inner = self.h2.streams.get(sid)
        return inner is not None and inner.open and not inner.closed

    # The connection's life

    def go_away(self) -> None:
        """Refuse streams from now on (a stop): the client opens them elsewhere."""
        if self._going_away or self.transport is None:
            return
        self._going_away = True
        self._flush()
        frame = GoAwayFrame(0)
        frame.last_stream_id = self._last_stream
        frame.error_code = h2.errors.ErrorCodes.NO_ERROR
        self.transport.write(frame.serialize())
        if not self.streams:
            self.close()

    def cut(self) -> None:
        """Cancel the calls still running (a stop whose grace is over)."""
        for stream in list(self.streams.values()):
            if stream.task is not None and not stream.task.done():
                stream.cut = True
                stream.task.cancel()

    def close(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        self._flush()  # what is due goes out before the close
        transport.close()
        if transport.get_extra_info("ssl_object") is not None:  # no close_notify wait
            asyncio.get_running_loop().call_later(SSL_CLOSE_GRACE, transport.abort)

    def _hang_up(self) -> None:
        """End a connection in error: its GOAWAY out, then the end of what we
        send, and what it still sends unread. A plain close with unread data
        would reset the connection, and the client could lose the GOAWAY
        saying why."""
        transport = self.transport
        if self._hung_up or transport is None:
            return
        self._hung_up = True
        self._flush()
        if transport.can_write_eof():
            transport.write_eof()
            asyncio.get_running_loop().call_later(HANG_UP_GRACE, transport.abort)
        else:
            self.close()

    def _idle_soon(self) -> None:
        if self.streams or self.transport is None:
            return
        if self._going_away:
            self.close()
            return
        if self._idle is None:
            self._idle = asyncio.get_running_loop().call_later(
                self.server.idle_close, self._close_idle
            )

    def _close_idle(self) -> None:
        self._idle = None
        if not self.streams and self.transport is not None:
            self.h2.close_connection()
            self._flush()
            self.close()

    def _flush(self) -> None:
        self._flushing = False
        data = self.h2.data_to_send()
        if data and self.transport is not None:
            self.transport.write(data)

    def _flush_soon(self) -> None:
        """Flush at the loop's next turn: what every call of this connection
        answers in one turn of the loop leaves in one write (one syscall)."""
        if not self._flushing:
            self._flushing = True
            asyncio.get_running_loop().call_soon(self._flush)


_HEADERS = [
    (b":status", b"200"),
    (b"content-type", b"application/grpc"),
    (b"grpc-accept-encoding", _ENCODINGS),
]

_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}


def _timeout(value: str) -> float | None:
    """``grpc-timeout`` (``100m``, ``5S``: at most 8 digits and a unit) in seconds."""
    digits, unit = value[:-1], value[-1:]
    if not digits.isdigit() or len(digits) > 8 or unit not in _UNITS:
        return None
    return int(digits) * _UNITS[unit]

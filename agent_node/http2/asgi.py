"""The node's HTTP app over HTTP/2: a client that offers ``h2`` in its TLS
handshake (ALPN) has its requests served as streams of one connection.

Why: over HTTP/1.1 each open event stream (``SendStreamingMessage``,
``SubscribeToTask``, the operator's live view) is a TLS connection of its
own, and OpenSSL alone keeps 26 to 29 KiB per idle connection (its ``SSL``,
the client's parsed certificate, its buffers): a client following many tasks
paid that per task. Over HTTP/2 the streams share one connection; a stream
costs its request's own objects (``bench/a2a/sse_memory.py --http2``).

:func:`agent_node.transport.uvicorn_config` offers ``h2`` (``listen.http2``,
on by default) and the node's HTTP protocol (:mod:`agent_node.http_protocol`)
hands a connection that chose it to an :class:`AsgiConnection` as soon as
the handshake is done, before any byte of HTTP. Each stream is one ASGI
request, as uvicorn makes one over HTTP/1.1 (the node's HTTP protocol adds
the same to its scope: the TLS peer, a :class:`~agent_node.scope.WhenGone`,
through ``stamp``):

* Header caps: more than ``max_headers`` fields, or fields (pseudo-headers
  included) over ``max_header_bytes`` (counted as HTTP/1.1 counts them),
  are answered ``431`` on that stream; the connection lives on.
* A request body is read as it comes; past ``max_body_bytes`` (and a
  frame), the rest is dropped unread — the app refuses a body over its
  limit anyway, and a client cannot fill the node's memory faster than the
  app reads.
* A body that makes no progress for ``read_timeout`` while the app waits
  for it is answered ``408`` on its stream (the app's ``receive`` then
  says ``http.disconnect``): it holds its caller's in-flight slot no longer.
* Responses follow the client's flow-control windows and the socket's
  backpressure; headers HTTP/2 forbids (``connection``, ``transfer-encoding``
  …) are left out, and so is the body of an answer to ``HEAD``.
* A client that resets its stream, or loses the connection: the app's
  ``receive`` says ``http.disconnect``, its sends are dropped, its
  ``WhenGone`` is told; its task is not cancelled (as over HTTP/1.1). A
  stream whose task still runs counts against :data:`MAX_STREAMS` (and a
  reset flood ends the connection: :mod:`.connection`).
* Stopping (uvicorn's ``shutdown``): new streams are refused
  (``REFUSED_STREAM``: clients retry them elsewhere), the streams in flight
  get the server's grace, then a GOAWAY and the connection closes; one cut
  by the stop is answered ``503``, or ended when its response had begun.
  An idle connection — no stream for ``keep_alive`` seconds — is sent a
  GOAWAY and closed.
* While it has no stream open, a connection is idle to the listener's cap
  (``limits.max_connections``, :mod:`agent_node.connection_cap`) as an
  HTTP/1.1 one between requests is: at the cap a new connection may take
  its place, and it is sent a GOAWAY and closed at once. One with a stream
  open (an event stream followed for hours) is never.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from starlette.requests import ClientDisconnect

from agent_node.connection_cap import waits, works
from agent_node.http2.connection import Http2Connection, address_of
from agent_node.http2.exchange import Exchange
from agent_node.http2.fields import header_block
from agent_node.http2.frames import MAX_FRAME, ErrorCode
from agent_node.scope import request_line

__all__ = ["MAX_STREAMS", "AsgiConnection"]

log = logging.getLogger(__name__)

#: Streams one connection may have at once (SETTINGS_MAX_CONCURRENT_STREAMS);
#: a stream the client reset counts until the app's task for it returns.
MAX_STREAMS = 256
#: Seconds a client may take to send the rest of a body answered unread.
DRAIN = 10.0
#: Response headers HTTP/2 forbids (RFC 9113 §8.2.2).
_HOP_BY_HOP = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"}
)
_STOPPING_TEXT = b"The node is stopping; ask again once it is back."
_LATE_TEXT = b"Request Timeout: the request did not arrive in time."
_ASGI = {"version": "3.0", "spec_version": "2.3"}


class AsgiConnection(Http2Connection):
    """One client's HTTP/2 connection, its streams served by ``app``.

    ``connections`` and ``tasks`` are the server's (uvicorn's
    ``server_state``): the connection is in the first while open, each
    stream's task in the second while it runs, as uvicorn's own protocol
    keeps them, so a stop waits for them and cuts them alike. ``stamp`` adds
    what the node's server adds to a request's scope and returns its
    ``WhenGone``."""

    def __init__(
        self,
        app: Any,
        *,
        connections: set[Any],
        tasks: set[asyncio.Task[None]],
        stamp: Callable[[dict[str, Any]], Any],
        max_headers: int,
        max_header_bytes: int,
        max_body_bytes: int,
        keep_alive: float,
        read_timeout: float,
    ) -> None:
        # Past the header cap a request is refused alone (431); HPACK refuses
        # (the whole connection) only far past it.
        super().__init__(
            max_streams=MAX_STREAMS, max_header_block=max(4 * max_header_bytes, 1 << 16)
        )
        self.app, self.connections, self.tasks, self.stamp = app, connections, tasks, stamp
        self.max_headers, self.max_header_bytes = max_headers, max_header_bytes
        self.max_body_bytes, self.keep_alive = max_body_bytes, keep_alive
        self.read_timeout = read_timeout
        self.streams: dict[int, Exchange] = {}
        self.server: tuple[str, int] | None = None
        self._stopping = False  # the server stops: no new streams
        self._said_goaway = False  # our GOAWAY is out: the connection closes
        self._idle: asyncio.TimerHandle | None = None

    # asyncio's side

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.connections.add(self)
        super().connection_made(transport)
        self.server = address_of(transport.get_extra_info("sockname"))
        self._idle_soon()

    def connection_lost(self, exc: Exception | None) -> None:
        self.connections.discard(self)
        super().connection_lost(exc)
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        for stream in list(self.streams.values()):
            stream.leave()

    def shutdown(self) -> None:
        """The server stops (uvicorn asks every connection): no new streams;
        a GOAWAY and closed once those in flight are answered (h2, httpx's
        HTTP/2, drops a connection's streams as soon as a GOAWAY comes)."""
        self._stopping = True
        self._idle_soon()

    # What the wire reports

    def on_request(self, sid: int, headers: list[tuple[bytes, bytes]], end: bool) -> None:
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        if not self.streams:
            works(self.transport)
        if self._said_goaway:
            return self.wire.forget(sid)
        if self._stopping or len(self.streams) >= MAX_STREAMS:
            return self.wire.reset(sid, ErrorCode.REFUSED_STREAM)
        pseudo: dict[bytes, bytes] = {}  # the wire let only well-formed requests through
        fields: list[tuple[bytes, bytes]] = []
        size = 0
        for name, value in headers:
            # Every field counts, pseudo-headers too, as HTTP/1.1 counts its
            # request line: a 30 KB :method went past the cap.
            size += len(name) + len(value) + 4
            if name[:1] == b":":
                pseudo[name] = value
            else:
                fields.append((name, value))
        method, path = pseudo[b":method"], pseudo.get(b":path")
        if not path:  # a CONNECT (RFC 9113 §8.5): no proxy here
            return self._refuse(sid, 405, b"Method Not Allowed: CONNECT is not served")
        if len(fields) > self.max_headers or size > self.max_header_bytes:
            what = (
                f"more than {self.max_headers} header fields"
                if len(fields) > self.max_headers
                else f"request line and headers over {self.max_header_bytes} bytes"
            )
            log.warning("refused a request: %s", what)
            return self._refuse(sid, 431, f"Request Header Fields Too Large: {what}".encode())
        authority = pseudo.get(b":authority")
        if authority and not any(name == b"host" for name, _ in fields):
            fields.insert(0, (b"host", authority))
        raw_path, _, query = path.partition(b"?")
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": _ASGI,
            "http_version": "2",
            "server": self.server,
            "client": self.client,
            "scheme": pseudo.get(b":scheme", b"https").decode("latin-1"),
            "method": method.decode("latin-1"),
            "root_path": "",
            "path": unquote(raw_path.decode("latin-1")),
            "raw_path": raw_path,
            "query_string": query,
            "headers": fields,
        }
        stream = Exchange(self, sid, scope, end)
        stream.told = self.stamp(scope)
        self.streams[sid] = stream
        task = asyncio.get_running_loop().create_task(self._run(stream))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def on_data(self, sid: int, data: bytes, end: bool) -> None:
        stream = self.streams.get(sid)
        if stream is None or stream.ended:
            return
        if data and stream.received <= self.max_body_bytes + MAX_FRAME:
            stream.body.append(data)
            stream.received += len(data)
        stream.ended = end
        stream.wake()

    def on_reset(self, sid: int) -> None:
        stream = self.streams.get(sid)
        if stream is not None:
            stream.leave()
        self.count_reset()

    def on_goaway(self) -> None:
        pass  # the client opens no more streams; those open are answered

    # Answers

    async def _run(self, stream: Exchange) -> None:
        scope = stream.scope
        try:
            await self.app(scope, stream.receive, stream.send)
        except ClientDisconnect:  # nobody is left to answer: not an error of ours
            log.debug("%s %s: the caller went away mid-request", scope["method"], scope["path"])
        except asyncio.CancelledError:
            if not self._stopping or stream.gone:
                raise
            what = "its response was ended" if stream.started else "answered 503"
            log.warning("stopped with %s still running: %s", request_line(scope), what)
            await self._end(stream, 503, _STOPPING_TEXT)
        except Exception:
            log.exception("%s failed", request_line(scope))
            if stream.started and not stream.done and not stream.gone:
                self.wire.reset(stream.sid, ErrorCode.INTERNAL_ERROR)
                stream.done = True
            await self._end(stream, 500, b"Internal Server Error")
        else:
            await self._end(stream, 500, b"Internal Server Error", failed=False)
        finally:
            del self.streams[stream.sid]
            if self.transport is not None:
                self._answered_unread(stream.sid)
                self.flush_soon()
                self._idle_soon()

    async def _end(
        self, stream: Exchange, status: int, text: bytes, *, failed: bool = True
    ) -> None:
        """Finish what the app left open: the response it began, ended; or
        ``status`` with ``text`` when none is out — in place of the headers it
        gave but never sent, when it ``failed`` (raised, or was cut)."""
        if stream.done or stream.gone:
            return
        if stream.started or (stream.head is not None and not failed):
            await self.answer(stream, b"", False)
            return
        headers = [(b"content-type", b"text/plain; charset=utf-8")]
        headers.append((b"content-length", str(len(text)).encode()))
        stream.head = (status, headers)
        await self.answer(stream, text, False)

    async def body_late(self, stream: Exchange) -> None:
        """No part of ``stream``'s body came for ``read_timeout`` while the
        app waited for it: answered ``408`` (or its response ended), and
        the app's ``receive`` says ``http.disconnect``."""
        scope = stream.scope
        log.debug(
            "%s %s: no part of the body in %ss", scope["method"], scope["path"], self.read_timeout
        )
        await self._end(stream, 408, _LATE_TEXT)

    async def answer(self, stream: Exchange, body: bytes, more: bool) -> None:
        """Send ``body`` on ``stream`` (its headers first), the end with it
        unless ``more``; within the client's windows and the socket's pace."""
        sid, wire = stream.sid, self.wire
        if stream.head is not None:
            status, headers = stream.head
            stream.head, stream.started = None, True
            fields = [(b":status", str(status).encode())]
            for name, value in headers:
                name = name.lower()
                if name not in _HOP_BY_HOP:
                    fields.append((name, value))
            wire.send_headers(sid, header_block(fields), end=not body and not more)
        elif not body and not more:
            wire.send_data(sid, b"", end=True)
        if not more:
            stream.done = True
            stream.wake()
        view = memoryview(body)
        while view:
            if stream.gone or self.transport is None:
                return
            size = min(wire.credit(sid), len(view))
            if size <= 0:
                await self.credit()
                continue
            wire.send_data(sid, bytes(view[:size]), end=not more and size == len(view))
            view = view[size:]
        self.flush_soon()
        await self.drained()

    def _refuse(self, sid: int, status: int, text: bytes) -> None:
        """Answer ``status`` before the app saw the request."""
        fields = [(b":status", str(status).encode()), (b"content-type", b"text/plain")]
        fields.append((b"content-length", str(len(text)).encode()))
        self.wire.send_headers(sid, header_block(fields))
        self.wire.send_data(sid, text, end=True)  # a short text: within any window
        self._answered_unread(sid)
        self.flush_soon()
        self._idle_soon()  # no stream was opened: idle as before it

    def _answered_unread(self, sid: int) -> None:
        """A request answered while its client still sends its body (a 401
        or a 413, answered by its headers). RFC 9113 (8.1) lets a server
        reset the stream then, with NO_ERROR, but clients take that badly:
        curl before 8 (Debian 12's 7.88) as a failure of the request it was
        answered ("(92) Stream error in the HTTP/2 framing layer", the
        answer not shown), and httpx, left without window to send the rest,
        waits until it times out. So the rest is let in and dropped, its
        window given as for any body, up to :data:`.wire.DRAIN_BYTES` (a
        longer one is stopped at once) and for :data:`DRAIN` seconds."""
        wire = self.wire
        if not wire.open_remotely(sid):
            return
        if wire.drains(sid):
            asyncio.get_running_loop().call_later(DRAIN, self._stop_unread, sid)
        else:
            wire.reset(sid, ErrorCode.NO_ERROR)

    def _stop_unread(self, sid: int) -> None:
        if self.transport is not None and self.wire.open_remotely(sid):
            self.wire.reset(sid, ErrorCode.NO_ERROR)
            self.flush_soon()

    # The connection's life

    def go_away(self) -> None:
        """Say GOAWAY and close (no stream is open): a stream the client
        opened meanwhile was not served, which the GOAWAY's last id tells."""
        if self._said_goaway or self.transport is None:
            return
        self._said_goaway = True
        self.wire.goaway()
        self.close()

    def _idle_soon(self) -> None:
        transport = self.transport
        if self.streams or transport is None:
            return
        if self._stopping:
            self.go_away()
            return
        if self._idle is None:
            self._idle = asyncio.get_running_loop().call_later(self.keep_alive, self._close_idle)
        if not transport.is_closing():
            waits(transport, self._evicted)

    def _evicted(self) -> None:
        """The listener, at its cap, gives this idle connection's place to a
        new one: a GOAWAY (a stream the client opened meanwhile was not
        served, as its last id says), then closed at once — the listener
        closes its socket next."""
        transport = self.transport
        if transport is None:
            return
        if not self._said_goaway:
            self._said_goaway = True
            self.wire.goaway()
            self.flush()
        transport.abort()

    def _close_idle(self) -> None:
        self._idle = None
        if not self.streams and self.transport is not None:
            self.go_away()

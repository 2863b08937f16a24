"""What every HTTP/2 server connection of the node does alike, whatever its
streams carry (gRPC calls: :mod:`agent_node.a2a.server.grpc.connection`;
the HTTP app's requests: :mod:`.asgi`).

* Frames in: what the client sends goes to the :class:`~.wire.Wire`, and a
  breach of the protocol ends the connection with a GOAWAY saying why,
  never the server (:meth:`Http2Connection._hang_up`: the GOAWAY out, then
  the end of what we send, and what the client still sends unread; a plain
  close with unread data would reset the connection, and the client could
  lose the GOAWAY).
* Frames out: what every stream answers in one turn of the event loop
  leaves in one write (:meth:`Http2Connection.flush_soon`); a stream waits
  for the client's windows (:meth:`Http2Connection.credit`) and the
  socket's backpressure (:meth:`Http2Connection.drained`).
* More than :data:`RESETS_PER_SECOND` client resets a second (HTTP/2's
  "rapid reset" flood) end the connection with ENHANCE_YOUR_CALM, as do
  the floods the wire counts (frames that carry nothing, CONTINUATIONs);
  they are logged as warnings, other breaches at debug level.
* A client that sends without reading what it is answered — PINGs,
  SETTINGS, requests the wire resets (the 2019 ping, settings and reset
  floods, CVE-2019-9512/9515/9514) — is not read from while more than
  :data:`UNREAD_LIMIT` bytes wait for it, until they drain: the answers it
  makes us queue stay bounded, and a client that reads on is served on.
  Streams' data waits for the drain anyway (:meth:`Http2Connection.drained`).
* A TLS connection closed is aborted after :data:`SSL_CLOSE_GRACE`: no
  waiting for a close_notify that an idle client never sends.
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod

from agent_node.http2.frames import ErrorCode, WireError
from agent_node.http2.wire import Wire

__all__ = [
    "HANG_UP_GRACE",
    "RESETS_PER_SECOND",
    "SSL_CLOSE_GRACE",
    "UNREAD_LIMIT",
    "Http2Connection",
    "address_of",
]

log = logging.getLogger(__name__)

#: Client resets a connection may make in a second before it is closed.
RESETS_PER_SECOND = 200
#: Seconds a closing TLS connection gets to say goodbye before it is aborted.
SSL_CLOSE_GRACE = 0.3
#: Seconds a connection ended in error gets to read its GOAWAY before it is aborted.
HANG_UP_GRACE = 1.0
#: Bytes queued for a client that is not reading them past which it is not
#: read from until they drain (asyncio's own pause comes at 64 KiB; streams
#: may each have written a frame more before they saw it).
UNREAD_LIMIT = 1 << 20


class Http2Connection(asyncio.Protocol, ABC):
    """An HTTP/2 server connection's life; a subclass is the wire's
    :class:`~.wire.Peer` for what its streams carry."""

    #: What the connection is called in logs.
    kind = "HTTP/2"

    def __init__(self, *, max_streams: int, max_header_block: int) -> None:
        self.wire = Wire(self, max_streams=max_streams, max_header_block=max_header_block)
        self.transport: asyncio.Transport | None = None
        self.client: tuple[str, int] | None = None
        self._credit: asyncio.Future[None] | None = None  # set when the client grants credit
        self._writable: asyncio.Future[None] | None = None  # set when the socket drains
        self._flushing = False  # a flush is due at the loop's next turn
        self._hung_up = False  # ended in error: what comes is not read
        self._eof = False  # nothing more may be written
        self._unread = False  # not reading: what we sent waits to be read (UNREAD_LIMIT)
        self._resets, self._resets_since = 0, 0.0

    # asyncio's side

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.client = address_of(transport.get_extra_info("peername"))
        self.wire.start()
        self.flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.on_credit()
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    def pause_writing(self) -> None:
        if self._writable is None or self._writable.done():
            self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        self._writable = None
        if self._unread and self.transport is not None:
            self._unread = False
            self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        if self._hung_up:
            return
        try:
            self.wire.receive(data)
        except WireError as exc:
            # A flood (ENHANCE_YOUR_CALM) is worth an operator's eye; a breach is not.
            level = logging.WARNING if exc.code == ErrorCode.ENHANCE_YOUR_CALM else logging.DEBUG
            log.log(level, "%s connection from %s: HTTP/2 error: %s", self.kind, self.client, exc)
            self.wire.goaway(exc.code)
            self._hang_up()
            return
        self.flush_soon()

    # What the wire reports: the streams' news is each kind's own

    @abstractmethod
    def on_request(self, sid: int, headers: list[tuple[bytes, bytes]], end: bool) -> None:
        """A client opened stream ``sid`` with ``headers`` (``end``: no body follows)."""

    @abstractmethod
    def on_data(self, sid: int, data: bytes, end: bool) -> None:
        """Body ``data`` of ``sid`` came (``end``: its last)."""

    @abstractmethod
    def on_reset(self, sid: int) -> None:
        """``sid`` was reset (by the client, or by the wire for its error)."""

    @abstractmethod
    def on_goaway(self) -> None:
        """The client opens no more streams."""

    def on_credit(self) -> None:
        credit, self._credit = self._credit, None
        if credit is not None and not credit.done():
            credit.set_result(None)

    def count_reset(self) -> None:
        """A client reset a stream: too many a second end the connection."""
        now = time.monotonic()
        if now - self._resets_since > 1.0:
            self._resets, self._resets_since = 0, now
        self._resets += 1
        if self._resets > RESETS_PER_SECOND:
            log.warning("%s connection from %s: reset flood, closed", self.kind, self.client)
            self.wire.goaway(ErrorCode.ENHANCE_YOUR_CALM)
            self._hang_up()
        self.on_credit()

    # Sending

    async def credit(self) -> None:
        """Until the client grants credit (or the connection is lost)."""
        if self._credit is None:
            self._credit = asyncio.get_running_loop().create_future()
        await self._credit

    async def drained(self) -> None:
        """Until the socket takes more (at once when it does now)."""
        if self._writable is not None:
            await self._writable

    def flush(self) -> None:
        self._flushing = False
        out, transport = self.wire.out, self.transport
        if out and transport is not None and not self._eof:
            transport.write(bytes(out))
            if not self._unread and transport.get_write_buffer_size() > UNREAD_LIMIT:
                self._unread = True  # until resume_writing: the client reads again
                transport.pause_reading()
        out.clear()

    def flush_soon(self) -> None:
        """Flush at the loop's next turn: what every stream of this connection
        answers in one turn of the loop leaves in one write (one syscall)."""
        if not self._flushing:
            self._flushing = True
            asyncio.get_running_loop().call_soon(self.flush)

    # The connection's end

    def close(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        self.flush()  # what is due goes out before the close
        transport.close()
        if transport.get_extra_info("ssl_object") is not None:  # no close_notify wait
            asyncio.get_running_loop().call_later(SSL_CLOSE_GRACE, transport.abort)

    def _hang_up(self) -> None:
        """End a connection in error: its GOAWAY out, then the end of what we
        send, and what it still sends unread."""
        transport = self.transport
        if self._hung_up or transport is None:
            return
        self._hung_up = True
        self.flush()
        if transport.can_write_eof():
            transport.write_eof()
            self._eof = True  # a stream that ends later writes nothing more
            asyncio.get_running_loop().call_later(HANG_UP_GRACE, transport.abort)
        else:
            self.close()


def address_of(value: object) -> tuple[str, int] | None:
    """A socket address as ASGI gives it (``peername``, ``sockname``), or None."""
    return (str(value[0]), int(value[1])) if isinstance(value, tuple) else None

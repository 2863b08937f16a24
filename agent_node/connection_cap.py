"""How many connections the node's listener holds open at once.

Every accepted connection holds a descriptor until it closes, and the
process has ``RLIMIT_NOFILE`` of them for everything: its store, its peers,
its files. A thousand clients that connect and wait took the last ones;
past them ``accept()`` failed with ``EMFILE``, and asyncio's accept loop
logged a traceback per try — up to its backlog (2048) at each pass of the
loop, 345,038 of them in under a minute — while ``/healthz`` went unanswered.

:class:`CappedListener` is the node's listening socket (see
:func:`capped_listener`):

* It counts the connections it accepted that are still open — in the whole
  process, as descriptors are.
* At its cap a new connection takes the place of the one idle longest, as
  its protocol tells (:func:`waits`, :func:`works`), which is closed at
  once: an HTTP/1.1 one waiting for its first request head or between two
  requests (:class:`Evictable`), an HTTP/2 one with no stream open (sent a
  GOAWAY first: :mod:`agent_node.http2.asgi`). With none idle (every
  connection has a request in flight or an event stream open, or is in its
  TLS handshake, which ``limits.read_timeout`` bounds) the new connection
  is closed instead. Either is logged at most once a minute.
* Should descriptors run out anyway, it lets go of one it keeps in
  reserve, accepts and closes the connections waiting, takes its reserve
  back and logs that in one line a minute: clients are told at once, and
  the node serves again as soon as descriptors are free.
"""

from __future__ import annotations

import errno
import logging
import os
import resource
import socket
import time
from collections.abc import Callable
from typing import Any

__all__ = ["CappedListener", "Evictable", "cap_of", "capped_listener", "waits", "works"]

log = logging.getLogger(__name__)

#: Seconds between two log lines about refused connections.
LOG_EVERY = 60.0
#: Descriptors kept for everything else (store, peers, files, gRPC) when the
#: cap comes from RLIMIT_NOFILE: this share of it, and at least the minimum.
HEADROOM_SHARE, HEADROOM_MIN = 4, 64

#: The accepted connections still open, by descriptor, oldest first.
_open: dict[int, socket.socket] = {}
#: Those whose protocol waits on its client, idle longest first, with how
#: each is closed at once.
_idle: dict[int, Callable[[], None]] = {}


def cap_of(max_connections: int) -> int:
    """``limits.max_connections``, or (0) what RLIMIT_NOFILE leaves once the
    store, peers and files have their share."""
    if max_connections:
        return max_connections
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        soft = 1 << 20
    return max(1, soft - max(HEADROOM_MIN, soft // HEADROOM_SHARE))


def capped_listener(family: socket.AddressFamily, cap: int) -> CappedListener:
    """A TCP socket of ``family`` that holds at most ``cap`` accepted connections."""
    sock = CappedListener(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.cap, sock.reserve = cap, _reserve()
    sock.refused, sock.logged_at = 0, 0.0
    return sock


class _Accepted(socket.socket):
    """An accepted connection: counted until it is closed."""

    __slots__ = ()

    def close(self) -> None:
        descriptor = self.fileno()
        if descriptor >= 0 and _open.get(descriptor) is self:
            del _open[descriptor]
            _idle.pop(descriptor, None)
        super().close()


class CappedListener(socket.socket):
    """A listening socket that holds at most ``cap`` accepted connections
    (see the module)."""

    __slots__ = ("cap", "logged_at", "refused", "reserve")
    cap: int
    reserve: int | None
    refused: int
    logged_at: float

    def accept(self) -> tuple[socket.socket, Any]:
        while True:  # until one fits: BlockingIOError once none waits
            try:
                descriptor, address = self._accept()  # type: ignore[attr-defined]
            except OSError as exc:
                if exc.errno not in (errno.EMFILE, errno.ENFILE) or not self._shed():
                    raise
                raise BlockingIOError from None
            conn = _Accepted(self.family, self.type, self.proto, fileno=descriptor)
            if len(_open) < self.cap or _evict_idle():
                _open[descriptor] = conn
                return conn, address
            conn.close()
            self._refused(f"{len(_open)} connections open, none idle (limits.max_connections)")

    def close(self) -> None:
        if self.reserve is not None:
            os.close(self.reserve)
            self.reserve = None
        super().close()

    def _shed(self) -> bool:
        """Out of descriptors: close the connections waiting to be accepted,
        with the one kept in reserve; False without it (asyncio then waits
        a second before it tries again)."""
        if self.reserve is None:
            self.reserve = _reserve()
            return False
        os.close(self.reserve)
        try:
            while True:
                descriptor, _ = self._accept()  # type: ignore[attr-defined]
                os.close(descriptor)
                self._refused("the process is out of descriptors (RLIMIT_NOFILE)")
        except OSError:  # none left waiting, or out again
            pass
        self.reserve = _reserve()
        return True

    def _refused(self, why: str) -> None:
        self.refused += 1
        now = time.monotonic()
        if now - self.logged_at >= LOG_EVERY:
            log.warning("refused %d connection(s): %s", self.refused, why)
            self.logged_at, self.refused = now, 0


def _reserve() -> int | None:
    try:
        return os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None


def _evict_idle() -> bool:
    """Close the connection idle longest (its descriptor at once); False: none is."""
    if not _idle:
        return False
    descriptor, close = next(iter(_idle.items()))
    del _idle[descriptor]
    close()  # leaves the loop's selector now, closes its socket later
    conn = _open.get(descriptor)
    if conn is not None:
        conn.close()  # the descriptor is free for the connection accepted now
    log.debug("closed an idle connection to make room for a new one")
    return True


class Evictable:
    """Tells the listener when an HTTP/1.1 connection waits on its client
    (from connecting until its request head is in, and between requests):
    the idle one a new connection may take the place of at the cap. A
    mixin for the node's uvicorn protocol (``agent_node.http_protocol``)."""

    transport: Any
    pipeline: Any

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        waits(transport, transport.abort)

    def connection_lost(self, exc: Exception | None) -> None:
        works(self.transport)
        super().connection_lost(exc)  # type: ignore[misc]

    def on_headers_complete(self) -> None:
        works(self.transport)
        super().on_headers_complete()  # type: ignore[misc]

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]
        if not self.pipeline and not self.transport.is_closing():
            waits(self.transport, self.transport.abort)


def waits(transport: Any, close: Callable[[], None]) -> None:
    """``transport``'s connection waits on its client from now: at the cap a
    new connection may take its place, and ``close`` then ends it at once
    (its socket is closed right after). Call it only while ``transport``
    is open: its socket's number is a new connection's once it is closed.
    Nothing for a connection the listener did not accept."""
    descriptor = _descriptor(transport)
    if descriptor in _open:
        _idle.pop(descriptor, None)  # to the end: idle from now
        _idle[descriptor] = close


def works(transport: Any) -> None:
    """``transport``'s connection serves a request: it is not idle."""
    if transport is not None:
        _idle.pop(_descriptor(transport), None)


def _descriptor(transport: Any) -> int:
    sock = transport.get_extra_info("socket")
    return -1 if sock is None else int(sock.fileno())

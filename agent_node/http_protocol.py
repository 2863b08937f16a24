"""The node's HTTP protocol: uvicorn's ``HttpToolsProtocol``, subclassed for
what uvicorn does not do (:func:`node_protocol`; :mod:`agent_node.transport`
serves with it):

* The peer certificate. On each TLS connection the peer's certificate is
  read once from the session, and every request on that connection carries
  it in its ASGI scope — the leaf as
  ``scope["extensions"]["tls"]["client_cert_chain"]`` (the ASGI TLS
  extension) and the identity it names
  (:func:`agent_node.security.tls.identity_of`) as ``scope["agent_node.caller"]``.
* Clients late. A connection whose request head, or the next part of
  whose body, does not come within ``limits.read_timeout`` is closed
  (:mod:`agent_node.read_deadline`); while it waits on its client it is
  the idle kind a new connection may take the place of when the listener
  is at its cap (:mod:`agent_node.connection_cap`).
* Header caps. A request with more than ``limits.max_headers`` header fields,
  or a request line and headers longer than ``limits.max_header_bytes``, is
  answered ``431 Request Header Fields Too Large`` and its connection closed,
  while it is still being parsed: it never reaches the app.
* Stopping. On SIGTERM or SIGINT the node stops accepting connections,
  lets the requests in flight finish and answer, and closes every other
  connection at once — idle keep-alive ones, ones the keep-alive timeout is
  already closing, and busy ones as soon as their response is out — without
  waiting for TLS clients that never say goodbye. A request still running
  after the server's grace (:data:`~agent_node.transport.GRACEFUL_SHUTDOWN`
  seconds) is answered ``503`` (its task stays durable in the store and
  carries on at the next start). See :class:`_GracefulStop`.
* HTTP/2. Over TLS a client that offers ``h2`` (ALPN) gets it: the
  connection is handed to :mod:`agent_node.http2.asgi`, which serves the
  same app, with the same scope, caps and stop, stream by stream.
* Callers gone. A caller that disconnects before its request body arrived
  (a killed process, a client timeout) is logged in one debug line, on
  every route, not as "Exception in ASGI application" with a traceback. A
  response still being sent when its caller goes away is told at once,
  through the :class:`~agent_node.scope.WhenGone` in its scope (an open
  event stream stops following its task without a task of its own waiting
  for the disconnect).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import ssl
import weakref
from collections.abc import Callable
from typing import Any, Literal

from agent_node.config import Limits
from agent_node.scope import CALLER, WHEN_GONE, WhenGone, request_line

__all__ = ["SSL_CLOSE_GRACE", "node_protocol"]

log = logging.getLogger(__name__)

#: Seconds an idle TLS connection gets to close politely when the node stops.
SSL_CLOSE_GRACE = 0.3


class _HeadersTooLarge(Exception):
    pass


class _GracefulStop:
    """How a stopping node ends its connections. uvicorn's own ``shutdown``
    closes an idle connection and lets a busy one finish its response, then
    close; this adds two things.

    TLS connections. A TLS ``close()`` sends close_notify and waits for the
    client's, up to the loop's TLS shutdown timeout (30 s); an idle pooled
    client (a peer node, itself stopping) never answers, and every stop took
    the whole graceful timeout. So once the node stops, a connection with no
    response under way — idle, or a busy one that has just finished — gets a
    moment to close politely and is then aborted, as soon as nothing of its
    last response is left in the TLS write buffer. A connection the
    keep-alive timeout (or a ``Connection: close``) closed already is in that
    wait too, and must not be closed again: CPython's TLS transport drops its
    protocol on a second ``close()``, and any later use of it raises
    ``AttributeError`` (a stop crashed, exit 1, its requests in flight cut,
    on every node a client had left idle past the keep-alive timeout).

    Requests cut. One still running when the graceful timeout ends is
    cancelled by uvicorn, which logged that as an error with a traceback. It
    is answered ``503 Service Unavailable`` instead (a stream already started
    is ended), and logged in one line: its task is durable, and the caller
    asks again once the node is back (to our delegations a 503 is transient).
    """

    # Slots, not the instance dict: see agent_node.lean_http.
    __slots__ = ("_phase", "_tls")
    cycle: Any
    transport: Any
    app: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._phase: Literal["serving", "stopping", "lost"] = "serving"
        self._tls = False
        super().__init__(*args, **kwargs)

    def connection_made(self, transport: Any) -> None:
        self._tls = transport.get_extra_info("ssl_object") is not None
        super().connection_made(transport)  # type: ignore[misc]
        self.app = self._answering_when_cut(self.app)

    def connection_lost(self, exc: Exception | None) -> None:
        self._phase = "lost"
        super().connection_lost(exc)  # type: ignore[misc]

    def shutdown(self) -> None:
        if self._phase != "serving":
            return
        self._phase = "stopping"
        idle = self.cycle is None or self.cycle.response_complete
        if not (idle and self._tls):
            super().shutdown()  # type: ignore[misc]
            return
        if not self.transport.is_closing():
            super().shutdown()  # type: ignore[misc]
        self._abort_soon()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]
        if self._phase == "stopping" and self._tls:
            self._abort_soon()  # uvicorn has closed it: its last response is out

    def _abort_soon(self) -> None:
        asyncio.get_running_loop().call_later(SSL_CLOSE_GRACE, self._abort_once_sent)

    def _abort_once_sent(self) -> None:
        """Abort the connection, or look again later while its TLS layer
        still holds bytes for a slow reader (the graceful timeout bounds it)."""
        if self._phase == "lost":
            return
        if self.transport.get_write_buffer_size():
            self._abort_soon()
        else:
            self.transport.abort()

    def _answering_when_cut(self, app: Any) -> Any:
        from starlette.requests import ClientDisconnect

        protocol = weakref.ref(self)  # not self: a lost connection is freed with its request

        async def answering(scope: Any, receive: Any, send: Any) -> None:
            started = False

            async def sending(message: Any) -> None:
                nonlocal started
                started = started or message["type"] == "http.response.start"
                await send(message)

            try:
                await app(scope, receive, sending)
            except ClientDisconnect:  # nobody is left to answer: not an error of ours
                log.debug("%s: the caller went away mid-request", request_line(scope))
            except asyncio.CancelledError:
                stopping = protocol()
                if stopping is None or stopping._phase != "stopping":
                    raise
                what = "its response was ended" if started else "answered 503"
                log.warning("stopped with %s still running: %s", request_line(scope), what)
                if not started:
                    await send(_STOPPING)
                    await send({"type": "http.response.body", "body": _STOPPING_TEXT})
                else:
                    await send({"type": "http.response.body", "body": b""})

        return answering


_STOPPING_TEXT = b"The node is stopping; ask again once it is back."
_STOPPING = {
    "type": "http.response.start",
    "status": 503,
    "headers": [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(_STOPPING_TEXT)).encode()),
    ],
}


def _tls_of(
    transport: Any, peer_of: Callable[[bytes], tuple[str, str | None]]
) -> tuple[tuple[str, str | None] | None, bool]:
    """``peer_of`` the peer's certificate on ``transport`` (None: it showed
    none), and whether its client chose HTTP/2; (None, False) over plain HTTP."""
    tls = transport.get_extra_info("ssl_object")
    if tls is None:
        return None, False
    der = tls.getpeercert(binary_form=True)
    return (peer_of(der) if der else None), tls.selected_alpn_protocol() == "h2"


def _serve_http2(protocol: Any, transport: Any, limits: Limits) -> None:
    """Serve ``transport``'s connection over HTTP/2 (its client chose it):
    ``protocol`` (a node's uvicorn protocol, not started) hands it to an
    :class:`~agent_node.http2.asgi.AsgiConnection` serving the same app."""
    from agent_node.http2.asgi import AsgiConnection

    peer: tuple[str, str | None] | None = protocol._peer

    def stamp(scope: dict[str, Any]) -> WhenGone:
        when_gone = scope[WHEN_GONE] = WhenGone()
        if peer is not None:
            scope["extensions"] = {"tls": {"client_cert_chain": [peer[0]]}}
            scope[CALLER] = peer[1]
        return when_gone

    connection = AsgiConnection(
        protocol.app,
        connections=protocol.connections,
        tasks=protocol.tasks,
        stamp=stamp,
        max_headers=limits.max_headers,
        max_header_bytes=limits.max_header_bytes,
        max_body_bytes=limits.max_body_bytes,
        keep_alive=limits.keep_alive,
        read_timeout=limits.read_timeout,
    )
    transport.set_protocol(connection)
    connection.connection_made(transport)


def _tell_gone(cycle: Any) -> None:
    """Tell the response ``cycle`` (uvicorn's) still sends that its caller is gone."""
    if cycle is None or cycle.response_complete:
        return
    when_gone = cycle.scope.get(WHEN_GONE)
    if isinstance(when_gone, WhenGone) and when_gone.callback is not None:
        when_gone.callback()


def node_protocol(limits: Limits, identity_from_cn: bool) -> type[Any]:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    from agent_node.connection_cap import Evictable
    from agent_node.lean_http import LeanConnection
    from agent_node.read_deadline import ReadDeadline
    from agent_node.security.tls import identity_of

    max_headers, max_bytes = limits.max_headers, limits.max_header_bytes

    # One PEM text and identity per certificate, not per connection: a peer's
    # many connections (open streams) share them.
    @functools.lru_cache(maxsize=256)
    def peer_of(der: bytes) -> tuple[str, str | None]:
        return ssl.DER_cert_to_PEM_cert(der), identity_of(der, from_cn=identity_from_cn)

    class NodeProtocol(_GracefulStop, ReadDeadline, Evictable, LeanConnection, HttpToolsProtocol):
        """Adds the TLS peer to every request's scope; caps headers."""

        __slots__ = (
            "_header_bytes",
            "_header_count",
            "_oversized",
            "_peer",
            "_read_due",
            "_read_for",
            "_read_timer",
        )
        read_timeout = limits.read_timeout

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self._header_count = 0
            self._header_bytes = 0
            self._oversized: str | None = None
            #: The peer's certificate (PEM) and identity; None: no certificate.
            self._peer: tuple[str, str | None] | None = None
            super().__init__(*args, **kwargs)

        def connection_made(self, transport: Any) -> None:
            self._peer, http2 = _tls_of(transport, peer_of)
            if http2:
                _serve_http2(self, transport, limits)
                return
            super().connection_made(transport)

        def on_message_begin(self) -> None:
            self._header_count = 0
            self._header_bytes = 0
            super().on_message_begin()
            self.scope[WHEN_GONE] = WhenGone()  # type: ignore[literal-required]
            if self._peer is not None:  # set here: no app wrapper awaits under every request
                pem, identity = self._peer
                self.scope["extensions"] = {"tls": {"client_cert_chain": [pem]}}
                self.scope[CALLER] = identity  # type: ignore[literal-required]

        def connection_lost(self, exc: Exception | None) -> None:
            cycle = self.cycle
            super().connection_lost(exc)
            _tell_gone(cycle)

        def on_url(self, url: bytes) -> None:
            self._count(len(url), 0)
            super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            self._count(len(name) + len(value) + 4, 1)
            super().on_header(name, value)

        def _count(self, size: int, headers: int) -> None:
            self._header_bytes += size
            self._header_count += headers
            if self._header_count > max_headers:
                self._oversized = f"more than {max_headers} header fields"
            elif self._header_bytes > max_bytes:
                self._oversized = f"request line and headers over {max_bytes} bytes"
            else:
                return
            raise _HeadersTooLarge(self._oversized)  # uvicorn answers via send_400_response

        def send_400_response(self, msg: str) -> None:
            if self._oversized is None:
                super().send_400_response(msg)
                return
            text = f"Request Header Fields Too Large: {self._oversized}".encode()
            self.logger.warning("refused a request: %s", self._oversized)
            self.transport.write(
                b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
                b"content-type: text/plain; charset=utf-8\r\n"
                b"content-length: " + str(len(text)).encode() + b"\r\n"
                b"connection: close\r\n\r\n" + text
            )
            self.transport.close()

    return NodeProtocol

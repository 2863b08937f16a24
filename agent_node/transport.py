"""How a node is served: uvicorn, over mutual TLS when configured.

The one place that sets uvicorn up, with its HTTP protocol subclassed for
what uvicorn does not do:

* The peer certificate. On each TLS connection the peer's certificate is
  read once from the session, and every request on that connection carries
  it in its ASGI scope — the leaf as
  ``scope["extensions"]["tls"]["client_cert_chain"]`` (the ASGI TLS
  extension) and the identity it names
  (:func:`agent_node.security.tls.identity_of`) as ``scope["agent_node.caller"]``.
* Header caps. A request with more than ``limits.max_headers`` header fields,
  or a request line and headers longer than ``limits.max_header_bytes``, is
  answered ``431 Request Header Fields Too Large`` and its connection closed,
  while it is still being parsed: it never reaches the app.
* Stopping. On SIGTERM or SIGINT the node stops accepting connections,
  lets the requests in flight finish and answer, and closes every other
  connection at once — idle keep-alive ones, ones the keep-alive timeout is
  already closing, and busy ones as soon as their response is out — without
  waiting for TLS clients that never say goodbye. A request still running
  after :data:`GRACEFUL_SHUTDOWN` seconds is answered ``503`` (its task stays
  durable in the store and carries on at the next start). See
  :class:`_GracefulStop`.
* HTTP/2. Over TLS a client that offers ``h2`` (ALPN) gets it: the
  connection is handed to :mod:`agent_node.http2.asgi`, which serves the
  same app, with the same scope, caps and stop, stream by stream.
* Callers gone. A caller that disconnects before its request body arrived
  (a killed process, a client timeout) is logged in one debug line, on
  every route, not as "Exception in ASGI application" with a traceback. A
  response still being sent when its caller goes away is told at once,
  through the :class:`WhenGone` in its scope (an open event stream stops
  following its task without a task of its own waiting for the disconnect).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import socket
import ssl
import time
import weakref
from collections.abc import Callable
from typing import Any, Literal

from agent_node.config import Limits
from agent_node.errors import ConfigError

__all__ = [
    "CALLER",
    "OPERATION",
    "WHEN_GONE",
    "WhenGone",
    "caller_of",
    "listening_socket",
    "uvicorn_config",
    "uvicorn_server",
]

log = logging.getLogger(__name__)

#: The ASGI scope key holding the caller's identity (None: no certificate).
CALLER = "agent_node.caller"
#: The ASGI scope key of a request's :class:`WhenGone` (a node's server puts
#: one in every request's scope; elsewhere there is none).
WHEN_GONE = "agent_node.when_gone"
#: The ASGI scope key an A2A binding names a request's operation under
#: (``SendMessage``…) once it knows it, for whoever wraps the app (traces).
OPERATION = "agent_node.operation"
#: Seconds a stopping node waits for requests in flight; a stop with none
#: takes well under a second.
GRACEFUL_SHUTDOWN = 5
#: Seconds an idle TLS connection gets to close politely when the node stops.
SSL_CLOSE_GRACE = 0.3
#: Seconds the requests a stop cut get to answer before the node closes.
CUT_ANSWER_GRACE = 1.0


class WhenGone:
    """What a response wants done if its caller goes away while it is still
    being sent: the server calls :attr:`callback` as the connection is lost.
    An idle event stream learns it so without a task that waits on
    ``receive`` for ``http.disconnect`` all its life (~1.3 KiB a stream)."""

    __slots__ = ("callback",)

    def __init__(self) -> None:
        self.callback: Callable[[], None] | None = None


def caller_of(scope: Any) -> str | None:
    """The identity of the peer that sent the request of ``scope``."""
    value = scope.get(CALLER)
    return value if isinstance(value, str) else None


def listening_socket(host: str, port: int, what: str = "") -> socket.socket:
    """A TCP socket bound to ``host:port`` (0: a free port), not yet listening;
    ConfigError when it cannot be (``what``: the listener's name in it).
    Never ``SO_REUSEPORT``: a second node on the port fails to start."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted connections only
    # when the listening socket says TCP; without it a response written in two
    # parts (uvicorn: headers, then body) waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        raise ConfigError(f"cannot listen{what} on {address}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def uvicorn_config(
    app: Any,
    tls: ssl.SSLContext | None,
    limits: Limits | None = None,
    *,
    identity_from_cn: bool = False,
    http2: bool = True,
) -> Any:
    """A uvicorn config serving ``app``, over ``tls`` when given, within
    ``limits``; ``identity_from_cn``: see :func:`~agent_node.security.tls.identity_of`.
    ``http2``: over TLS, clients that offer HTTP/2 get it (:mod:`agent_node.http2.asgi`)."""
    import uvicorn

    limits = limits or Limits()
    if tls is not None:
        tls.set_alpn_protocols(["h2", "http/1.1"] if http2 else ["http/1.1"])
    options: dict[str, Any] = {
        "log_level": "warning",
        "lifespan": "off",
        "http": _node_protocol(limits, identity_from_cn),
        # A stop waits this long for requests in flight (a blocking send may
        # wait on a peer for minutes): their tasks are durable, callers can
        # ask again after the restart.
        "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN,
        "timeout_keep_alive": limits.keep_alive,
    }
    if tls is not None:
        options["ssl_context_factory"] = lambda _config, _default: tls
    return uvicorn.Config(app, **options)


def uvicorn_server(config: Any) -> Any:
    """A uvicorn server for ``config`` (see :func:`uvicorn_config`) whose
    stop ends the requests it cuts before it returns.

    uvicorn cancels the requests still running at the end of the graceful
    timeout and returns at once; a forced stop (a second Ctrl-C) does not
    cancel them at all. Either way the node went on to stop the engine and
    close the store under them, and a send waiting on the engine failed with
    an internal error and a traceback. This server cancels what still runs
    and lets it answer 503 (:class:`_GracefulStop`) before it returns.
    """
    import uvicorn

    from agent_node.lean_tls import lean_tls_buffers

    lean_tls_buffers()

    class NodeServer(uvicorn.Server):
        #: Told when a stop is first asked; returns the seconds to drain
        #: (keep serving, ``/readyz`` failing) before the listener closes.
        on_stop: Callable[[], float] | None = None
        _drain_until: float | None = None

        def handle_exit(self, sig: int, frame: Any) -> None:
            if self.on_stop is not None and self._drain_until is None and not self.should_exit:
                delay = self.on_stop()
                if delay > 0:
                    self._drain_until = time.monotonic() + delay
                    return
            super().handle_exit(sig, frame)

        async def on_tick(self, counter: int) -> bool:
            if self._drain_until is not None and time.monotonic() >= self._drain_until:
                return True
            return bool(await super().on_tick(counter))

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            await super().shutdown(sockets)
            running = list(self.server_state.tasks)
            for task in running:
                if not task.cancelling():  # not cut by the graceful timeout already
                    task.cancel()
            if running:
                await asyncio.wait(running, timeout=CUT_ANSWER_GRACE)

    return NodeServer(config)


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
                method, path = scope.get("method"), scope.get("path")
                log.debug("%s %s: the caller went away mid-request", method, path)
            except asyncio.CancelledError:
                stopping = protocol()
                if stopping is None or stopping._phase != "stopping":
                    raise
                what = "its response was ended" if started else "answered 503"
                log.warning("stopped with %s still running: %s", scope.get("path"), what)
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


def _node_protocol(limits: Limits, identity_from_cn: bool) -> type[Any]:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    from agent_node.lean_http import LeanConnection
    from agent_node.security.tls import identity_of

    max_headers, max_bytes = limits.max_headers, limits.max_header_bytes

    # One PEM text and identity per certificate, not per connection: a peer's
    # many connections (open streams) share them.
    @functools.lru_cache(maxsize=256)
    def peer_of(der: bytes) -> tuple[str, str | None]:
        return ssl.DER_cert_to_PEM_cert(der), identity_of(der, from_cn=identity_from_cn)

    class NodeProtocol(_GracefulStop, LeanConnection, HttpToolsProtocol):
        """Adds the TLS peer to every request's scope; caps headers."""

        __slots__ = ("_header_bytes", "_header_count", "_oversized", "_peer")

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

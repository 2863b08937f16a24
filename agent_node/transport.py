"""How a node is served: uvicorn, over mutual TLS when configured.

The one place that sets uvicorn up: the listening socket (the node's holds
a capped number of connections, :mod:`agent_node.connection_cap`), the
config — its HTTP protocol is the node's own (:mod:`agent_node.http_protocol`:
the TLS peer in each request's scope, header caps, HTTP/2 for the clients
that offer it, callers gone, a stop's connections) — and the server, whose stop lets
the requests in flight answer for :data:`GRACEFUL_SHUTDOWN` seconds and ends
those it cuts before it returns (:func:`uvicorn_server`).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any

from agent_node.config import Limits
from agent_node.connection_cap import capped_listener
from agent_node.errors import ConfigError
from agent_node.http_protocol import node_protocol
from agent_node.security.tls import http_alpn

__all__ = [
    "CUT_ANSWER_GRACE",
    "GRACEFUL_SHUTDOWN",
    "listening_socket",
    "uvicorn_config",
    "uvicorn_server",
]

log = logging.getLogger(__name__)

#: Seconds a stopping node waits for requests in flight; a stop with none
#: takes well under a second.
GRACEFUL_SHUTDOWN = 5
#: Seconds the requests a stop cut get to answer before the node closes.
CUT_ANSWER_GRACE = 1.0


def listening_socket(
    host: str, port: int, what: str = "", *, cap: int | None = None
) -> socket.socket:
    """A TCP socket bound to ``host:port`` (0: a free port), not yet listening;
    ConfigError when it cannot be (``what``: the listener's name in it).
    ``cap``: it holds at most that many accepted connections open
    (:mod:`agent_node.connection_cap`). Never ``SO_REUSEPORT``: a second
    node on the port fails to start."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted connections only
    # when the listening socket says TCP; without it a response written in two
    # parts (uvicorn: headers, then body) waits ~40 ms for a delayed ACK.
    if cap is None:
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    else:
        sock = capped_listener(family, cap)
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
        tls.set_alpn_protocols(http_alpn(http2))
    options: dict[str, Any] = {
        "log_level": "warning",
        # uvicorn's own lines ("Invalid HTTP request received.") go to the
        # process's log like every other (one format: text or JSON).
        "log_config": None,
        "lifespan": "off",
        "http": node_protocol(limits, identity_from_cn),
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

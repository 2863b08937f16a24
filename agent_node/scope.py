"""What the node's servers put in a request's ASGI scope, beside ASGI's own:
who called (the identity its TLS client certificate names), how a response
learns its caller went away, and which A2A operation the request is.
Over HTTP/1.1 the node's uvicorn protocol puts them there
(:mod:`agent_node.http_protocol`), over HTTP/2 its HTTP/2 connection
(:mod:`agent_node.http2.asgi`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["CALLER", "OPERATION", "WHEN_GONE", "WhenGone", "caller_of", "request_line"]

#: Characters of a request's method and path a log line quotes, at most.
_METHOD_SHOWN, _PATH_SHOWN = 16, 200

#: The ASGI scope key holding the caller's identity (None: no certificate).
CALLER = "agent_node.caller"
#: The ASGI scope key of a request's :class:`WhenGone` (a node's server puts
#: one in every request's scope; elsewhere there is none).
WHEN_GONE = "agent_node.when_gone"
#: The ASGI scope key an A2A binding names a request's operation under
#: (``SendMessage``…) once it knows it, for whoever wraps the app (traces).
OPERATION = "agent_node.operation"


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


def request_line(scope: Any) -> str:
    """``METHOD /path`` of the request of ``scope`` for a log line, each cut
    short: what a client sends may be kilobytes long (a 30 KB HTTP/2
    ``:method`` logged whole on each refusal grew the log by 28 MB)."""
    return (
        f"{_cut(scope.get('method', ''), _METHOD_SHOWN)} {_cut(scope.get('path', ''), _PATH_SHOWN)}"
    )


def _cut(text: str, most: int) -> str:
    return text if len(text) <= most else text[:most] + "…"

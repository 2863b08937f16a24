"""MCP: one session with one server, its lifecycle, and its error boundary.

A session goes through these states (``SessionState``):

* **opening** — by one caller at a time; concurrent callers wait for it;
* **ready** — calls use it;
* **lost** — its transport ended (a stdio server exited: its stdout closed).
  The next call sees it before sending and opens a new session, so that
  call succeeds and nothing ran twice;
* **retired** — a call failed at the transport or protocol level (the
  connection closed mid-call, an HTTP failure, a server's internal error).
  That call is a node failure — it may have reached the server, so it is not
  repeated here; the node's retry policy decides — and the next call opens
  a new session. The old one is closed once its in-flight calls are done —
  at once when it was retired for not answering a ``ping`` after a call
  went unanswered (a wedged server: :meth:`McpSession.answers_ping`), as
  its calls would only wait out their deadlines;
* **closing** — for good: by :meth:`~.mcp.McpPool.aclose` (stdio servers
  are stopped), or once a lost or retired session has no call in flight.

A tool that answers ``is_error`` is an answer, not a session problem; so is
a JSON-RPC "no such method" or "invalid params": the session stays. So is a
call that gets no answer within its deadline (the SDK tells the server it
gave up on it: ``notifications/cancelled``), and one whose answer is over
the size cap (a streamable-HTTP server's answer is read up to the cap only,
:func:`.mcp_transport.sse_cap`): :func:`calling` says either as such, naming the server
and the tool.

Every foreign exception (mcp, anyio, httpx2, ``OSError``) is translated into
:class:`~agent_node.errors.NodeFailed` naming the server, by one context
manager (:func:`boundary`), which also retires a session the failure leaves
unusable.

Each session lives in an asyncio task of its own: the SDK's transports and
session are anyio task groups, which must be exited by the task that entered
them, and a session outlives the node that opened it. That task runs in an
empty ``contextvars`` context, so it does not carry the opening node's.

Apart from the pool (:mod:`.mcp`), which decides when a server's session is
opened, shared and replaced; this module is what one session is.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TextIO

from agent_node.config import McpServerConfig
from agent_node.errors import NodeFailed
from agent_node.integrations.mcp_tools import ToolInfo
from agent_node.integrations.mcp_transport import Watched, transport
from agent_node.nodes.tool import AnswerTooLarge

if TYPE_CHECKING:
    from mcp.client import ClientSession

__all__ = [
    "CLOSE_TIMEOUT",
    "McpSession",
    "SessionState",
    "boundary",
    "calling",
    "too_large",
    "unanswered",
]

log = logging.getLogger(__name__)

#: Seconds closing one session may take before its task is cancelled.
CLOSE_TIMEOUT = 10.0
#: The same for a wedged HTTP server's session (its DELETE goes unanswered).
WEDGED_GRACE = 1.0
#: JSON-RPC errors about the request, not the session (method not found,
#: invalid params, the SDK's request timeout): the session is kept.
_REQUEST_ERRORS = frozenset({-32601, -32602, -32001})
#: What the SDK says when a streamable-HTTP answer (one SSE event) is over
#: its cap: the request is given up, the session is fine.
_SSE_OVER_CAP = "Server-sent event exceeded the"

#: A session's lifecycle (see the module doc); "closing" is final.
SessionState = Literal["opening", "ready", "lost", "retired", "closing"]
_MOVES: dict[SessionState, frozenset[SessionState]] = {
    "opening": frozenset({"ready", "lost", "closing"}),
    "ready": frozenset({"lost", "retired", "closing"}),
    "lost": frozenset({"closing"}),
    "retired": frozenset({"closing"}),
    "closing": frozenset(),
}


class McpSession:
    """One session with one server, entered and exited by a task of its own."""

    def __init__(self, config: McpServerConfig, cwd: Path | None, errlog: TextIO | None) -> None:
        self.config = config
        self.cwd = cwd
        self.errlog = errlog
        self.state: SessionState = "opening"
        self.inflight = 0
        self.tools: list[ToolInfo] | None = None
        self._stop = asyncio.Event()
        self._ready: asyncio.Future[ClientSession] = asyncio.get_running_loop().create_future()
        self._task: asyncio.Task[None] | None = None

    def move(self, to: SessionState) -> None:
        """The one guard of ``state``: a move the table does not allow is
        ignored (a lost session that also failed a call stays lost)."""
        if to in _MOVES[self.state]:
            self.state = to

    @property
    def usable(self) -> bool:
        return self.state == "ready"

    @property
    def client(self) -> ClientSession:
        return self._ready.result()

    async def open(self, timeout: float) -> None:
        name = f"mcp:{self.config.name}"
        self._task = asyncio.create_task(self._serve(), name=name, context=contextvars.Context())
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(self._ready)
        except TimeoutError:
            raise TimeoutError(f"no answer to initialize within {timeout:g} s") from None
        self.move("ready")

    async def answers_ping(self, timeout: float) -> bool:
        """Whether the server answers a ``ping`` within ``timeout`` seconds
        (an error answer is an answer: the server reads and writes).

        A ping unanswered is left pending, not cancelled: cancelling it would
        have the SDK send ``notifications/cancelled``, which waits (up to 5 s)
        for a transport a wedged server blocks; it ends with the session."""
        from mcp.shared.exceptions import MCPError
        from mcp_types import CONNECTION_CLOSED, REQUEST_TIMEOUT

        ping = asyncio.ensure_future(self.client.send_ping())
        ping.add_done_callback(_quiet)
        done, _ = await asyncio.wait({ping}, timeout=timeout)
        if not done or ping.cancelled():
            return False
        exc = ping.exception()
        if isinstance(exc, MCPError):
            return exc.code not in (CONNECTION_CLOSED, REQUEST_TIMEOUT)
        return exc is None  # else the transport broke: no answer

    async def close(self, *, wedged: bool = False) -> None:
        """End the session: politely (a stdio server's stdin closed, 2 s of
        grace, its process group killed and reaped; an HTTP session's DELETE)
        within CLOSE_TIMEOUT, else cut short. A ``wedged`` HTTP server is given
        WEDGED_GRACE (it will not answer the DELETE); a stdio one the same as
        ever: the SDK's shutdown stops its process, which a cancel could cut
        short and leave running."""
        self.move("closing")
        self._stop.set()
        task = self._task
        if task is None:
            return
        if not self._ready.done():
            task.cancel()  # still starting: nothing to wind down politely
        grace = WEDGED_GRACE if wedged and self.config.command is None else CLOSE_TIMEOUT
        _, pending = await asyncio.wait({task}, timeout=grace)
        if pending:
            if grace == CLOSE_TIMEOUT:
                log.warning("mcp server %r: closing took over %g s", self.config.name, grace)
            task.cancel()
            await asyncio.wait({task}, timeout=CLOSE_TIMEOUT)
        if self._ready.done() and not self._ready.cancelled():
            self._ready.exception()  # retrieved: a failed open was already reported

    async def _serve(self) -> None:
        from mcp.client.session import ClientSession

        try:
            async with AsyncExitStack() as stack:
                read, write = await stack.enter_async_context(
                    transport(self.config, self.cwd, self.errlog)
                )
                session = ClientSession(Watched(read, lambda: self.move("lost")), write)
                await stack.enter_async_context(session)
                await session.initialize()
                self._ready.set_result(session)
                await self._stop.wait()
        except Exception as exc:
            if not self._ready.done():
                self._ready.set_exception(exc)
            elif self.state != "closing":
                log.warning("mcp server %r: the session ended: %s", self.config.name, exc)
        finally:
            self.move("lost")


@contextmanager
def boundary(server: str, doing: str, session: McpSession | None = None) -> Iterator[None]:
    """Translate what the SDK raises into ``NodeFailed``; retire a session
    the failure leaves unusable."""
    try:
        yield
    except NodeFailed:
        raise
    except Exception as exc:
        if session is not None and _breaks_session(exc):
            session.move("retired")
        raise NodeFailed(f"mcp server {server!r}: {doing}: {_describe(exc)}") from exc


@contextmanager
def calling(session: McpSession, tool: str, deadline: float) -> Iterator[None]:
    """:func:`boundary` of one tool call: no answer within ``deadline``
    seconds, and an answer over the server's ``max_bytes``, said as such
    (the first a transient failure, the second :class:`AnswerTooLarge`)."""
    from mcp.shared.exceptions import MCPError
    from mcp_types import CONNECTION_CLOSED, REQUEST_TIMEOUT

    server = session.config.name
    with boundary(server, f"calling tool {tool!r}", session):
        try:
            yield
        except MCPError as exc:
            if exc.code == REQUEST_TIMEOUT:
                raise NodeFailed(
                    f"mcp server {server!r}: tool {tool!r} gave no answer within {deadline:g} s"
                    " (its node's timeout, else the server's timeout: in mcp:)"
                ) from exc
            if exc.code == CONNECTION_CLOSED and _SSE_OVER_CAP in exc.message:
                raise too_large(session, tool) from exc
            raise


def unanswered(exc: BaseException) -> bool:
    """Whether a request ended without an answer: its deadline passed, or its
    caller gave up (cancelled: a node's timeout is often first)."""
    from mcp.shared.exceptions import MCPError
    from mcp_types import REQUEST_TIMEOUT

    if isinstance(exc, asyncio.CancelledError):
        return True
    return isinstance(exc, MCPError) and exc.code == REQUEST_TIMEOUT


def too_large(session: McpSession, tool: str) -> AnswerTooLarge:
    cap = session.config.max_bytes
    return AnswerTooLarge(
        f"mcp server {session.config.name!r}: the answer of tool {tool!r} is larger than"
        f" max_bytes ({cap:,} bytes; the server's max_bytes in mcp:)"
    )


def _breaks_session(exc: Exception) -> bool:
    from mcp.shared.exceptions import MCPError

    if isinstance(exc, MCPError):
        return exc.code not in _REQUEST_ERRORS
    # RuntimeError: the SDK refusing a result (structured content against the
    # tool's output schema, an unexpected input request); the session is fine.
    return not isinstance(exc, RuntimeError)


def _quiet(task: asyncio.Future[Any]) -> None:
    """An abandoned request's outcome is nobody's: retrieved, not logged."""
    if not task.cancelled():
        task.exception()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        return _describe(exc.exceptions[0])
    from mcp.shared.exceptions import MCPError

    if isinstance(exc, MCPError):
        return f"{exc.message} (MCP error {exc.code})"
    if isinstance(exc, TimeoutError) and str(exc):
        return str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__

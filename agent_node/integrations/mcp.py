"""MCP tools: one live session per configured server, shared by every call.

Opening a session costs a process spawn and an ``initialize`` round trip
(≈0.8 s over stdio); a warm call costs a few milliseconds. So
:class:`McpPool` opens a server's session on first use and keeps it: every
later call — from any node of any execution — reuses it. Calls run
concurrently on one session (JSON-RPC ids keep them apart; measured: five
0.2 s calls on one stdio session take 0.21 s together), so nothing is
serialized per server except opening.

A server's session goes through these states (``SessionState``):

* **opening** — by one caller at a time; concurrent callers wait for it;
* **ready** — calls use it;
* **lost** — its transport ended (a stdio server exited: its stdout closed).
  The next call sees it before sending and opens a new session, so that
  call succeeds and nothing ran twice;
* **retired** — a call failed at the transport or protocol level (the
  connection closed mid-call, an HTTP failure, a server's internal error).
  That call is a node failure — it may have reached the server, so it is not
  repeated here; the node's retry policy decides — and the next call opens
  a new session. The old one is closed once its in-flight calls are done;
* **closing** — for good: by :meth:`McpPool.aclose` (stdio servers are
  stopped), or once a lost or retired session has no call in flight.

A tool that answers ``is_error`` is an answer, not a session problem; so is
a JSON-RPC "no such method" or "invalid params": the session stays.

Every foreign exception (mcp, anyio, httpx2, ``OSError``) is translated into
:class:`~agent_node.errors.NodeFailed` naming the server, by one context
manager (:func:`_boundary`).

Each session lives in an asyncio task of its own: the SDK's transports and
session are anyio task groups, which must be exited by the task that entered
them, and a session outlives the node that opened it. That task runs in an
empty ``contextvars`` context, so it does not carry the opening node's.
A pool belongs to the event loop it first opened a session on.

The SDK (``mcp``, ≈1 s to import) is imported on the first open.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import sys
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, TextIO, cast

import anyio

from agent_node.config import McpServerConfig, NodeConfig
from agent_node.errors import NodeFailed, UsageError
from agent_node.nodes.tool import ToolResult

if TYPE_CHECKING:
    from mcp.client import ClientSession, Transport
    from mcp.shared.message import SessionMessage
    from mcp_types import CallToolResult, ContentBlock, RequestParamsMeta

__all__ = [
    "CLOSE_TIMEOUT",
    "OPEN_TIMEOUT",
    "McpPool",
    "McpToolBox",
    "PoolState",
    "ToolInfo",
    "ToolResult",
]

log = logging.getLogger(__name__)

#: Seconds a server may take to start and answer ``initialize``.
OPEN_TIMEOUT = 30.0
#: Seconds closing one session may take before its task is cancelled.
CLOSE_TIMEOUT = 10.0
#: JSON-RPC errors about the request, not the session (method not found,
#: invalid params): the session is kept.
_REQUEST_ERRORS = frozenset({-32601, -32602})
#: Most ``tools/list`` pages read from one server (a paginator that never ends).
_MAX_PAGES = 100


@dataclass(frozen=True, slots=True)
class ToolInfo:
    """A tool as its server lists it."""

    name: str
    description: str | None
    input_schema: dict[str, Any]
    output_schema: dict[str, Any] | None = None


class PoolState(Enum):
    OPEN = "open"
    CLOSED = "closed"


class McpPool:
    """The configured MCP servers' sessions (see the module doc).

    ``base_dir`` resolves relative ``cwd`` settings (the configuration
    file's directory); ``errlog`` receives stdio servers' stderr.
    """

    def __init__(
        self,
        servers: Sequence[McpServerConfig],
        *,
        base_dir: Path | None = None,
        open_timeout: float = OPEN_TIMEOUT,
        errlog: TextIO | None = None,
    ) -> None:
        self._slots = {server.name: _Slot(server) for server in servers}
        self._base_dir = base_dir
        self._open_timeout = open_timeout
        self._errlog = errlog
        self._state = PoolState.OPEN
        self._closing: set[asyncio.Task[None]] = set()
        #: Which server offers a tool, as :meth:`server_for` found it.
        self._owners: dict[str, str] = {}
        #: Sessions opened (or tried) so far, over all servers.
        self.spawns = 0

    @classmethod
    def from_config(cls, config: NodeConfig, **options: Any) -> McpPool:
        """The pool of ``config.mcp``, paths resolved against the config file."""
        return cls(config.mcp, base_dir=config.base_dir, **options)

    @property
    def servers(self) -> list[str]:
        return list(self._slots)

    @property
    def state(self) -> PoolState:
        return self._state

    async def __aenter__(self) -> McpPool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def call(
        self,
        server: str,
        tool: str,
        arguments: Mapping[str, Any],
        *,
        meta: Mapping[str, Any] | None = None,
    ) -> ToolResult:
        """Call ``tool`` on ``server``. An ``is_error`` answer is returned,
        not raised; failing to get an answer raises ``NodeFailed``."""
        session = await self._session(server)
        session.inflight += 1
        try:
            with _boundary(server, f"calling tool {tool!r}", session):
                sent = cast("RequestParamsMeta", dict(meta)) if meta else None
                result = await session.client.call_tool(tool, dict(arguments), meta=sent)
        finally:
            session.inflight -= 1
            if not session.usable and session.inflight == 0:
                self._close_later(session)
        return _result(result)

    async def list_tools(self, server: str | None = None) -> dict[str, list[ToolInfo]]:
        """The tools of ``server`` (every server when None), listed afresh."""
        names = [server] if server is not None else self.servers
        listings = await asyncio.gather(*(self._tools(name, fresh=True) for name in names))
        return dict(zip(names, listings, strict=True))

    async def tool_info(self, tool: str) -> tuple[str, ToolInfo]:
        """The server offering ``tool`` and how it lists it (cached listings)."""
        server = await self.server_for(tool)
        listed = await self._tools(server, fresh=False)
        return server, next(info for info in listed if info.name == tool)

    async def server_for(self, tool: str) -> str:
        """The one server offering ``tool``; ``NodeFailed`` when none or several do.

        Decided from the servers' listings (cached per session, listed afresh
        once when none has the tool); servers that cannot be reached are
        left out. The answer is kept until a listing is refreshed.
        """
        owner = self._owners.get(tool)
        if owner is not None:
            return owner
        if not self._slots:
            raise NodeFailed(f"no MCP servers are configured (looking for tool {tool!r})")
        failures: list[str] = []
        for fresh in (False, True):
            found = await asyncio.gather(
                *(self._tools(name, fresh=fresh) for name in self._slots), return_exceptions=True
            )
            owners, failures = _offering(tool, dict(zip(self._slots, found, strict=True)))
            if len(owners) == 1:
                self._owners[tool] = owners[0]
                return owners[0]
            if owners:
                raise NodeFailed(
                    f"tool {tool!r} is offered by several MCP servers ({', '.join(owners)}):"
                    " name the server"
                )
        unreachable = f"; unreachable: {'; '.join(failures)}" if failures else ""
        raise NodeFailed(
            f"no MCP server offers a tool named {tool!r}"
            f" (servers: {', '.join(self._slots)}{unreachable})"
        )

    async def aclose(self) -> None:
        """Close every session (stdio servers are stopped); idempotent."""
        self._state = PoolState.CLOSED
        for slot in self._slots.values():
            if slot.session is not None:
                self._close_later(slot.session)
                slot.session = None
        while self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    async def _session(self, server: str) -> _Session:
        """The server's usable session, opened when it has none."""
        slot = self._slot(server)
        current = slot.session
        if current is not None and current.usable:
            return current
        async with slot.lock:
            current = slot.session
            if current is not None and current.usable:
                return current
            if current is not None:
                current.move("retired")
                slot.session = None
                if current.inflight == 0:
                    self._close_later(current)
            self._guard()
            self.spawns += 1
            session = _Session(slot.config, self._cwd(slot.config), self._errlog)
            try:
                with _boundary(server, "opening a session"):
                    await session.open(self._open_timeout)
            except BaseException:
                self._close_later(session)
                raise
            if self._state is PoolState.CLOSED:  # closed while it opened
                self._close_later(session)
                self._guard()
            slot.session = session
            return session

    async def _tools(self, server: str, *, fresh: bool) -> list[ToolInfo]:
        session = await self._session(server)
        if session.tools is not None and not fresh:
            return session.tools
        from mcp_types import PaginatedRequestParams

        tools: list[ToolInfo] = []
        cursor: str | None = None
        with _boundary(server, "listing tools", session):
            for _ in range(_MAX_PAGES):
                params = PaginatedRequestParams(cursor=cursor) if cursor else None
                page = await session.client.list_tools(params=params)
                tools += [
                    ToolInfo(t.name, t.description, dict(t.input_schema), t.output_schema)
                    for t in page.tools
                ]
                cursor = page.next_cursor
                if not cursor:
                    break
        session.tools = tools
        self._owners.clear()
        return tools

    def _slot(self, server: str) -> _Slot:
        slot = self._slots.get(server)
        if slot is None:
            known = ", ".join(self._slots) or "none"
            raise NodeFailed(f"no MCP server named {server!r} is configured (configured: {known})")
        return slot

    def _guard(self) -> None:
        if self._state is PoolState.CLOSED:
            raise UsageError("this MCP pool is closed: it opens no more sessions")

    def _cwd(self, config: McpServerConfig) -> Path | None:
        if config.cwd is None:
            return None
        cwd = Path(config.cwd)
        return cwd if cwd.is_absolute() or self._base_dir is None else self._base_dir / cwd

    def _close_later(self, session: _Session) -> None:
        if session.state == "closing":
            return
        task = asyncio.create_task(session.close(), context=contextvars.Context())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)


@dataclass
class _Slot:
    """One configured server: its settings, its session, who may open it."""

    config: McpServerConfig
    session: _Session | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


#: A session's lifecycle (see the module doc); "closing" is final.
SessionState = Literal["opening", "ready", "lost", "retired", "closing"]
_MOVES: dict[SessionState, frozenset[SessionState]] = {
    "opening": frozenset({"ready", "lost", "closing"}),
    "ready": frozenset({"lost", "retired", "closing"}),
    "lost": frozenset({"closing"}),
    "retired": frozenset({"closing"}),
    "closing": frozenset(),
}


class _Session:
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

    async def close(self) -> None:
        self.move("closing")
        self._stop.set()
        task = self._task
        if task is None:
            return
        if not self._ready.done():
            task.cancel()  # still starting: nothing to wind down politely
        _, pending = await asyncio.wait({task}, timeout=CLOSE_TIMEOUT)
        if pending:
            log.warning("mcp server %r: closing took over %g s", self.config.name, CLOSE_TIMEOUT)
            task.cancel()
            await asyncio.wait({task}, timeout=CLOSE_TIMEOUT)
        if self._ready.done() and not self._ready.cancelled():
            self._ready.exception()  # retrieved: a failed open was already reported

    async def _serve(self) -> None:
        from mcp.client.session import ClientSession

        try:
            async with AsyncExitStack() as stack:
                read, write = await stack.enter_async_context(_transport(self))
                session = ClientSession(_Watched(read, lambda: self.move("lost")), write)
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


def _transport(session: _Session) -> Transport:
    """The transport of ``session``'s server: stdio (``command``) or streamable HTTP."""
    config = session.config
    if config.command is not None:
        from mcp.client.stdio import StdioServerParameters, stdio_client

        command, *args = config.command
        params = StdioServerParameters(
            command=command, args=args, env=dict(config.env) or None, cwd=session.cwd
        )
        return stdio_client(params, errlog=session.errlog or _stderr())
    return _http_transport(str(config.url), dict(config.headers))


def _stderr() -> TextIO:
    """Where a stdio server's stderr goes: ours, or the process's when ours is
    no file (a test runner capturing it); the child needs a descriptor."""
    for stream in (sys.stderr, sys.__stderr__):
        try:
            if stream is not None and stream.fileno() >= 0:
                return stream
        except (AttributeError, OSError, ValueError):
            continue
    raise NodeFailed("no stderr to give an MCP server")


@contextmanager
def _boundary(server: str, doing: str, session: _Session | None = None) -> Iterator[None]:
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


def _breaks_session(exc: Exception) -> bool:
    from mcp.shared.exceptions import MCPError

    if isinstance(exc, MCPError):
        return exc.code not in _REQUEST_ERRORS
    # RuntimeError: the SDK refusing a result (structured content against the
    # tool's output schema, an unexpected input request); the session is fine.
    return not isinstance(exc, RuntimeError)


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


def _offering(
    tool: str, found: Mapping[str, list[ToolInfo] | BaseException]
) -> tuple[list[str], list[str]]:
    """The servers listing ``tool``, and why the others could not be asked."""
    owners: list[str] = []
    failures: list[str] = []
    for server, tools in found.items():
        if isinstance(tools, BaseException):
            if not isinstance(tools, Exception):
                raise tools  # cancellation and other control flow
            failures.append(str(tools))
        elif any(info.name == tool for info in tools):
            owners.append(server)
    return owners, failures


def _result(result: CallToolResult) -> ToolResult:
    text = "\n".join(_text(block) for block in result.content)
    return ToolResult(text, result.structured_content, bool(result.is_error))


def _text(block: ContentBlock) -> str:
    """A content block as text: its text, else a short placeholder."""
    from mcp_types import EmbeddedResource, ResourceLink, TextContent, TextResourceContents

    if isinstance(block, TextContent):
        return block.text
    if isinstance(block, EmbeddedResource):
        inner = block.resource
        return inner.text if isinstance(inner, TextResourceContents) else f"[resource {inner.uri}]"
    if isinstance(block, ResourceLink):
        return f"[resource {block.uri}]"
    return f"[{block.type} {getattr(block, 'mime_type', '')}]".replace(" ]", "]")


class _Receiving(Protocol):
    async def receive(self) -> SessionMessage | Exception: ...

    async def aclose(self) -> None: ...


class _Watched:
    """A transport's read stream that calls ``on_end`` when the transport
    ends, so the pool sees a dead server before sending to it."""

    def __init__(self, stream: _Receiving, on_end: Callable[[], None]) -> None:
        self._stream = stream
        self._on_end = on_end

    @property
    def last_context(self) -> contextvars.Context | None:
        # The dispatcher reads it (duck-typed) to run handlers in the sender's context.
        context = getattr(self._stream, "last_context", None)
        return context if isinstance(context, contextvars.Context) else None

    async def receive(self) -> SessionMessage | Exception:
        try:
            return await self._stream.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
            self._on_end()
            raise

    async def aclose(self) -> None:
        await self._stream.aclose()

    def __aiter__(self) -> _Watched:
        return self

    async def __anext__(self) -> SessionMessage | Exception:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    async def __aenter__(self) -> _Watched:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _http_transport(url: str, headers: dict[str, str]) -> Transport:
    """Streamable HTTP through an ``httpx2`` client carrying ``headers``."""
    from contextlib import asynccontextmanager

    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    @asynccontextmanager
    async def connect() -> AsyncIterator[tuple[Any, Any]]:
        # The SDK's own timeouts: 30 s to connect or write, 300 s to read a stream.
        timeout = httpx2.Timeout(30.0, read=300.0)
        async with httpx2.AsyncClient(headers=headers, timeout=timeout) as client:
            async with streamable_http_client(url, http_client=client) as streams:
                yield streams

    return connect()


class McpToolBox:
    """The pool's tools as model nodes call them (``agent_node.nodes.model.ToolBox``)."""

    def __init__(self, pool: McpPool) -> None:
        self.pool = pool

    async def schemas(self, names: Sequence[str]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for name in names:
            _, info = await self.pool.tool_info(name)
            function = {
                "name": name,
                "description": info.description or "",
                "parameters": info.input_schema,
            }
            found.append({"type": "function", "function": function})
        return found

    async def call(self, name: str, args: Mapping[str, Any]) -> str:
        result = await self.pool.call(await self.pool.server_for(name), name, args)
        return f"error: {result.content_text}" if result.is_error else result.content_text

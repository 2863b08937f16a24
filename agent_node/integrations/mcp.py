"""MCP tools: one live session per configured server, shared by every call.

Opening a session costs a process spawn and an ``initialize`` round trip
(≈0.8 s over stdio); a warm call costs a few milliseconds. So
:class:`McpPool` opens a server's session on first use and keeps it: every
later call — from any node of any execution — reuses it. Calls run
concurrently on one session (JSON-RPC ids keep them apart; measured: five
0.2 s calls on one stdio session take 0.21 s together), so nothing is
serialized per server except opening.

A server's start (spawn and ``initialize``) is the pool's, not the
caller's: it runs in a task of its own, bounded by ``open_timeout``, and
every caller waits for that one start. A caller that gives up (its node
timed out) leaves it going, so the next call finds the server up — and its
timeout says the server was still starting (the ``CancelledError`` it ends
with carries that, which the runner quotes).

Each call waits for its answer at most its node's ``timeout``, else its
server's ``timeout`` (``mcp:``), and takes an answer up to its server's
``max_bytes`` (:class:`~agent_node.nodes.tool.AnswerTooLarge` beyond).

A call left unanswered (deadline passed, caller gave up) has its server
sent a ``ping`` (``ping_timeout``, 5 s): a server that answers is slow and
keeps its session; one that does not is wedged, and its session is retired
and closed (a stdio server stopped), said once as a WARNING. Calls wanting
the session meanwhile wait for that verdict.

A session that was lost (its server exited) or retired (a call failed at
the transport or protocol level; wedged) is replaced by the next call; what a
session is — its states, its task, how the SDK's failures become
:class:`~agent_node.errors.NodeFailed` — is :mod:`.mcp_session`; how it
reaches its server, :mod:`.mcp_transport`; the tools and results as we see
them, :mod:`.mcp_tools`. A pool belongs to the event loop it first opened a
session on.

The SDK (``mcp``, ≈1 s to import) is imported on the first open.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, cast

from agent_node.config import McpServerConfig, NodeConfig
from agent_node.errors import NodeFailed, UsageError
from agent_node.integrations.mcp_session import (
    CLOSE_TIMEOUT,
    McpSession,
    boundary,
    calling,
    too_large,
    unanswered,
)
from agent_node.integrations.mcp_tools import ToolInfo, tool_result
from agent_node.nodes.tool import ToolResult

if TYPE_CHECKING:
    from mcp_types import RequestParamsMeta

__all__ = [
    "CLOSE_TIMEOUT",
    "OPEN_TIMEOUT",
    "PING_TIMEOUT",
    "McpPool",
    "PoolState",
    "ToolInfo",
    "ToolResult",
]

log = logging.getLogger(__name__)

#: Seconds a server may take to start and answer ``initialize``.
OPEN_TIMEOUT = 30.0
#: Seconds a server may take to answer the ``ping`` that follows a call it
#: left unanswered, before its session is taken for wedged and replaced.
PING_TIMEOUT = 5.0
#: Most ``tools/list`` pages read from one server (a paginator that never ends).
_MAX_PAGES = 100


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
        ping_timeout: float = PING_TIMEOUT,
        errlog: TextIO | None = None,
    ) -> None:
        self._slots = {server.name: _Slot(server) for server in servers}
        self._base_dir = base_dir
        self._open_timeout = open_timeout
        self._ping_timeout = ping_timeout
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
        timeout: float | None = None,
    ) -> ToolResult:
        """Call ``tool`` on ``server``, waiting ``timeout`` seconds at most
        (None: the server's ``timeout``). An ``is_error`` answer is returned,
        not raised; failing to get an answer raises ``NodeFailed``, an answer
        over the server's ``max_bytes`` :class:`AnswerTooLarge`."""
        session = await self._session(server)
        deadline = session.config.timeout if timeout is None else timeout
        session.inflight += 1
        try:
            with calling(session, tool, deadline):
                sent = cast("RequestParamsMeta", dict(meta)) if meta else None
                try:
                    result = await session.client.call_tool(
                        tool, dict(arguments), read_timeout_seconds=deadline, meta=sent
                    )
                except BaseException as exc:
                    if unanswered(exc):
                        self._check(self._slots[server], session)
                    raise
        finally:
            session.inflight -= 1
            if not session.usable and session.inflight == 0:
                self._close_later(session)
        answer = tool_result(result)
        if answer.size() > session.config.max_bytes:
            raise too_large(session, tool)
        return answer

    async def list_tools(self, server: str | None = None) -> dict[str, list[ToolInfo]]:
        """The tools of ``server`` (every server when None), listed afresh."""
        names = [server] if server is not None else self.servers
        listings = await asyncio.gather(*(self._tools(name, fresh=True) for name in names))
        return dict(zip(names, listings, strict=True))

    async def tool_info(self, tool: str, server: str | None = None) -> tuple[str, ToolInfo]:
        """The server offering ``tool`` (``server`` when named) and how it
        lists it (cached listings, listed afresh once when it lacks the tool)."""
        server = server or await self.server_for(tool)
        for fresh in (False, True):
            listed = await self._tools(server, fresh=fresh)
            found = next((info for info in listed if info.name == tool), None)
            if found is not None:
                return server, found
        raise NodeFailed(f"MCP server {server!r} offers no tool named {tool!r}")

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
                    f" name the server (a tool node's server:, a model node's '{owners[0]}/{tool}')"
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
            checking, slot.checking = slot.checking, None
            if checking is not None:
                checking.cancel()
                await asyncio.wait({checking})
            opening = slot.opening
            if opening is not None:
                opening.cancel()
                await asyncio.wait({opening})
            if slot.session is not None:
                self._close_later(slot.session)
                slot.session = None
        while self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    async def _session(self, server: str) -> McpSession:
        """The server's usable session, once its start (shared) is done."""
        slot = self._slot(server)
        if slot.checking is not None:
            await asyncio.wait({slot.checking})  # the verdict on the current session
        current = slot.session
        if current is not None and current.usable:
            return current
        if slot.opening is None:
            self._guard()
            slot.opening = asyncio.create_task(
                self._open(slot), name=f"mcp:{server} start", context=contextvars.Context()
            )
            slot.opening.add_done_callback(_retrieved)
        opening = slot.opening
        try:
            return await asyncio.shield(opening)
        except asyncio.CancelledError:
            if opening.done():
                raise
            # Our caller gave up; the start goes on for the next one. Say why
            # we were waiting (the runner quotes it in the node's timeout).
            raise asyncio.CancelledError(
                f"the MCP server {server!r} was still starting (it goes on starting,"
                f" for up to {self._open_timeout:g} s, for the next attempt)"
            ) from None

    async def _open(self, slot: _Slot) -> McpSession:
        """Start a session for ``slot`` in place of its unusable one."""
        try:
            current = slot.session
            if current is not None:
                current.move("retired")
                slot.session = None
                if current.inflight == 0:
                    self._close_later(current)
            self.spawns += 1
            session = McpSession(slot.config, self._cwd(slot.config), self._errlog)
            try:
                with boundary(slot.config.name, "opening a session"):
                    await session.open(self._open_timeout)
            except BaseException:
                self._close_later(session)
                raise
            if self._state is PoolState.CLOSED:  # closed while it opened
                self._close_later(session)
                self._guard()
            slot.session = session
            return session
        finally:
            slot.opening = None

    def _check(self, slot: _Slot, session: McpSession) -> None:
        """Have ``session``, which left a call unanswered, checked (one check at
        a time; the pool's task, so a caller that gave up does not end it)."""
        if slot.checking is not None or not session.usable or self._state is PoolState.CLOSED:
            return
        name = f"mcp:{slot.config.name} check"
        slot.checking = asyncio.create_task(
            self._verdict(slot, session), name=name, context=contextvars.Context()
        )
        slot.checking.add_done_callback(_retrieved)

    async def _verdict(self, slot: _Slot, session: McpSession) -> None:
        """Keep ``session`` if its server answers a ping; else replace it."""
        try:
            if await session.answers_ping(self._ping_timeout) or not session.usable:
                return  # a slow tool, not a dead server (or it was replaced meanwhile)
            log.warning(
                "mcp server %r: a call went unanswered, then a ping did too (%g s):"
                " the server is taken for wedged; its session is closed%s and the next"
                " call opens a new one",
                slot.config.name,
                self._ping_timeout,
                " (its process stopped)" if slot.config.command is not None else "",
            )
            session.move("retired")
            if slot.session is session:
                slot.session = None
            self._close_later(session, wedged=True)
        finally:
            slot.checking = None

    async def _tools(self, server: str, *, fresh: bool) -> list[ToolInfo]:
        session = await self._session(server)
        if session.tools is not None and not fresh:
            return session.tools
        from mcp_types import PaginatedRequestParams

        tools: list[ToolInfo] = []
        cursor: str | None = None
        deadline = session.config.timeout
        with boundary(server, "listing tools", session):
            for _ in range(_MAX_PAGES):
                params = PaginatedRequestParams(cursor=cursor) if cursor else None
                try:
                    async with asyncio.timeout(deadline):
                        page = await session.client.list_tools(params=params)
                except TimeoutError:
                    raise NodeFailed(
                        f"mcp server {server!r}: listing tools: no answer within {deadline:g} s"
                    ) from None
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

    def _close_later(self, session: McpSession, *, wedged: bool = False) -> None:
        if session.state == "closing":
            return
        closing = session.close(wedged=wedged)
        task = asyncio.create_task(closing, context=contextvars.Context())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)


@dataclass
class _Slot:
    """One configured server: its settings, its session, its start under way."""

    config: McpServerConfig
    session: McpSession | None = None
    opening: asyncio.Task[McpSession] | None = None
    #: The check of its session after a call went unanswered, under way.
    checking: asyncio.Task[None] | None = None


def _retrieved(task: asyncio.Task[Any]) -> None:
    """A start's failure is its waiters' to report; one nobody waited for
    (its callers gave up) is not logged as never retrieved."""
    if not task.cancelled():
        task.exception()


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

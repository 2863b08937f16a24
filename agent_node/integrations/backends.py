"""How many calls each model backend takes at once (``models.backends``).

Local servers answer one or a few requests at a time (Ollama: its
``OLLAMA_NUM_PARALLEL``), yet every model node and judge of a process may
call at once — parallel branches, three agents of one demo. A backend's
calls wait here for a slot instead of piling up at the server (or timing
out in its queue): a backend is a server by its base URL (Ollama's, an
OpenAI-compatible server's), or a provider by name (``openai``,
``anthropic`` …) for hosted ones. Ollama's limit, unless configured, is
``$OLLAMA_NUM_PARALLEL``, else 1; other backends have none unless
configured. The slots are this process's (one per event loop) — and, for a
backend configured ``shared: true``, also the store's
(:mod:`agent_node.store.slots`): every process of one store (worker
processes, replicas) together asks it no more than its limit at once.

A node that has to wait for a slot says so in its execution's log
(``node_queued``, then ``node_dequeued`` with the seconds it waited), so
``inspect`` shows it waiting, not running; it holds nothing meanwhile but
its lease, kept by the worker's heartbeat. Nothing is logged when a slot is
free at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator

from agent_node.config import ModelSettings
from agent_node.engine.context import node_context
from agent_node.store.slots import SharedSlots

__all__ = ["Backends"]

_OLLAMA_PREFIXES = ("ollama_chat/", "ollama/")


class Backends:
    """The slots of each backend, for ``settings`` (``ollama_base``: where
    Ollama models are asked)."""

    def __init__(self, settings: ModelSettings, ollama_base: str) -> None:
        self.settings = settings
        self.ollama_base = ollama_base.rstrip("/")
        self._limits: dict[str, int] = {}
        self._shared: set[str] = set()
        for limit in settings.backends:
            key = limit.url.rstrip("/") if limit.url else f"provider:{limit.provider}"
            self._limits[key] = limit.concurrency
            if limit.shared:
                self._shared.add(key)
        #: The store's slots, for backends shared by its processes (set by
        #: the composition once the store is known).
        self.shared: SharedSlots | None = None
        self._slots: dict[tuple[asyncio.AbstractEventLoop, str], asyncio.Semaphore] = {}

    def backend(self, model: str) -> str:
        """The backend ``model`` is asked at: a base URL, or ``provider:NAME``."""
        if model.startswith(_OLLAMA_PREFIXES):
            return self.ollama_base
        provider = model.split("/", 1)[0] if "/" in model else "openai"
        if provider == "openai" and self.settings.api_base:
            return self.settings.api_base.rstrip("/")
        return f"provider:{provider}"

    def limit(self, backend: str) -> int | None:
        """How many calls ``backend`` takes at once (None: no limit)."""
        if backend in self._limits:
            return self._limits[backend]
        if backend == self.ollama_base:
            try:
                return max(1, int(os.environ.get("OLLAMA_NUM_PARALLEL") or 1))
            except ValueError:
                return 1
        return None

    @contextlib.asynccontextmanager
    async def slot(self, model: str) -> AsyncIterator[None]:
        """Hold one of ``model``'s backend's slots while the block runs."""
        backend = self.backend(model)
        limit = self.limit(backend)
        if limit is None:
            yield
            return
        key = (asyncio.get_running_loop(), backend)
        slots = self._slots.get(key)
        if slots is None:
            slots = self._slots[key] = asyncio.Semaphore(limit)
        shared = self.shared if backend in self._shared else None
        queued = _Queued(backend, limit, shared is not None)
        if slots.locked():
            await queued.waiting()
        async with slots:
            if shared is None:
                await queued.served()
                yield
                return
            async with shared.hold(backend, limit, queued.waiting):
                await queued.served()
                yield


class _Queued:
    """Logs, once, that the running node waits for a slot, and when it got one."""

    def __init__(self, backend: str, limit: int, shared: bool) -> None:
        self._info = {"backend": backend, "limit": limit, "shared": shared}
        self._since: float | None = None

    async def waiting(self) -> None:
        if self._since is None:
            self._since = time.monotonic()
            await self._note("node_queued", self._info)

    async def served(self) -> None:
        if self._since is not None:
            waited = round(time.monotonic() - self._since, 3)
            await self._note("node_dequeued", {"waited": waited})

    @staticmethod
    async def _note(kind: str, data: dict[str, object]) -> None:
        ctx = node_context.get()
        if ctx is not None and ctx.note is not None:
            await ctx.note(kind, data)

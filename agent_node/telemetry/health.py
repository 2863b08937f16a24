"""Liveness and readiness: ``/healthz`` and ``/readyz``.

Both answer without authentication — a load balancer or a kubelet has no
client certificate — and reveal nothing but a status word (and, when the
store is newer than the node, which schema versions):

* ``/healthz``: 200 ``{"status": "ok"}`` while the process serves HTTP at all.
* ``/readyz``: 200 ``{"status": "ready"}`` when the node would do work sent
  to it now: it has started (its engine recovered what it owned and runs),
  it is not draining, and its store answers a primary-key read within a
  second; else 503 with ``starting``, ``draining`` or ``unavailable``. A
  store check is reused for half a second, so a flood of probes costs one
  read a half second. A node whose store a newer agent-node upgraded
  answers 503 ``outdated`` with the ``reason`` (from then on, draining or
  not: :mod:`agent_node.engine.schema_guard`); it is stopping.

The phases: *starting* from the moment the listener accepts until the
node's parts have started; *serving*; *draining* from the moment a stop is
asked (SIGTERM), for ``telemetry.drain_seconds`` before the listener closes,
so a probe sees it before connections are refused.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Literal, Protocol

from starlette.types import Receive, Scope, Send

from agent_node.errors import StoreOutdated

__all__ = ["PROBE_PATHS", "Health"]

log = logging.getLogger(__name__)

PROBE_PATHS = ("/healthz", "/readyz")
#: How long a store read may take before the node counts as not ready.
STORE_TIMEOUT = 1.0
#: How long one store check is reused.
CHECK_TTL = 0.5

Phase = Literal["starting", "serving", "draining"]


class _Readable(Protocol):
    async def get(self, execution_id: str) -> object: ...


class _Running(Protocol):
    @property
    def running(self) -> bool: ...

    #: Why the engine stopped on its own (a newer schema: StoreOutdated).
    crash: BaseException | None


class Health:
    """The node's phase, and the checks behind ``/readyz``."""

    def __init__(self, store: _Readable, engine: _Running) -> None:
        self.phase: Phase = "starting"
        self._store = store
        self._engine = engine
        self._checked_at = -CHECK_TTL
        self._store_ok = False
        self._checking: asyncio.Task[bool] | None = None

    @property
    def reason(self) -> str | None:
        """Why the node is outdated: a newer agent-node upgraded its store."""
        crash = self._engine.crash
        return str(crash) if isinstance(crash, StoreOutdated) else None

    def serving(self) -> None:
        self.phase = "serving"

    def draining(self) -> None:
        if self.phase != "draining":
            log.warning("draining: /readyz answers 503 from now on")
        self.phase = "draining"

    async def readiness(self) -> str:
        """``ready``, or why not: ``starting``, ``draining``, ``unavailable``
        or ``outdated`` (:attr:`reason` says why)."""
        if self.reason is not None:
            return "outdated"
        if self.phase != "serving":
            return self.phase
        if not self._engine.running or not await self._store_answers():
            return "unavailable"
        return "ready"

    async def _store_answers(self) -> bool:
        if time.monotonic() - self._checked_at < CHECK_TTL:
            return self._store_ok
        if self._checking is None:  # probes arriving together share one read
            self._checking = asyncio.create_task(self._check_store())
        checking = self._checking
        try:
            return await asyncio.shield(checking)
        finally:
            if self._checking is checking and checking.done():
                self._checking = None

    async def _check_store(self) -> bool:
        try:
            async with asyncio.timeout(STORE_TIMEOUT):
                await self._store.get("readyz-probe")
            ok = True
        except Exception as exc:  # any failure of the store is "not ready"
            log.warning("readiness: the store did not answer: %s", exc or type(exc).__name__)
            ok = False
        self._store_ok, self._checked_at = ok, time.monotonic()
        return ok

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer a probe (a GET or HEAD of one of :data:`PROBE_PATHS`)."""
        if scope["path"] == "/healthz":
            status, code = "ok", 200
        else:
            status = await self.readiness()
            code = 200 if status == "ready" else 503
        answer = {"status": status}
        if status == "outdated" and self.reason is not None:
            answer["reason"] = self.reason
        body = json.dumps(answer).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-store"),
        ]
        await send({"type": "http.response.start", "status": code, "headers": headers})
        if scope["method"] == "HEAD":
            body = b""
        await send({"type": "http.response.body", "body": body})

"""Waiting for an execution's status to settle: :meth:`Engine.wait`.

A waiter reads the execution's row when it may have changed — told by the
store's ``status`` notices, or every ``poll_interval`` as a safety net —
until the execution is terminal or parked on an external event. A waiter set
up before the execution is created (:meth:`StatusWatch.watch`) skips its
first read: nothing can have changed unseen. An execution that a node of
this engine ended hands its waiter the record it committed
(:meth:`StatusWatch.ended`) instead of the read: that read was ~4 % of the
event loop's time when 200 short workflows run at once. Apart from the engine because
it is the engine's one reader of rows for callers, with state of its own
(the waiters, and the full-store errors handed to them).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from typing import Literal, Protocol

from agent_node.errors import StoreFull, UnknownExecution, UsageError
from agent_node.store.base import Store
from agent_node.store.records import TERMINAL, ExecutionRecord

from . import plans

__all__ = ["EngineState", "StatusWatch", "wait_event"]


class EngineState(enum.Enum):
    NEW = "new"
    RUNNING = "running"
    STOPPED = "stopped"
    CRASHED = "crashed"
    #: Stopped: a newer agent-node upgraded the store (:mod:`.schema_guard`).
    OUTDATED = "outdated"


class _Watched(Protocol):
    """What a waiter asks of its engine."""

    state: EngineState
    crash: BaseException | None


class StatusWatch:
    def __init__(self, store: Store, engine: _Watched, poll_interval: float) -> None:
        self.store = store
        self.engine = engine
        self.poll_interval = poll_interval
        self.waiters: dict[str, asyncio.Event] = {}
        #: The terminal record a waited-for execution's last commit wrote.
        self._ended: dict[str, ExecutionRecord] = {}
        #: A full store that failed a waited-for execution's commit, for its waiter.
        self._full: dict[str, StoreFull] = {}
        #: A full store that fails the engine's claims: no execution that
        #: needs a claim to go on can, until it has room again.
        self.blocked: StoreFull | None = None

    def watch(self, execution_id: str) -> None:
        """Catch status changes of ``execution_id`` from now on, for a
        :meth:`wait` that follows (it then skips its first read)."""
        self.waiters.setdefault(execution_id, asyncio.Event())

    def release(self, execution_id: str) -> None:
        """Undo :meth:`watch` when no :meth:`wait` will follow."""
        self.waiters.pop(execution_id, None)
        self._ended.pop(execution_id, None)

    def ended(self, record: ExecutionRecord) -> None:
        """A commit of this process wrote ``record``: when it ended its
        execution, the waiter (if any) takes it instead of reading the row.
        (The store's ``status`` notice still wakes the waiter: on SQLite it
        comes after the committer's task has run, so the record is here by
        then; where it comes first, the waiter reads the row as before.)
        Not with a state kept outside the row (a large one): the row's read
        puts it together."""
        if record.status in TERMINAL and record.state and record.id in self.waiters:
            self._ended[record.id] = record.copy()

    def changed(self, execution_id: str) -> None:
        """The execution's status may have changed: its waiter reads it."""
        waiter = self.waiters.get(execution_id)
        if waiter is not None:
            waiter.set()

    def full(self, execution_id: str, error: StoreFull) -> None:
        """A commit of the execution failed on a full store: its waiter (if
        any) raises ``error`` at once, as retrying cannot help."""
        waiter = self.waiters.get(execution_id)
        if waiter is not None:
            self._full[execution_id] = error
            waiter.set()

    def claims_failed(self, error: StoreFull | None) -> None:
        """The engine's claims fail on a full store (``error``), or went
        through again (None). Waiters look again when it starts: one whose
        execution is still running (not parked, not over) raises it."""
        began = self.blocked is None and error is not None
        self.blocked = error
        if began:
            self.wake_all()

    def wake_all(self) -> None:
        """Every waiter looks again (the engine stopped, or its claims fail)."""
        for waiter in self.waiters.values():
            waiter.set()

    async def wait(
        self, execution_id: str, until: Literal["parked", "terminal"]
    ) -> ExecutionRecord:
        waiter = self.waiters.get(execution_id)
        # Watched since before it was created: nothing to read until it changes.
        read_now = waiter is None or waiter.is_set()
        if waiter is None:
            waiter = self.waiters[execution_id] = asyncio.Event()
        engine = self.engine
        try:
            while True:
                if not read_now:
                    if engine.state is not EngineState.RUNNING:
                        raise engine.crash or UsageError(f"the engine is {engine.state.value}")
                    await wait_event(waiter, self.poll_interval)
                read_now = False
                waiter.clear()
                if engine.crash is not None:
                    raise engine.crash
                if (full := self._full.pop(execution_id, None)) is not None:
                    raise full  # retrying cannot help until space is freed: say so now
                record = self._ended.pop(execution_id, None) or await self.store.get(execution_id)
                if record is None:
                    raise UnknownExecution(execution_id)
                if record.status in TERMINAL:
                    return record
                waiting = record.status == "waiting"
                if waiting and until == "parked" and await self._waits_for_event(execution_id):
                    return record
                if self.blocked is not None and not (
                    waiting and await self._waits_for_event(execution_id)
                ):
                    raise self.blocked  # it needs a claim (a node, a timer): none goes through
        finally:
            self.waiters.pop(execution_id, None)
            self._full.pop(execution_id, None)
            self._ended.pop(execution_id, None)

    async def _waits_for_event(self, execution_id: str) -> bool:
        return any(w.kind in plans.EXTERNAL_KINDS for w in await self.store.waits(execution_id))


async def wait_event(event: asyncio.Event, timeout: float) -> None:
    """Wait for ``event`` at most ``timeout`` seconds. (Not ``asyncio.wait_for``:
    on Python 3.11 it swallows a cancellation that races with the event.)"""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            await event.wait()

"""The peers' tasks the watchdog follows over their streams, for their state.

A delegation to a peer that streams but does not push is followed
(``SubscribeToTask``, at most ``max_follow`` at once): each task or status
update it streams informs the row, its text goes to the
:class:`~.chunk_relay.ChunkRelay`, and polls become a slow safety net. A
stream that says the task is over is checked by a read of the whole task
(a peer may stream before its store is written); one that ends, or is
refused, before the task is over gets a poll at once, and else the row is
made due. A task that cannot be followed is not tried again; a stream
that fails after :data:`~.calls.STREAM_SILENCE` or more (silent that long:
three of the 15 s pings of our servers and a2a-sdk's; the JS SDK sends
none, nor does gRPC — every binding's stream has the deadline) is closed,
polled at once and followed again when its row comes due.

A follow ends as soon as its delegation settles, however it did (a push, a
poll, a cancel, its timeout): the store's notices of the executions followed
are looked at, and a follow whose row is gone, being canceled, or waiting on
another task is closed (before: a stream outlived its delegation for as long
as the peer kept it open, holding a descriptor and one of the ``max_follow``
places). Apart from :mod:`.watchdog` because it is a pool of tasks with state
of its own (the follows, the tasks not to follow); the watchdog starts them
and polls the rest.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from typing import Any

from agent_node.a2a.peers.calls import STREAM_SILENCE
from agent_node.a2a.peers.chunk_relay import ChunkRelay
from agent_node.a2a.peers.delegator import PeerDelegator
from agent_node.a2a.peers.news import inform
from agent_node.a2a.peers.peer_errors import PeerError
from agent_node.nodes.delegation import TERMINAL_STATES, task_state
from agent_node.runtime import Runtime
from agent_node.store.records import DelegationRecord

#: The watchdog's logger: these lines were its own before the move.
log = logging.getLogger("agent_node.a2a.peers.watchdog")

__all__ = ["PeerStreams"]

#: Pauses (seconds) before each read of a task its stream said is over.
STREAM_READ_PAUSES = (0.0, 0.05, 0.1, 0.2, 0.4, 0.8)
#: The notices after which a followed delegation may have settled.
_SETTLING = frozenset({"work", "status", "cancel", "delegation"})


class PeerStreams:
    """Peer tasks followed over their streams, by delegation key."""

    def __init__(
        self,
        runtime: Runtime,
        delegator: PeerDelegator,
        chunks: ChunkRelay,
        *,
        max_follow: int,
        wake: asyncio.Event,
    ) -> None:
        self.runtime = runtime
        self.delegator = delegator
        self.chunks = chunks
        self.max_follow = max_follow
        #: The watchdog's: set when a row is due again.
        self._wake = wake
        #: The follows, by delegation key.
        self.following: dict[str, asyncio.Task[None]] = {}
        self._unfollowable: set[str] = set()
        #: The rows followed, by key, and their keys by execution.
        self._rows: dict[str, DelegationRecord] = {}
        self._by_execution: dict[str, set[str]] = {}
        #: Follows whose delegation settled: to end, not to poll.
        self._settled: set[str] = set()
        #: Follows waiting on their stream's next event (safe to cancel).
        self._reading: set[str] = set()
        #: Looks at followed rows after a notice, by execution.
        self._looks: dict[str, asyncio.Task[None]] = {}
        self._unsubscribe: Callable[[], None] | None = None

    def cancel(self) -> list[asyncio.Task[None]]:
        """Stop every follow; their tasks, for the caller to await."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        pending = [*self.following.values(), *self._looks.values()]
        self.following, self._looks = {}, {}
        for job in pending:
            job.cancel()
        return pending

    async def start(self, row: DelegationRecord) -> bool:
        """Start following ``row``'s task over SSE when its peer streams but
        does not push (and there is room); whether it is followed now."""
        if row.key in self._unfollowable or len(self.following) >= self.max_follow:
            return False
        if not self.delegator.directory.knows(row.peer):
            return False
        try:
            card = await self.delegator.directory.card(row.peer)
        except Exception:
            return False
        capabilities = card.card.get("capabilities") or {}
        if capabilities.get("pushNotifications") or not capabilities.get("streaming"):
            return False
        if self._unsubscribe is None:
            self._unsubscribe = self.runtime.store.subscribe(self._on_notice)
        self._rows[row.key] = row
        self._by_execution.setdefault(row.execution_id, set()).add(row.key)
        self.following[row.key] = asyncio.create_task(self._follow(row), name=f"follow {row.key}")
        return True

    def _on_notice(self, kind: str, execution_id: str) -> None:
        """A followed execution changed: look whether its delegations settled."""
        if kind not in _SETTLING:
            return
        ids = list(self._by_execution) if execution_id == "*" else [execution_id]
        for one in ids:
            if one in self._by_execution and one not in self._looks:
                self._looks[one] = asyncio.create_task(self._look(one), name=f"settled? {one}")

    async def _look(self, execution_id: str) -> None:
        """End the follows of ``execution_id`` whose delegation settled: its
        row gone (answered), being canceled (timed out, canceled), or
        waiting on another task of the peer."""
        try:
            for key in list(self._by_execution.get(execution_id, ())):
                row = self._rows.get(key)
                if row is None:
                    continue
                try:
                    now = await self.runtime.store.delegation(execution_id, row.node, row.visit)
                except Exception:
                    return  # the store is away: the next notice looks again
                if _settled(row, now):
                    self._stop(key)
        finally:
            self._looks.pop(execution_id, None)

    def _stop(self, key: str) -> None:
        """End ``key``'s follow: its stream is closed now if it is being read,
        else before the next read."""
        job = self.following.get(key)
        if job is None:
            return
        self._settled.add(key)
        if key in self._reading:
            job.cancel()

    async def _next(self, key: str, stream: AsyncIterator[Mapping[str, Any]]) -> Any:
        """The stream's next event; None when it ended or its delegation settled."""
        if key in self._settled:
            return None
        self._reading.add(key)
        try:
            return await anext(stream, None)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if key not in self._settled or task is None:
                raise
            task.uncancel()  # our own cancel, by _stop: the follow ends quietly
            return None
        finally:
            self._reading.discard(key)

    async def _follow(self, row: DelegationRecord) -> None:
        """Inform the row of each event of the peer's stream; poll at once
        when the stream ends before the task is over."""
        over = False
        began = time.monotonic()
        stream = self.delegator.follow(row)
        try:
            while (event := await self._next(row.key, stream)) is not None:
                self.chunks.relay(row, event)
                task = _task_of_event(row, event)
                if task is None:
                    continue
                if task_state(task) in TERMINAL_STATES:
                    whole = await self._whole(row)
                    if whole is None:
                        break  # its reads never caught up: poll, below
                    task, over = whole, True
                await inform(self.runtime, row, {"kind": "task", "task": task, "via": "stream"})
                if over:
                    break
        except PeerError as exc:
            if exc.transient and time.monotonic() - began >= STREAM_SILENCE:
                # Silent that long, or cut after a while (a peer that does
                # not ping, a restart): its row, due now, follows it again.
                log.info("delegation %s: the stream of peer %r ended: %s", row.key, row.peer, exc)
            else:
                log.info("delegation %s: cannot follow peer %r: %s", row.key, row.peer, exc)
                self._unfollowable.add(row.key)
                if len(self._unfollowable) > 10_000:
                    self._unfollowable.clear()
        finally:
            if isinstance(stream, AsyncGenerator):  # its connection closes now
                await stream.aclose()
            over = over or row.key in self._settled
            self._forget(row)
            self.chunks.ended(row)
        if not over:
            over = await self._over_by_poll(row)
        if not over:
            current = await self.runtime.store.delegation(row.execution_id, row.node, row.visit)
            if current is not None:
                await self.runtime.store.reschedule_delegation(current, time.time())
                self._wake.set()

    def _forget(self, row: DelegationRecord) -> None:
        self.following.pop(row.key, None)
        self._rows.pop(row.key, None)
        self._settled.discard(row.key)
        keys = self._by_execution.get(row.execution_id)
        if keys is not None:
            keys.discard(row.key)
            if not keys:
                del self._by_execution[row.execution_id]

    async def _whole(self, row: DelegationRecord) -> dict[str, Any] | None:
        """The peer's task, whole (with artifacts), once its stream said it is
        over. A peer may stream before its store is written (or read from a
        lagging replica): a read that still shows the task going on is tried
        again a few times, briefly. None when none shows it over."""
        for pause in STREAM_READ_PAUSES:
            await asyncio.sleep(pause)
            task = dict(await self.delegator.get_task(row))
            if task_state(task) in TERMINAL_STATES:
                return task
        return None

    async def _over_by_poll(self, row: DelegationRecord) -> bool:
        """A stream refused or ended before the peer's task did: poll once at
        once, as a peer refuses to stream a task already over (a fast one
        settles before we subscribe). Whether that poll found it over (and
        informed the row); anything else is left to the row's next claim."""
        try:
            task = await self.delegator.get_task(row)
        except PeerError:
            return False
        if task_state(task) not in TERMINAL_STATES:
            return False
        await inform(self.runtime, row, {"kind": "task", "task": dict(task), "via": "poll"})
        return True


def _settled(row: DelegationRecord, now: DelegationRecord | None) -> bool:
    """Whether the delegation ``row`` was followed for, ``now`` as stored,
    needs its stream no more: answered (gone), being canceled, or waiting on
    another task of the peer."""
    return now is None or now.state == "canceling" or now.remote_task_id != row.remote_task_id


def _task_of_event(row: DelegationRecord, event: Mapping[str, Any]) -> dict[str, Any] | None:
    """The peer's task as one stream event shows it (a task, or a status
    update of it); None for events that say nothing of its state."""
    task = event.get("task")
    if isinstance(task, Mapping):
        return dict(task)
    update = event.get("statusUpdate")
    if isinstance(update, Mapping) and isinstance(update.get("status"), Mapping):
        return {"id": update.get("taskId") or row.remote_task_id, "status": update["status"]}
    return None

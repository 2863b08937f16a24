"""The peers' tasks the watchdog follows over their streams, for their state.

A delegation to a peer that streams but does not push is followed
(``SubscribeToTask``, at most ``max_follow`` at once): each task or status
update it streams informs the row, its text goes to the
:class:`~.chunk_relay.ChunkRelay`, and polls become a slow safety net. A
stream that says the task is over is checked by a read of the whole task
(a peer may stream before its store is written); one that ends, or is
refused, before the task is over gets a poll at once, and else the row is
made due. A task that cannot be followed is not tried again. Apart from
:mod:`.watchdog` because it is a pool of tasks with state of its own (the
follows, the tasks not to follow); the watchdog starts them and polls the rest.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

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

    def cancel(self) -> list[asyncio.Task[None]]:
        """Stop every follow; their tasks, for the caller to await."""
        pending = list(self.following.values())
        self.following = {}
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
        self.following[row.key] = asyncio.create_task(self._follow(row), name=f"follow {row.key}")
        return True

    async def _follow(self, row: DelegationRecord) -> None:
        """Inform the row of each event of the peer's stream; poll at once
        when the stream ends before the task is over."""
        over = False
        try:
            async for event in self.delegator.follow(row):
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
            log.info("delegation %s: cannot follow peer %r: %s", row.key, row.peer, exc)
            self._unfollowable.add(row.key)
            if len(self._unfollowable) > 10_000:
                self._unfollowable.clear()
        finally:
            self.following.pop(row.key, None)
            self.chunks.ended(row)
        if not over:
            over = await self._over_by_poll(row)
        if not over:
            current = await self.runtime.store.delegation(row.execution_id, row.node, row.visit)
            if current is not None:
                await self.runtime.store.reschedule_delegation(current, time.time())
                self._wake.set()

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

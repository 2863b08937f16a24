"""The delegation watchdog: what happens to delegations with no news.

Each delegation row is claimed when due (``next_poll_at``; on PostgreSQL two
watchdogs never claim one at once) and looked at:

* its wait is gone (the execution was canceled, or the wait timed out): the
  peer's task is canceled, then the row dropped;
* the visit waits for our caller's answer to the peer's question: nothing
  to do until it comes;
* an answer is kept on the row: it is relayed to the peer's task;
* the peer streams but does not push: its task is followed over SSE
  (``SubscribeToTask``), polls being a slow safety net;
* else the peer is asked (``GetTask``), after ``poll`` seconds and then with
  a doubling backoff up to ``max_poll``; a settled task resumes the wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import httpx

from agent_node.a2a.delegator import DelegationFailed, PeerDelegator, delegation_key, task_state
from agent_node.a2a.discovery import PeerUnavailable
from agent_node.a2a.push_receiver import resolver
from agent_node.errors import UsageError
from agent_node.nodes.delegate import SETTLED
from agent_node.runtime import Runtime
from agent_node.store.records import DelegationRecord

log = logging.getLogger(__name__)

__all__ = ["Watchdog"]

#: Polls of a peer that does not answer before its task is left uncanceled.
ABANDON_TRIES = 10
#: Delegations remembered as not followable over SSE, at most.
MAX_REMEMBERED = 10_000


class Watchdog:
    """Polls delegations that had no news (see the module doc)."""

    def __init__(
        self,
        runtime: Runtime,
        delegator: PeerDelegator,
        *,
        interval: float = 1.0,
        max_poll: float = 60.0,
        concurrency: int = 16,
        max_follow: int = 100,
    ) -> None:
        self.runtime = runtime
        self.delegator = delegator
        self.interval = interval
        self.max_poll = max_poll
        self.concurrency = concurrency
        self._resolve = resolver(runtime)
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._canceled: set[str] = set()
        self._unsubscribe: Callable[[], None] | None = None
        #: Delegations followed over SSE (peers that stream but do not push).
        self._following: dict[str, asyncio.Task[None]] = {}
        self._unfollowable: set[str] = set()
        self.max_follow = max_follow

    async def start(self) -> None:
        if self._task is None:
            self._unsubscribe = self.runtime.store.subscribe(self._on_notice)
            self._task = asyncio.create_task(self._run(), name="delegation-watchdog")

    def _on_notice(self, kind: str, execution_id: str) -> None:
        if kind == "cancel":  # its delegations' peer tasks are to be canceled now
            self._canceled.add(execution_id)
            self._wake.set()
        elif kind == "delegation":  # an answer to relay, due now
            self._wake.set()

    async def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        following, self._following = list(self._following.values()), {}
        for stream in following:
            stream.cancel()
        await asyncio.gather(*following, return_exceptions=True)

    async def _due_now(self, execution_id: str) -> None:
        """Make ``execution_id``'s delegations due (it was canceled)."""
        for record in await self.runtime.store.delegations(execution_id):
            record.next_poll_at = 0.0
            await self.runtime.store.reschedule_delegation(record)

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.check_due()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("delegation watchdog: cannot read the store; trying again")

    async def check_due(self) -> int:
        """Poll every delegation due now; returns how many were looked at."""
        while self._canceled:
            await self._due_now(self._canceled.pop())
        now = time.time()
        store = self.runtime.store
        due = await store.claim_delegations(
            now=now, lease_until=now + self.max_poll, limit=self.concurrency
        )
        await asyncio.gather(*(self._check(record) for record in due))
        return len(due)

    async def _check(self, record: DelegationRecord) -> None:
        store = self.runtime.store
        waits = await store.waits(record.execution_id)
        kind = next(
            (w.kind for w in waits if (w.node, w.visit) == (record.node, record.visit)), None
        )
        waiting = kind == "delegation"
        if kind == "input":  # the peer's question is our caller's to answer: nothing to poll
            record.next_poll_at = time.time() + self.max_poll
            await store.reschedule_delegation(record)
            return
        try:
            if not waiting:
                await self._abandon(record)
                return
            if delegation_key(record) in self._following or await self._follows(record):
                return
            if record.relay is not None:
                await self.delegator.relay(record)
                # Not polled at once: the peer may not have taken the answer in yet.
                record.relay, record.polls = None, 0
                record.next_poll_at = time.time() + 1.0
                await store.reschedule_delegation(record)
                return
            task = await self.delegator.get_task(record)
            if task_state(task) in SETTLED and await self._resolve(record, task, "poll"):
                return
        except (DelegationFailed, PeerUnavailable) as exc:
            log.info(
                "delegation %s: peer %r: %s; will retry", delegation_key(record), record.peer, exc
            )
            if not waiting and record.polls >= ABANDON_TRIES:
                log.warning(
                    "delegation %s: gave up canceling the peer's task", delegation_key(record)
                )
                await store.delete_delegation(record.execution_id, record.node, record.visit)
                return
        record.polls += 1
        delay = min(self.max_poll, 2.0 ** min(record.polls, 16))
        record.next_poll_at = time.time() + delay
        await store.reschedule_delegation(record)

    async def _follows(self, record: DelegationRecord) -> bool:
        """Start following ``record``'s task over SSE when its peer streams but
        does not push (and there is room); whether it is followed now."""
        key = delegation_key(record)
        if record.relay is not None or key in self._unfollowable:
            return False
        if len(self._following) >= self.max_follow:
            return False
        try:
            card = await self.delegator.directory.card(record.peer)
        except (PeerUnavailable, UsageError):
            return False
        capabilities = card.card.get("capabilities") or {}
        if capabilities.get("pushNotifications") or not capabilities.get("streaming"):
            return False
        record.next_poll_at = time.time() + self.max_poll  # polls: a safety net only
        await self.runtime.store.reschedule_delegation(record)
        self._following[key] = asyncio.create_task(self._follow(record), name=f"follow {key}")
        return True

    async def _follow(self, record: DelegationRecord) -> None:
        resumed = False
        try:
            task = await self.delegator.follow(record)
            resumed = task is not None and await self._resolve(record, task, "stream")
        except (DelegationFailed, PeerUnavailable, httpx.HTTPError) as exc:
            log.info(
                "delegation %s: cannot follow peer %r: %s", delegation_key(record), record.peer, exc
            )
            self._unfollowable.add(delegation_key(record))  # polled from now on
        finally:
            self._following.pop(delegation_key(record), None)
        if not resumed:  # poll now (a stream that could not start: the task may be done)
            record.next_poll_at = time.time()
            await self.runtime.store.reschedule_delegation(record)
            self._wake.set()

    async def _abandon(self, record: DelegationRecord) -> None:
        """The wait is gone (canceled, timed out): cancel the peer's task, drop the row.
        A peer that cannot be reached is tried again (raises); one that refuses
        (the task ended already, say) is done with."""
        try:
            await self.delegator.cancel_task(record)
        except DelegationFailed as exc:
            if not exc.refused:
                raise
        await self.runtime.store.delete_delegation(record.execution_id, record.node, record.visit)
        log.info(
            "delegation %s: canceled the peer's task %s",
            delegation_key(record),
            record.remote_task_id,
        )

"""The delegation watchdog: it drives every delegation row that is due.

Rows are claimed when due (``next_poll_at``; on PostgreSQL two watchdogs
never claim one at once), at most ``concurrency`` at a time, in the name of
the engine's lease owner (a node restarted after a crash takes up at once
the rows its dead process had claimed, as it does its work), and taken up by
their state (:class:`~agent_node.store.records.DelegationRecord`):

* ``sending``: the request is sent. The peer's answer is news for the row;
  a refusal for good fails the visit; a peer that cannot be reached, times
  out or is busy leaves the row in ``sending``, due again after a capped,
  jittered exponential backoff (``Retry-After`` honoured) — for as long as
  the delegate node's ``timeout`` allows, holding nothing but the row;
* ``sent``: the peer's task is polled (``GetTask``), after ``poll`` seconds
  and then with a doubling backoff up to ``max_poll`` — or, when the peer
  streams but does not push, followed over SSE (``SubscribeToTask``), polls
  being a slow safety net;
* ``answered`` with an answer kept: it is relayed to the peer's task;
* ``asked``: our caller has the question; a slow poll notices a peer that
  settled meanwhile;
* ``canceling``: the peer's task is canceled, then the row is dropped. A
  task whose id a lost send never told is looked up by the ``contextId`` our
  message named (``ListTasks``), never by sending again (that would create
  the work at a peer the send never reached); none found: nothing to cancel.
  A peer where it cannot be looked up so is sent nothing.

All news goes through :func:`.news.inform`, one transaction that decides from the
row as it is then (:mod:`agent_node.nodes.delegation`); the watchdog itself
only writes scheduling columns, conditionally on the row's state and turn.

A peer holds at most its share of the slots (a quarter until it answers,
three quarters then), and a peer that does not answer (refused, reset,
timed out, no card) is down until it does: rows of it that come due
meanwhile are put back without a call, so a thousand parked delegations
cost one probe a second, not a thousand connection attempts
(:mod:`.peer_health`). The first call that succeeds makes all of its
backed-off rows due at once, cancels included. A cancel is tried for
:data:`CANCEL_PERIOD`, backing off to a minute, then given up; a cancel the
peer refuses, or a task that cannot be found so, is given up at once. A
give-up is logged, and said in the execution's log with what was tried
(:mod:`.cancel_given_up`): the peer's task may still be running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from typing import Any

from agent_node.a2a.peers.cancel_given_up import give_up_cancel
from agent_node.a2a.peers.chunk_relay import ChunkRelay
from agent_node.a2a.peers.delegator import PeerDelegator
from agent_node.a2a.peers.news import inform
from agent_node.a2a.peers.peer_errors import INTERNAL_ERROR, PeerError
from agent_node.a2a.peers.peer_health import PeerHealth
from agent_node.a2a.peers.peer_streams import PeerStreams
from agent_node.engine import faults
from agent_node.failures import Failures
from agent_node.nodes.delegation import ASKED_POLL, matters
from agent_node.runtime import Runtime
from agent_node.store.records import DelegationRecord

log = logging.getLogger(__name__)

__all__ = ["Watchdog"]

#: Seconds of tries at canceling a peer's task that cannot be reached before
#: giving up (README: about ten minutes), backing off to a minute.
CANCEL_PERIOD = 600.0
CANCEL_MAX_BACKOFF = 60.0
#: Sends in a row the peer took and failed on (-32603) before the delegation
#: fails: each may have run the work at a peer that does not deduplicate.
SEND_FAILURES = 4


class Watchdog:
    """Drives delegation rows (see the module doc)."""

    def __init__(
        self,
        runtime: Runtime,
        delegator: PeerDelegator,
        *,
        interval: float = 1.0,
        max_poll: float = 60.0,
        max_backoff: float = 30.0,
        concurrency: int = 32,
        max_follow: int = 100,
    ) -> None:
        self.runtime = runtime
        self.delegator = delegator
        self.interval = interval
        self.max_poll = max_poll
        self.max_backoff = max_backoff
        self.concurrency = concurrency
        self.max_follow = max_follow
        #: How long a claimed row is ours: past any backoff (a wake-up of the
        #: backed-off rows of a peer that answers again must not hand out a
        #: row being worked on), and past any call's timeouts.
        self._lease = max(2 * max_poll, 4 * max_backoff)
        #: Claims are the engine's leases: a node that restarts after a crash
        #: frees at once the rows its dead process held (``Engine.recover``).
        self._owner = str(runtime.engine.owner)
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._unsubscribe: Any = None
        self._active: set[asyncio.Task[None]] = set()
        #: Each peer's share of the slots, and whether it is down.
        self.health = PeerHealth(concurrency)
        #: Streaming peers' text, to whoever watches the delegating execution.
        self.chunks = ChunkRelay(runtime, delegator, max_follow=max_follow)
        #: Peer tasks followed over their streams for their state.
        self.streams = PeerStreams(
            runtime, delegator, self.chunks, max_follow=max_follow, wake=self._wake
        )

    async def start(self) -> None:
        if self._task is None:
            self._unsubscribe = self.runtime.store.subscribe(self._on_notice)
            self.chunks.start()
            self._task = asyncio.create_task(self._run(), name="delegation-watchdog")

    def _on_notice(self, kind: str, _execution_id: str) -> None:
        if kind in ("delegation", "cancel"):  # a row is due now
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
        active = [*self._active]
        for job in active:
            job.cancel()
        await asyncio.gather(*active, *self.streams.cancel(), return_exceptions=True)
        await self.chunks.close()

    async def _run(self) -> None:
        failures = Failures(log, "delegation watchdog", first=self.interval)
        while True:
            pause = None
            try:
                await self.check_due()
                failures.worked()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                pause = failures.failed(exc)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(pause or await self._pause()):
                    await self._wake.wait()
            self._wake.clear()

    async def _pause(self) -> float:
        """How long to sleep unless woken: until a row's first poll is due (a
        delegate node's ``poll`` may be shorter than the tick), at most
        ``interval``. Rows made due *now* wake the loop by a store notice.
        Backed-off and repeated polls keep to the tick, so that a thousand
        rows backed off with jitter are claimed in batches, not one wake-up
        each (that cost 15 % of a core with 2,000 parked)."""
        if self._wake.is_set() or len(self._active) >= self.concurrency:
            return 0.0 if self._wake.is_set() else self.interval
        try:
            due = await self.runtime.store.next_delegation_at()
        except Exception:
            return self.interval
        if due is None:
            return self.interval
        return min(self.interval, max(0.005, due - time.time()))

    async def check_due(self) -> int:
        """Take up every row due now, as far as free slots allow; how many."""
        taken = 0
        while (free := self.concurrency - len(self._active)) > 0:
            now = time.time()
            due = await self.runtime.store.claim_delegations(
                now=now, lease_until=now + self._lease, limit=free, owner=self._owner
            )
            for row in due:
                job = asyncio.create_task(self._take(row), name=f"delegation {row.key}")
                self._active.add(job)
                job.add_done_callback(self._done)
            taken += len(due)
            if len(due) < free:
                break
        return taken

    async def idle(self) -> None:
        """Wait until no row is being taken up (rows due meanwhile included)."""
        while self._active:
            await asyncio.gather(*self._active, return_exceptions=True)

    def _done(self, job: asyncio.Task[None]) -> None:
        self._active.discard(job)
        self._wake.set()  # a slot is free: rows may be waiting for one

    async def _take(self, row: DelegationRecord) -> None:
        if not self.health.take(row.peer):
            # The peer holds its share of the slots (its calls hang?): this
            # row waits its turn, the others' rows go on.
            await self._reschedule(row, time.time() + self.interval, row.last_error)
            return
        try:
            await self._visit(row)
        finally:
            self.health.give_back(row.peer)

    async def _visit(self, row: DelegationRecord) -> None:
        try:
            await faults.reached("watchdog_claimed", row)
            if (why := self.health.down_why(row.peer)) is not None:
                # Put back below, no call made; a cancel's period runs on.
                raise PeerError(why, transient=True)
            if row.state == "canceling":
                await self._cancel(row)
            elif row.state == "sending":
                await self._send(row)
            elif row.state == "answered" and row.relay is not None:
                await self._relay(row)
            else:
                await self._look(row)
        except PeerError as exc:
            if row.state == "canceling" and (not exc.transient or _cancel_spent(row.polls)):
                await give_up_cancel(self.runtime.store, row, exc)
                return
            if exc.down and row.peer:
                self.health.failed(row.peer, str(exc))
            await self._later(row, exc)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("delegation %s: unexpected failure; will retry", row.key)
            await self._later(row, PeerError(type(exc).__name__, transient=True))

    async def _send(self, row: DelegationRecord) -> None:
        receipt = await self.delegator.send(row)
        faults.hit("after_send", row.node)
        await faults.reached("watchdog_sent", row)
        await self._alive(receipt.peer)
        news = {
            "kind": "accepted",
            "task": dict(receipt.task),
            "peer": receipt.peer,
            "endpoint": receipt.endpoint,
            "version": receipt.version,
            "identity": receipt.identity,
            "follow": receipt.follow,
            "auth": receipt.auth,
        }
        if await inform(self.runtime, row, news) and row.key not in self.streams.following:
            self.chunks.accepted(row)

    async def _relay(self, row: DelegationRecord) -> None:
        await self.delegator.relay(row)
        faults.hit("after_relay", row.node)
        await faults.reached("watchdog_relayed", row)
        await inform(self.runtime, row, {"kind": "relayed", "turn": row.turn})

    async def _look(self, row: DelegationRecord) -> None:
        """Poll the peer's task (or start following it over SSE: then polls,
        every ``max_poll``, are a safety net for a stream gone silent)."""
        following = row.key in self.streams.following
        if not following and await self.streams.start(row):
            await self._reschedule(row, time.time() + self.max_poll)
            return
        task = await self.delegator.get_task(row)
        await self._alive(row.peer)
        await faults.reached("watchdog_polled", row)
        if matters(row, task):
            await inform(self.runtime, row, {"kind": "task", "task": dict(task), "via": "poll"})
        if row.state == "asked":
            delay = ASKED_POLL
        elif following:
            delay = self.max_poll
        else:
            delay = min(self.max_poll, 2.0 ** min(row.polls, 16))
        await self._reschedule(row, time.time() + delay)

    async def _cancel(self, row: DelegationRecord) -> None:
        if not row.remote_task_id:
            # A send may have reached the peer before we lost its answer: look
            # its task up by our contextId. Never send again to learn it: a
            # send creates the work at a peer that never had it (a walk saw a
            # peer run 30 delegations that had timed out, sent by their cancel).
            task = await self.delegator.find_task(row)
            await self._alive(row.peer)
            if task is None:
                log.info("delegation %s: the peer has no task of it; nothing to cancel", row.key)
                await self.runtime.store.drop_delegation(row)
                return
            row.remote_task_id = str(task["id"])
        await self.delegator.cancel_task(row)
        await self._alive(row.peer)
        log.info("delegation %s: canceled the peer's task %s", row.key, row.remote_task_id)
        await self.runtime.store.drop_delegation(row)

    async def _later(self, row: DelegationRecord, exc: PeerError) -> None:
        """Try ``row`` again after a backoff (a transient failure), or fail
        its visit (a refusal for good)."""
        if not exc.transient:  # the peer refused the send, or lost its task
            log.info("delegation %s: %s", row.key, exc)
            await inform(self.runtime, row, {"kind": "failed", "error": str(exc)})
            return
        if row.state == "sending" and exc.code == INTERNAL_ERROR and row.polls >= SEND_FAILURES:
            # The peer took the message and failed on it, time after time: a
            # peer that does not deduplicate sends (a2a-sdk does not) ran the
            # work each time (found by an integrator's walk: 24 tasks at the
            # peer for one delegation in its 10-minute timeout). Not again.
            error = f"{exc} ({row.polls} times in a row; not sent again)"
            log.warning("delegation %s: %s", row.key, error)
            await inform(self.runtime, row, {"kind": "failed", "error": error})
            return
        cap = CANCEL_MAX_BACKOFF if row.state == "canceling" else self.max_backoff
        delay = min(cap, 2.0 ** max(0, row.polls - 1) * random.uniform(0.8, 1.2))
        if exc.retry_after is not None:
            delay = max(delay, exc.retry_after)
        log.info("delegation %s: %s; trying again in %.1f s", row.key, exc, delay)
        await self._reschedule(row, time.time() + delay, str(exc))

    async def _reschedule(self, row: DelegationRecord, at: float, error: str | None = None) -> None:
        await faults.reached("watchdog_reschedule", row)
        await self.runtime.store.reschedule_delegation(row, at, error)

    async def _alive(self, peer: str) -> None:
        """``peer`` answered: its rows that were backed off are due now."""
        if not self.health.answered(peer):
            return
        now, woken = time.time(), 0
        for state in ("sending", "sent", "answered", "asked", "canceling"):
            within = now + (CANCEL_MAX_BACKOFF if state == "canceling" else self.max_backoff)
            woken += await self.runtime.store.wake_delegations(peer, state, now, within)
        if woken:
            log.info("peer %r answers again: taking up %d delegations that waited", peer, woken)
            self._wake.set()


def _cancel_spent(polls: int) -> bool:
    """Whether ``polls`` tries at a cancel, backed off (1 s doubling to
    :data:`CANCEL_MAX_BACKOFF`), have taken :data:`CANCEL_PERIOD` already."""
    spent = sum(min(CANCEL_MAX_BACKOFF, 2.0**i) for i in range(max(0, polls - 1)))
    return spent >= CANCEL_PERIOD

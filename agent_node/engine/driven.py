"""The executions an engine of scope ``own`` drives: :class:`Driven`.

An application's :class:`~agent_node.runtime.Runtime` drives every
execution it started or resumed until the execution ends or the runtime
closes: its timers and wait timeouts fire, and a signal moves it on. Many of
them may be parked for long (on an approval, a peer): claiming work for all
of them in every claim round would cost each round as much as all of them.
So an execution is, to the claim loop, one of

* *pending*: looked at in the next claim round — just started here,
  resumed, or news came for it (a ``work``, ``timer`` or ``status``
  notice: a signal, a wait written, a retry due);
* *in the round*: taken by the claim round under way;
* *parked*: nothing was ready when it was last looked at; it is looked at
  again when its next thing is due (a timer, a wait's timeout, a retry, a
  lease's end), on a heap, or when news comes for it. Until then it costs
  the rounds nothing — but a *sweep* every ``poll_interval``: a read, in
  chunks, of whether something of the parked is due, and a claim for them
  when it is (a signal written by another process that cannot notify this
  one, ``agent-node signal`` on SQLite).

A look reads an execution's work and wait rows; one that finds neither
drops the execution, as do its end committed here and a ``cancel`` notice.
Apart from the engine because it is the own scope's bookkeeping, with
state of its own.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Awaitable, Callable, Collection, Iterator, Sequence

from agent_node.store.base import Store
from agent_node.store.records import Claim, WaitRecord, WorkItem

__all__ = ["CHUNK", "Driven", "next_due"]

#: Executions a claim or a read scoped to some names at most (a bound on a
#: statement's size, whatever the store does with the list).
CHUNK = 500


#: Claims up to ``limit`` ready visits of some executions and starts them.
ClaimFor = Callable[[float, int, Sequence[str]], Awaitable[list[Claim]]]


class Driven:
    def __init__(
        self,
        store: Store,
        claim: ClaimFor,
        expire: Callable[[WaitRecord], Awaitable[None]],
        *,
        poll_interval: float,
        lease_ttl: float,
    ) -> None:
        self.store = store
        self._claim = claim
        self._expire = expire
        self.poll_interval = poll_interval
        self.lease_ttl = lease_ttl
        self.pending: set[str] = set()
        self._round: set[str] = set()
        #: Parked executions and when each is looked at again (``inf``: on news only).
        self._parked: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []
        self._swept_at = -math.inf

    def __contains__(self, execution_id: object) -> bool:
        return (
            execution_id in self.pending
            or execution_id in self._parked
            or execution_id in self._round
        )

    def look(self, execution_id: str) -> None:
        """Look at ``execution_id`` in the next claim round."""
        self._parked.pop(execution_id, None)
        self.pending.add(execution_id)

    def news(self, execution_id: str) -> bool:
        """News of ``execution_id``: it is looked at again if driven here;
        whether it is."""
        if execution_id not in self:
            return False
        self.look(execution_id)
        return True

    def drop(self, execution_id: str) -> None:
        """``execution_id`` ended (or has nothing left to drive)."""
        self.pending.discard(execution_id)
        self._round.discard(execution_id)
        self._parked.pop(execution_id, None)

    def hold(self, execution_id: str, until: float) -> None:
        """A visit of ``execution_id`` runs here: look at it by ``until`` at
        the latest (its lease's end: a task that died is noticed)."""
        if execution_id in self.pending:
            return
        self._round.discard(execution_id)
        self._park(execution_id, until)

    async def round(self, now: float, free: int) -> int:
        """A claim round for up to ``free`` visits; how many were claimed.

        The executions taken (the pending, the parked whose time came) are
        looked at — their work and wait rows read, their due waits fired —
        and claimed for when something of them is ready; the others park
        until their next due. At a sweep the parked are claimed for when
        something of them is ready. Reads first: a claim is a write (on
        SQLite, the file's one writer), a park needs none."""
        taken = self._take(now) if free > 0 else []
        count = 0
        try:
            ready = [e for e in taken if await self._look(e, now)]
            ready += await self._ready_among(self._sweep(now) if free > 0 else [], now)
            for part in _chunks(ready):
                if count < free:
                    claims = await self._claim(now, free - count, part)
                    for claim in claims:
                        self.hold(claim.work.execution_id, now + self.lease_ttl)
                    count += len(claims)
            for execution_id in ready if count < free else ():
                # Ready, yet nothing was claimed (its wait's workflow not
                # loadable here, its work leased elsewhere): a poll later.
                self._settle(execution_id, now + self.poll_interval)
        finally:
            self._put_back(taken)  # not looked at: no slot was left, or the store failed
        return count

    def _take(self, now: float) -> list[str]:
        """The executions for this round: the pending, and the parked whose
        time came."""
        while self._heap and self._heap[0][0] <= now:
            due, execution_id = heapq.heappop(self._heap)
            if self._parked.get(execution_id) == due:
                del self._parked[execution_id]
                self.pending.add(execution_id)
        taken = self.pending
        self.pending = set()
        self._round |= taken
        return list(taken)

    async def _look(self, execution_id: str, now: float) -> bool:
        """Whether something of an execution of the round is ready now (a
        wait that was due fired); if not, it is parked until its next due,
        or dropped when nothing is left of it."""
        if execution_id not in self._round:
            return False  # dropped during the round
        work = await self.store.work(execution_id)
        waits = await self.store.waits(execution_id)
        fired = False
        for wait in waits:
            if wait.deadline is not None and wait.deadline <= now:
                await self._expire(wait)
                fired = True
        due = next_due(work, waits)
        if fired or (due is not None and due <= now):
            return True
        self._settle(execution_id, due)
        return False

    def _settle(self, execution_id: str, due: float | None) -> None:
        """Park an execution of the round until ``due``, drop it for None.
        News during the round keeps it pending."""
        if execution_id not in self._round:
            return  # dropped, or claimed, during the round
        self._round.discard(execution_id)
        if execution_id not in self.pending and due is not None:
            self._park(execution_id, due)

    async def _ready_among(self, parked: Sequence[str], now: float) -> list[str]:
        """The chunks of ``parked`` something of which is due (a read each)."""
        ready: list[str] = []
        for part in _chunks(parked):
            due = await self.store.next_due(part)
            if due is not None and due <= now:
                ready.extend(part)
        return ready

    def _sweep(self, now: float) -> list[str]:
        """The parked executions to claim for, every ``poll_interval`` (they stay parked)."""
        if not self._parked or now - self._swept_at < self.poll_interval:
            return []
        self._swept_at = now
        return list(self._parked)

    def _put_back(self, execution_ids: Collection[str]) -> None:
        """Executions of the round not looked at (no slot was free, the
        store failed): pending again."""
        for execution_id in execution_ids:
            if execution_id in self._round:
                self._round.discard(execution_id)
                self.pending.add(execution_id)

    def sweep_soon(self) -> None:
        """Sweep in the next round (news for every execution: ``("work", "*")``)."""
        self._swept_at = -math.inf

    def next_at(self) -> float:
        """When the next round has something to do at the latest (``inf``: nothing)."""
        if self.pending:
            return -math.inf
        while self._heap and self._parked.get(self._heap[0][1]) != self._heap[0][0]:
            heapq.heappop(self._heap)  # stale: looked at or dropped since
        due = self._heap[0][0] if self._heap else math.inf
        return min(due, self._swept_at + self.poll_interval) if self._parked else due

    def _park(self, execution_id: str, due: float) -> None:
        self._parked[execution_id] = due
        if due < math.inf:
            heapq.heappush(self._heap, (due, execution_id))
            if len(self._heap) > 2 * len(self._parked) + 64:  # mostly stale entries
                self._heap = [(d, e) for e, d in self._parked.items() if d < math.inf]
                heapq.heapify(self._heap)


def _chunks(ids: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(ids), CHUNK):
        yield ids[start : start + CHUNK]


def next_due(work: Sequence[WorkItem], waits: Sequence[WaitRecord]) -> float | None:
    """When something of an execution with these rows is due next: a work
    row's time (its lease's end, when leased), a wait's deadline; ``inf``
    when only news can move it (a wait for an event), None when nothing is
    left (it ended)."""
    if not work and not waits:
        return None
    times = [
        (item.lease_expires_at or 0.0) if item.lease_owner else item.available_at for item in work
    ]
    times.extend(w.deadline for w in waits if w.deadline is not None)
    return min(times, default=math.inf)

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

A look reads an execution's waits (firing the due ones), then when its
next thing is due; a sweep reads that of every parked execution, a chunk at
a time. An execution with neither work nor waits left is let go — found by
a look or a sweep, so also one another process ended (``agent-node cancel``
on SQLite, whose notices reach no other process; a worker that completed
it) — as is one whose end was committed here or whose ``cancel`` notice
came; ``ended`` is told of those a read found, for a waiter to read the row
at once. Apart from the engine because it is the own scope's bookkeeping,
with state of its own.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Awaitable, Callable, Collection, Iterator, Sequence

from agent_node.store.base import Store
from agent_node.store.records import Claim, WaitRecord

__all__ = ["CHUNK", "Driven"]

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
        ended: Callable[[str], None] = lambda execution_id: None,
    ) -> None:
        self.store = store
        self._claim = claim
        self._expire = expire
        self._ended = ended
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
        or dropped when nothing is left of it. Whether anything is left is
        one read (its work and waits read apart could miss a signal of
        another process moving it from the one to the other, and drop it)."""
        if execution_id not in self._round:
            return False  # dropped during the round
        fired = False
        for wait in await self.store.waits(execution_id):
            if wait.deadline is not None and wait.deadline <= now:
                await self._expire(wait)
                fired = True
        if fired:
            return True
        due = (await self.store.next_due_of([execution_id])).get(execution_id)
        if due is not None and due <= now:
            return True
        self._settle(execution_id, due)
        return False

    def _settle(self, execution_id: str, due: float | None) -> None:
        """Park an execution of the round until ``due``, drop it for None.
        News during the round keeps it pending."""
        if execution_id not in self._round:
            return  # dropped, or claimed, during the round
        self._round.discard(execution_id)
        if execution_id in self.pending:
            return
        if due is None:
            self._ended(execution_id)
        else:
            self._park(execution_id, due)

    async def _ready_among(self, parked: Sequence[str], now: float) -> list[str]:
        """Of ``parked`` (a sweep), those something of which is due now, a
        read a chunk; the others are parked again until their next due if
        it came nearer, and those with nothing left are let go."""
        ready: list[str] = []
        for part in _chunks(parked):
            dues = await self.store.next_due_of(part)
            for execution_id in part:
                parked_until = self._parked.get(execution_id)
                if parked_until is None:
                    continue  # looked at or dropped during the read
                due = dues.get(execution_id)
                if due is None:
                    self.drop(execution_id)
                    self._ended(execution_id)
                elif due <= now:
                    ready.append(execution_id)
                elif due < parked_until:
                    self._park(execution_id, due)
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

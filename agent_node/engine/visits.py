"""The node visits running in an engine: one task per claimed visit.

A task runs its visit and, when the outcome leads to one more node (leased
in the same transaction as the commit), goes straight on with it: a chain
of nodes is one task; a fork's other branches get tasks of their own, on
the same state. The tasks are kept by the visit they run now — (execution,
node, visit), also while cancelled — for the claim loop's free slots, the
heartbeat and a cancel. A task that ends wakes the claim loop when it frees
a slot claims waited for, or when it ended abnormally.

A stop with a grace (:meth:`Visits.let_finish`) lets the visits running
finish for a while; none starts the visit it leads to, which is released
for others to claim at once. Apart from the engine because it is the
engine's pool of tasks, with state of its own (the tasks, the slots wanted,
the grace).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from agent_node.errors import StoreError, StoreFull, UnknownExecution
from agent_node.store.base import Store
from agent_node.store.records import Claim, VisitKey

from . import faults, plans
from .runner import Runner, StateCache

__all__ = ["Visits", "release_lease"]

log = logging.getLogger("agent_node.engine")
#: Why a visit a stopping engine would have run next is released.
_STOPPING = "this process stops; another may take it at once"
#: Longest a run of visits goes on without letting the loop poll (seconds).
_PASS_EVERY = 0.002


class Visits:
    """The tasks running node visits here, by (execution, node, visit)."""

    def __init__(
        self,
        runner: Runner,
        *,
        wake: asyncio.Event,
        release: Callable[[str, str, int, str], Awaitable[None]],
        crashed: Callable[[BaseException], None],
        full: Callable[[str, StoreFull], None],
        failed: Callable[[], None],
    ) -> None:
        self.tasks: dict[VisitKey, asyncio.Task[None]] = {}
        self._runner = runner
        #: The claim loop's: set when a slot it waited for frees.
        self._wake = wake
        self._release = release
        self._crashed = crashed
        self._full = full
        #: Told when a commit fails (the store's schema may have changed).
        self._failed = failed
        #: The last claim round filled every free slot: ready work may be
        #: left, and the next task to end wakes the claim loop for it.
        self.slots_wanted = False
        #: Stopping with a grace: no claims, no visit started after the one running.
        self.stopping = False
        #: The grace is cut short (:meth:`cut_grace`), and what tells its wait.
        self._cut_short = False
        self._cut: asyncio.Event | None = None

    def cut_grace(self) -> None:
        """Give the running visits of a stop under way (or to come) no more grace."""
        self._cut_short = True
        if self._cut is not None:
            self._cut.set()

    async def let_finish(self, grace: float) -> None:
        """Start no more visits; let the running ones finish for up to
        ``grace`` seconds, or until :meth:`cut_grace`."""
        self.stopping = True
        self._wake.set()  # the claim loop sees it: no more claims
        if self._cut_short:
            return
        running = len(self.tasks)
        log.warning("stopping: waiting up to %g s for %d node visit(s) to finish", grace, running)
        deadline = time.monotonic() + grace
        self._cut = cut = asyncio.Event()
        cutting = asyncio.create_task(cut.wait())
        try:
            while self.tasks and not cut.is_set() and (left := deadline - time.monotonic()) > 0:
                waited = [*self.tasks.values(), cutting]
                await asyncio.wait(waited, timeout=left, return_when=asyncio.FIRST_COMPLETED)
        finally:
            cutting.cancel()
        if self.tasks:
            log.warning(
                "stopping: %d node visit(s) still running after %g s are cut; they run again"
                " at their next claim",
                len(self.tasks),
                grace,
            )

    def spawn(self, claim: Claim, cache: StateCache | None = None) -> None:
        """Run ``claim``, and the visits it leads to, in a task of its own."""
        item = claim.work
        key = (item.execution_id, item.node, item.visit)
        task = asyncio.create_task(self._drive(claim, cache), name=f"node {item.key}")
        self.tasks[key] = task
        task.add_done_callback(lambda t: self._task_done(key, t))

    def _task_done(self, key: VisitKey, task: asyncio.Task[None]) -> None:
        if self.tasks.get(key) is task:
            del self.tasks[key]
        # What a chain leaves for the claim loop comes as notices: ready work
        # ("work") and timers ("timer"). A task's end itself matters only when
        # it frees a slot claims waited for, or when it ended abnormally. (Not
        # "the pool was full before": tasks that end together have all left
        # it by the time their callbacks run, and none would wake the loop.)
        normal = not task.cancelled() and task.exception() is None
        if not normal or self.slots_wanted:
            self.slots_wanted = False
            self._wake.set()
        if task.cancelled():
            return
        exc = task.exception()
        if isinstance(exc, faults.InjectedCrash):
            self._crashed(exc)
        elif isinstance(exc, StoreError):  # its commit failed: the node is retried later
            log.error("node task %s failed: %s", key, exc)
            self._failed()
            if isinstance(exc, StoreFull):
                self._full(key[0], exc)
        elif exc is not None:
            log.error("node task %s failed", key, exc_info=exc)

    async def _drive(self, claim: Claim, cache: StateCache | None) -> None:
        """Run a claimed visit and the ones it leads to, keeping ``tasks``
        keyed by the visit this task runs now (also when it is cancelled);
        ``cache``: the state it runs on, when known (the runner checks)."""
        task = asyncio.current_task()
        current: Claim | None = claim
        key: VisitKey | None = None
        passed = time.monotonic()
        try:
            while current is not None:
                if (now := time.monotonic()) - passed > _PASS_EVERY:
                    # Steps that never wait (and a store whose commits do
                    # not either) would keep the loop from its sockets and
                    # timers for as long as the run lasts.
                    await asyncio.sleep(0)
                    passed = now
                key = (current.work.execution_id, current.work.node, current.work.visit)
                if task is not None:
                    self.tasks[key] = task
                current, extras, cache = await self._runner.run_one(current, cache)
                if self.tasks.get(key) is task:
                    del self.tasks[key]
                key = None
                if self.stopping:  # what it leads to is for others to claim at once
                    for left in ([current] if current else []) + list(extras):
                        work = left.work
                        await self._release(work.execution_id, work.node, work.visit, _STOPPING)
                    return
                for extra in extras:  # a fork's other branches: the same state
                    self.spawn(extra, cache)
        finally:
            if key is not None and self.tasks.get(key) is task:
                del self.tasks[key]


async def release_lease(store: Store, owner: str, key: VisitKey, why: str) -> None:
    """Make the visit ``key`` leased to ``owner`` claimable at once (nothing
    runs it here: ``why``); a store down or the execution gone leaves it to
    its lease's expiry."""
    execution_id, node, visit = key
    log.warning(
        "releasing the lease on %s/%s/%d: %s",
        *key,
        why,
        extra={"execution_id": execution_id, "node": node, "visit": visit},
    )
    with contextlib.suppress(StoreError, UnknownExecution):
        await store.apply(
            execution_id, lambda txn: plans.release_lease(txn, node, visit, owner), related=True
        )

"""The engine: claims ready node visits, runs them, commits their outcomes.

One loop per engine claims what is ready (up to ``concurrency`` visits at a
time) and starts a task per visit (:mod:`.visits`). A task runs the node,
commits its result and — when the outcome leads to one more node — leases
that node in the same transaction and goes straight on with it (one
transaction per node). Timers are fired by the same loop, which sleeps
until the next thing is due, a store notification arrives, or
``poll_interval`` passes (the safety net for writers in other processes
that cannot notify us, e.g. SQLite).

Leases last ``lease_ttl`` seconds and are extended by a heartbeat while a
node runs. Every commit names the fence of its lease; a worker whose lease
was taken over (a zombie) has its commit refused and drops the result.

A guard reads the store's schema version while the engine runs: once a
newer agent-node upgraded the store, the engine stops (:mod:`.schema_guard`).

``scope="own"`` limits an engine to the executions it was asked to drive
(an application's ``Runtime``, ``Workflow.run``) until they end, the parked
ones kept apart from the runnable (:mod:`.driven`); ``scope="all"`` claims
everything (workers).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel

from agent_node.errors import (
    StoreError,
    StoreFull,
    StoreOutdated,
    UsageError,
)
from agent_node.failures import Failures
from agent_node.store.base import Store
from agent_node.store.records import TERMINAL, Claim, ExecutionRecord, VisitKey
from agent_node.workflow.compiled import CompiledWorkflow

from . import faults, plans
from .control import Control, Note
from .driven import Driven
from .executor import Executor
from .heartbeat import heartbeat
from .owner import Owner, is_dead, new_owner
from .registry import WorkflowRegistry
from .runner import Runner
from .schema_guard import SchemaGuard
from .status import EngineState, StatusWatch, wait_event
from .stranded import settle_stranded
from .visits import Visits, release_lease

__all__ = ["Engine", "EngineState"]

log = logging.getLogger("agent_node.engine")
#: Longest pause between tries of a claim loop whose store fails (seconds):
#: work is taken again within it once the store is back.
MOST_BACKOFF = 5.0


class Engine:
    def __init__(
        self,
        store: Store,
        workflows: WorkflowRegistry,
        executors: Mapping[str, Executor],
        *,
        node: str = "local",
        scope: Literal["own", "all"] = "all",
        concurrency: int = 512,
        lease_ttl: float = 30.0,
        poll_interval: float = 1.0,
        heartbeat: bool = True,
    ) -> None:
        self.store = store
        self.workflows = workflows
        self.executors = executors
        self.owner: Owner = new_owner(node)
        self.scope = scope
        self.concurrency = concurrency
        self.lease_ttl = lease_ttl
        self.poll_interval = poll_interval
        self.heartbeat_enabled = heartbeat
        self.control = Control(store, workflows, executors)
        self.state = EngineState.NEW
        self.crash: BaseException | None = None
        self._status = StatusWatch(store, self, poll_interval)
        self.schema = SchemaGuard(store)
        #: Told once this engine stopped because a newer agent-node upgraded its store.
        self.outdated_hooks: list[Callable[[StoreOutdated], None]] = []
        self._outdating: asyncio.Task[None] | None = None
        #: What scope "own" drives (:mod:`.driven`); one found ended wakes its waiter.
        self._driven = Driven(
            store,
            self._claim,
            self.control.fire_due,
            poll_interval=poll_interval,
            lease_ttl=lease_ttl,
            ended=self._status.changed,
        )
        self._runner = Runner(
            store,
            workflows,
            executors,
            owner=str(self.owner),
            lease_ttl=lease_ttl,
            committed=self._status.ended if scope == "all" else self._committed,
            leaves=scope == "all",
        )
        self._wake = asyncio.Event()
        self._visits = Visits(
            self._runner,
            wake=self._wake,
            release=self.release_visit,
            crashed=self._crashed,
            full=self._status.full,
            failed=self.schema.soon,
        )
        self._loops: list[asyncio.Task[None]] = []
        self._unsubscribe: Any = None
        #: Told ``(claims, now)`` after each claim (metrics: how long ready work waited).
        self.claimed_hooks: list[Callable[[Sequence[Claim], float], None]] = []
        #: The stranded executions :meth:`recover` settled at start.
        self.settled: list[ExecutionRecord] = []

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        self._require(EngineState.NEW)
        self.owner.mark_live()
        self._unsubscribe = self.store.subscribe(self._on_notice)
        await self.recover()
        self.state = EngineState.RUNNING
        self._loops.append(asyncio.create_task(self._claim_loop(), name="agent-node claim loop"))
        guard = self.schema.watch(self._outdated)
        self._loops.append(asyncio.create_task(guard, name="agent-node schema guard"))
        if self.heartbeat_enabled:
            self._loops.append(asyncio.create_task(heartbeat(self), name="agent-node heartbeat"))

    @property
    def running_visits(self) -> dict[VisitKey, asyncio.Task[None]]:
        """The node visits running here (their tasks), by (execution, node, visit)."""
        return self._visits.tasks

    @property
    def left(self) -> Mapping[VisitKey, str]:
        """The visits this engine left to a process that can run them (one
        equipped for them, :class:`~agent_node.errors.NotEquipped`, or with
        their workflow version), and why."""
        return self._runner.left

    @property
    def running(self) -> bool:
        """Started, and neither stopped nor crashed (readiness)."""
        return self.state is EngineState.RUNNING

    async def stop(self, grace: float = 0.0) -> None:
        """Stop cleanly: take no more work, let the node visits running here
        finish for up to ``grace`` seconds (none starts the visit it leads
        to: that is left for others to claim at once), then interrupt what
        still runs and release its leases at once (it runs again elsewhere).

        A node's stop (SIGTERM on a deploy) gives its steps a grace: cutting
        them made every rolling restart run the steps in flight twice, their
        effects included (found by an operator's walk)."""
        if self.state is not EngineState.RUNNING:
            return
        if grace > 0 and self._visits.tasks:
            await self._visits.let_finish(grace)
        self.state = EngineState.STOPPED
        await self._halt()
        with contextlib.suppress(StoreError):
            await self.store.expire_leases([str(self.owner)], time.time())

    def cut_stop_short(self) -> None:
        """Give the running visits of a stop under way (or to come) no more
        grace: a second Ctrl-C."""
        self._visits.cut_grace()

    async def abandon(self) -> None:
        """Stop as if the process died: leases stay held (tests, crash simulation)."""
        if self.state is EngineState.RUNNING:
            self.state = EngineState.CRASHED
            await self._halt()

    def _crashed(self, exc: BaseException) -> None:
        """A node visit hit an injected crash: the engine stops as if it died."""
        self.crash = exc
        asyncio.get_running_loop().create_task(self.abandon())

    def _outdated(self, error: StoreOutdated) -> None:
        self._outdating = asyncio.get_running_loop().create_task(self._stop_outdated(error))

    async def _stop_outdated(self, error: StoreOutdated) -> None:
        """A newer agent-node upgraded the store: stop at once — what runs
        here would commit the old way — and let the leases go, for the newer
        release's processes to take up; waiters raise ``error``."""
        if self.state is not EngineState.RUNNING:
            return
        self.state, self.crash = EngineState.OUTDATED, error
        await self._halt()
        with contextlib.suppress(Exception):  # the new schema may refuse even this
            await self.store.expire_leases([str(self.owner)], time.time())
        for hook in self.outdated_hooks:
            hook(error)

    async def _halt(self) -> None:
        self.owner.mark_gone()
        if self._unsubscribe is not None:
            self._unsubscribe()
        tasks = [*self._loops, *self._visits.tasks.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._loops.clear()
        self._visits.tasks.clear()
        self._status.wake_all()

    async def recover(self) -> int:
        """Make leases of dead owners of this node claimable at once, and
        (scope ``all``: a node, a worker, ``resume``) settle the executions an
        older release left with nothing to move them (:mod:`.stranded`,
        kept in :attr:`settled`); how many leases were reclaimed."""
        dead = [o for o in await self.store.lease_owners() if is_dead(o, self.owner)]
        count = await self.store.expire_leases(dead, time.time()) if dead else 0
        if count:
            log.info("reclaimed %d lease(s) of dead worker(s) %s", count, ", ".join(dead))
        if self.scope == "all":  # an in-process run's engine leaves the store's others be
            self.settled = await settle_stranded(self.store)
        return count

    def _require(self, *states: EngineState) -> None:
        if self.state not in states:
            raise UsageError(f"the engine is {self.state.value}")

    # -- driving executions ----------------------------------------------------

    async def submit(
        self,
        workflow: CompiledWorkflow,
        state: BaseModel | Mapping[str, Any],
        *,
        execution_id: str | None = None,
        run_here: bool = True,
        context_id: str | None = None,
        notes: Sequence[Note] = (),
        metadata: Mapping[str, Any] | None = None,
        watch: bool = False,
    ) -> tuple[str, bool]:
        """Create an execution; returns ``(id, created)``. With ``run_here`` its
        first node is leased to this engine and started at once. ``metadata``
        is kept on the execution (e.g. the A2A caller that created it). With
        ``watch``, an execution created here is watched from its creation on,
        as :meth:`watch_status` does (a :meth:`wait` must follow), so that
        the wait does not read the row it just wrote."""
        self._require(EngineState.RUNNING)
        lease = plans.Lease(str(self.owner), time.time() + self.lease_ttl) if run_here else None
        execution_id, leased, data = await self.control.create(
            workflow,
            state,
            execution_id,
            lease,
            context_id=context_id,
            notes=notes,
            metadata=metadata,
        )
        if leased is None:
            return execution_id, False
        # Its first work is leased to us and starts below: nothing for the
        # claim loop to find (a wake here cost a claim round per request).
        if self.scope == "own" and leased:
            self._driven.hold(execution_id, time.time() + self.lease_ttl)
        elif self.scope == "own":
            self.drive(execution_id)
        faults.hit("after_create")
        if watch:  # nothing ran yet: no change of it can have been missed
            self.watch_status(execution_id)
        # The input is the state its first node runs on (state_seq 0): no
        # need to read it back (a large one is not in the claim's row).
        if leased:
            cache = (0, workflow.state_model.model_validate(data), data)
            for claim in leased:
                self._visits.spawn(claim, cache)
        return execution_id, True

    def drive(self, execution_id: str) -> None:
        """Let this engine claim work of ``execution_id`` until it ends (scope
        ``own``): its timers fire, news moves it on."""
        if self.scope == "own":
            self._driven.look(execution_id)
        self._wake.set()

    def watch_status(self, execution_id: str) -> None:
        """Catch status changes of ``execution_id`` from now on, for a
        :meth:`wait` that follows (it then skips its first read). Call it
        before the execution is created; :meth:`wait` must follow."""
        self._status.watch(execution_id)

    def release_status_watch(self, execution_id: str) -> None:
        """Undo :meth:`watch_status` when no :meth:`wait` will follow."""
        self._status.release(execution_id)

    async def wait(
        self, execution_id: str, *, until: Literal["parked", "terminal"] = "parked"
    ) -> ExecutionRecord:
        """Until the execution is terminal or, with ``until="parked"``, waits
        for an external event (a wait for a timer alone does not return)."""
        return await self._status.wait(execution_id, until)

    def release(self, execution_id: str) -> None:
        """Stop driving ``execution_id`` (scope ``own``)."""
        self._driven.drop(execution_id)

    def drives(self, execution_id: str) -> bool:
        """Whether this engine drives ``execution_id`` now: scope ``all``
        drives every one; scope ``own`` those it was asked to, until they
        end (:mod:`.driven`)."""
        return self.scope == "all" or execution_id in self._driven

    def _committed(self, record: ExecutionRecord) -> None:
        """Scope ``own``: a commit here wrote ``record``; one that ended its
        execution ends driving it."""
        self._status.ended(record)
        if record.status in TERMINAL:
            self._driven.drop(record.id)

    # -- notifications -----------------------------------------------------------

    def _on_notice(self, kind: str, execution_id: str) -> None:
        if self.scope == "own" and kind in ("work", "timer", "status"):
            if execution_id == "*":
                self._driven.sweep_soon()
                self._wake.set()
            elif self._driven.news(execution_id):  # parked or not: look at it again
                self._wake.set()
        if kind in ("work", "timer") and (self.scope == "all" or execution_id == "*"):
            self._wake.set()
        elif kind == "status":
            self._status.changed(execution_id)
        elif kind == "cancel":
            self._driven.drop(execution_id)
            for key, task in list(self._visits.tasks.items()):
                if key[0] == execution_id:
                    task.cancel(f"execution {execution_id} was canceled")

    # -- the claim loop ------------------------------------------------------------

    async def _claim_loop(self) -> None:
        """Claim and run work, fire due waits, and sleep until the next is due
        or news comes. A failure of the store (down, full, restarting) is
        logged without flooding and tried again, backing off: it never ends
        the loop (found by an operator's walk: a read that failed during a
        PostgreSQL outage ended it, and the node took no more work, forever,
        while it said it was ready)."""
        failures = Failures(log, "claiming work", first=self.poll_interval, most=MOST_BACKOFF)
        while self.state is EngineState.RUNNING:
            self._wake.clear()
            try:
                busy = await self._claim_and_fire()
                delay = 0.0 if busy else await self._idle_delay()
            except Exception as exc:  # the loop must outlive anything the store does
                self.schema.soon()  # a newer schema fails claims so: the guard looks at once
                self._status.claims_failed(exc if isinstance(exc, StoreFull) else None)
                busy, delay = False, failures.failed(exc)
            else:
                self._status.claims_failed(None)
                failures.worked()
            if busy:
                await asyncio.sleep(0)
                continue
            await wait_event(self._wake, delay)

    async def _claim_and_fire(self) -> bool:
        if self._visits.stopping:
            return False
        free = self.concurrency - len(self._visits.tasks)
        now = time.time()
        if self.scope == "own":  # the executions asked for (:meth:`.driven.Driven.round`)
            claimed = await self._driven.round(now, free)
        else:
            claimed = len(await self._claim(now, free, None)) if free > 0 else 0
        self._visits.slots_wanted = claimed >= free  # every slot taken (or none was free)
        for wait in await self.store.due_waits(now, 100) if self.scope == "all" else ():
            await self.control.fire_due(wait)
        return claimed > 0 and claimed == free

    async def _claim(self, now: float, free: int, scope: Sequence[str] | None) -> list[Claim]:
        """Claim up to ``free`` ready visits (of ``scope`` when given) and start them."""
        claims = await self.store.claim(
            str(self.owner),
            now=now,
            lease_until=now + self.lease_ttl,
            limit=free,
            plan=plans.start_claimed,
            execution_ids=scope,
        )
        for claim in claims:
            self._visits.spawn(claim)
        for hook in self.claimed_hooks:
            hook(claims, now)
        return claims

    async def _idle_delay(self) -> float:
        if len(self._visits.tasks) >= self.concurrency:
            return self.poll_interval
        own = self.scope == "own"
        due = self._driven.next_at() if own else await self.store.next_due()
        if due is None:
            return self.poll_interval
        return max(0.0, min(self.poll_interval, due - time.time() + 0.001))

    async def release_visit(
        self, execution_id: str, node: str, visit: int, why: str = "nothing runs it here"
    ) -> None:
        """Make a visit leased here claimable at once (nothing runs it here)."""
        await release_lease(self.store, str(self.owner), (execution_id, node, visit), why)

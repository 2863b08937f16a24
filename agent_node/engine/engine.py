"""The engine: claims ready node visits, runs them, commits their outcomes.

One loop per engine claims what is ready (up to ``concurrency`` visits at a
time) and starts a task per visit. A task runs the node, commits its result
and — when the outcome leads to one more node — leases that node in the same
transaction and goes straight on with it (one transaction per node). Timers
are fired by the same loop, which sleeps until the next thing is due, a
store notification arrives, or ``poll_interval`` passes (the safety net for
writers in other processes that cannot notify us, e.g. SQLite).

Leases last ``lease_ttl`` seconds and are extended by a heartbeat while a
node runs. Every commit names the fence of its lease; a worker whose lease
was taken over (a zombie) has its commit refused and drops the result.

``scope="own"`` limits an engine to the executions it was asked to drive
(in-process ``Workflow.run``); ``scope="all"`` claims everything (workers).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import time
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from agent_node.errors import (
    Fenced,
    NodeTimeout,
    StateValidationError,
    StoreError,
    UnknownExecution,
    UsageError,
)
from agent_node.store.base import Fence, Store, Txn
from agent_node.store.records import TERMINAL, Claim, ExecutionRecord, WorkItem
from agent_node.workflow.compiled import CompiledWorkflow
from agent_node.workflow.ir import NO_RETRY, RetryPolicy

from . import faults, plans
from .context import node_context
from .control import Control
from .executor import Advance, Executor, Finish, NodeContext, Outcome, Park
from .owner import Owner, is_dead, new_owner
from .registry import WorkflowRegistry
from .state import coerce_state

__all__ = ["Engine", "EngineState"]

log = logging.getLogger("agent_node.engine")
#: How often a worker retries a node whose workflow it cannot load.
_NOT_HERE = RetryPolicy(initial_delay=30.0, backoff=1.0, max_delay=30.0, jitter=0.2)


class EngineState(enum.Enum):
    NEW = "new"
    RUNNING = "running"
    STOPPED = "stopped"
    CRASHED = "crashed"


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
        self._driven: set[str] = set()
        self._tasks: dict[tuple[str, str, int], asyncio.Task[None]] = {}
        self._status_waiters: dict[str, asyncio.Event] = {}
        self._wake = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []
        self._unsubscribe: Any = None

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        self._require(EngineState.NEW)
        self.owner.mark_live()
        self._unsubscribe = self.store.subscribe(self._on_notice)
        await self.recover()
        self.state = EngineState.RUNNING
        self._loops.append(asyncio.create_task(self._claim_loop(), name="agent-node claim loop"))
        if self.heartbeat_enabled:
            self._loops.append(
                asyncio.create_task(self._heartbeat_loop(), name="agent-node heartbeat")
            )

    async def stop(self) -> None:
        """Stop cleanly: interrupt running nodes and release their leases at once."""
        if self.state is not EngineState.RUNNING:
            return
        self.state = EngineState.STOPPED
        await self._halt()
        with contextlib.suppress(StoreError):
            await self.store.expire_leases([str(self.owner)], time.time())

    async def abandon(self) -> None:
        """Stop as if the process died: leases stay held (tests, crash simulation)."""
        if self.state is EngineState.RUNNING:
            self.state = EngineState.CRASHED
            await self._halt()

    async def _halt(self) -> None:
        self.owner.mark_gone()
        if self._unsubscribe is not None:
            self._unsubscribe()
        tasks = [*self._loops, *self._tasks.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._loops.clear()
        self._tasks.clear()
        for waiter in self._status_waiters.values():
            waiter.set()

    async def recover(self) -> int:
        """Make leases of dead owners of this node claimable at once."""
        dead = [o for o in await self.store.lease_owners() if is_dead(o, self.owner)]
        count = await self.store.expire_leases(dead, time.time()) if dead else 0
        if count:
            log.info("reclaimed %d lease(s) of dead worker(s) %s", count, ", ".join(dead))
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
    ) -> tuple[str, bool]:
        """Create an execution; returns ``(id, created)``. With ``run_here`` its
        first node is leased to this engine and started at once."""
        self._require(EngineState.RUNNING)
        lease = plans.Lease(str(self.owner), time.time() + self.lease_ttl) if run_here else None
        execution_id, leased = await self.control.create(workflow, state, execution_id, lease)
        if leased is None:
            return execution_id, False
        self.drive(execution_id)
        faults.hit("after_create")
        for claim in leased:
            self._spawn(claim)
        return execution_id, True

    def drive(self, execution_id: str) -> None:
        """Let this engine claim work of ``execution_id`` (scope ``own``)."""
        self._driven.add(execution_id)
        self._wake.set()

    async def wait(
        self, execution_id: str, *, until: Literal["parked", "terminal"] = "parked"
    ) -> ExecutionRecord:
        """Until the execution is terminal or, with ``until="parked"``, waits
        for an external event (a wait for a timer alone does not return)."""
        waiter = self._status_waiters.setdefault(execution_id, asyncio.Event())
        try:
            while True:
                waiter.clear()
                if self.crash is not None:
                    raise self.crash
                record = await self.store.get(execution_id)
                if record is None:
                    raise UnknownExecution(execution_id)
                if record.status in TERMINAL or (
                    until == "parked"
                    and record.status == "waiting"
                    and await self._waits_for_event(execution_id)
                ):
                    return record
                if self.state is not EngineState.RUNNING:
                    raise self.crash or UsageError(f"the engine is {self.state.value}")
                await _wait_event(waiter, self.poll_interval)
        finally:
            self._status_waiters.pop(execution_id, None)

    async def _waits_for_event(self, execution_id: str) -> bool:
        return any(w.kind == "event" for w in await self.store.waits(execution_id))

    def release(self, execution_id: str) -> None:
        self._driven.discard(execution_id)

    # -- notifications -----------------------------------------------------------

    def _on_notice(self, kind: str, execution_id: str) -> None:
        if kind == "work" and (
            self.scope == "all" or execution_id == "*" or execution_id in self._driven
        ):
            self._wake.set()
        elif kind == "status":
            waiter = self._status_waiters.get(execution_id)
            if waiter is not None:
                waiter.set()
        elif kind == "cancel":
            for key, task in list(self._tasks.items()):
                if key[0] == execution_id:
                    task.cancel()

    # -- the claim loop ------------------------------------------------------------

    async def _claim_loop(self) -> None:
        while self.state is EngineState.RUNNING:
            self._wake.clear()
            try:
                busy = await self._claim_and_fire()
            except StoreError:
                log.exception("claiming failed; retrying")
                busy = False
            if busy:
                await asyncio.sleep(0)
                continue
            delay = await self._idle_delay()
            await _wait_event(self._wake, delay)

    async def _claim_and_fire(self) -> bool:
        scope = None if self.scope == "all" else list(self._driven)
        if scope is not None and not scope:
            return False
        free = self.concurrency - len(self._tasks)
        claimed = 0
        now = time.time()
        if free > 0:
            claims = await self.store.claim(
                str(self.owner),
                now=now,
                lease_until=now + self.lease_ttl,
                limit=free,
                plan=plans.start_claimed,
                execution_ids=scope,
            )
            for claim in claims:
                self._spawn(claim)
            claimed = len(claims)
        for wait in await self.store.due_waits(now, 100, scope):
            await self.control.expire(wait)
        return claimed > 0 and claimed == free

    async def _idle_delay(self) -> float:
        if len(self._tasks) >= self.concurrency:
            return self.poll_interval
        scope = None if self.scope == "all" else list(self._driven)
        due = await self.store.next_due(scope) if scope is None or scope else None
        if due is None:
            return self.poll_interval
        return max(0.0, min(self.poll_interval, due - time.time() + 0.001))

    async def _heartbeat_loop(self) -> None:
        while self.state is EngineState.RUNNING:
            await asyncio.sleep(self.lease_ttl / 3)
            if not self._tasks:
                continue
            try:
                held = set(
                    await self.store.extend_leases(str(self.owner), time.time() + self.lease_ttl)
                )
            except StoreError:
                log.exception("heartbeat failed")
                continue
            for key, task in list(self._tasks.items()):
                if key not in held:
                    log.warning("lost the lease on %s/%s/%d; stopping it", *key)
                    task.cancel()

    # -- running nodes -------------------------------------------------------------

    def _spawn(self, claim: Claim) -> None:
        item = claim.work
        key = (item.execution_id, item.node, item.visit)
        task = asyncio.create_task(self._drive(claim), name=f"node {item.key}")
        self._tasks[key] = task
        task.add_done_callback(lambda t: self._task_done(key, t))

    def _task_done(self, key: tuple[str, str, int], task: asyncio.Task[None]) -> None:
        if self._tasks.get(key) is task:
            del self._tasks[key]
        self._wake.set()
        if task.cancelled():
            return
        exc = task.exception()
        if isinstance(exc, faults.InjectedCrash):
            self.crash = exc
            asyncio.get_running_loop().create_task(self.abandon())
        elif exc is not None:
            log.error("node task %s failed", key, exc_info=exc)

    async def _drive(self, claim: Claim) -> None:
        cache: tuple[str, BaseModel, dict[str, Any]] | None = None
        current: Claim | None = claim
        while current is not None:
            key = (current.work.execution_id, current.work.node, current.work.visit)
            task = asyncio.current_task()
            if task is not None and self._tasks.get(key) is not task:
                self._tasks[key] = task
            current, cache = await self._run_one(current, cache)
            self._tasks.pop(key, None)

    async def _run_one(
        self, claim: Claim, cache: tuple[str, BaseModel, dict[str, Any]] | None
    ) -> tuple[Claim | None, tuple[str, BaseModel, dict[str, Any]] | None]:
        item, record = claim.work, claim.execution
        try:
            workflow = self.workflows.get(
                record.workflow_id, record.workflow_version, record.workflow_ref
            )
        except UsageError as exc:
            # Not runnable here (yet): another worker, or a later deploy, may have it.
            log.error("cannot run %s here: %s", item.key, exc)
            await self._fail(item, exc, 0.0, final=False, policy=_NOT_HERE)
            return None, None
        try:
            state, data = _load_state(workflow, record.state, cache)
        except StateValidationError as exc:
            await self._fail(item, exc, 0.0, final=True)
            return None, None
        spec = workflow.node(item.node)
        ctx = NodeContext(
            record.id, workflow, spec, item.visit, item.attempt, state, data, time.time()
        )
        faults.hit("after_claim", item.node)
        started = time.perf_counter()
        token = node_context.set(ctx)
        try:
            async with asyncio.timeout(spec.timeout):
                outcome = await self.executors[spec.type].execute(ctx)
            change, new_cache = _state_change(ctx, record, outcome)
        except TimeoutError:
            error: Exception = NodeTimeout(f"node {spec.id!r} timed out after {spec.timeout}s")
        except Exception as exc:
            error = exc
        else:
            node_context.reset(token)
            faults.hit("after_effect", item.node)
            return await self._commit(workflow, item, outcome, change, started, new_cache)
        node_context.reset(token)
        faults.hit("after_effect", item.node)
        policy = spec.retry or NO_RETRY
        retry = item.attempt < policy.max_attempts
        await self._fail(item, error, time.perf_counter() - started, final=not retry, policy=policy)
        return None, None

    async def _commit(
        self,
        workflow: CompiledWorkflow,
        item: WorkItem,
        outcome: Outcome,
        change: plans.StateChange | None,
        started: float,
        cache: tuple[str, BaseModel, dict[str, Any]] | None,
    ) -> tuple[Claim | None, tuple[str, BaseModel, dict[str, Any]] | None]:
        duration = time.perf_counter() - started
        lease = plans.Lease(str(self.owner), time.time() + self.lease_ttl)

        def plan(txn: Txn) -> tuple[list[WorkItem], ExecutionRecord]:
            leased = plans.complete_node(txn, workflow, item, outcome, change, duration, lease)
            return leased, txn.execution

        try:
            leased, record = await self.store.apply(
                item.execution_id,
                plan,
                fence=_fence(item),
                related=_needs_related(workflow, outcome),
            )
        except (Fenced, UnknownExecution) as exc:
            log.warning("dropped the result of %s: %s", item.key, exc)
            return None, None
        faults.hit("after_commit", item.node)
        if not leased:
            return None, None
        for extra in leased[1:]:
            self._spawn(Claim(extra, record))
        if cache is not None and record.state != cache[0]:
            cache = None
        return Claim(leased[0], record), cache

    async def _fail(
        self,
        item: WorkItem,
        error: Exception,
        duration: float,
        *,
        final: bool,
        policy: RetryPolicy = NO_RETRY,
    ) -> None:
        retry_at = None if final else time.time() + policy.delay(item.attempt)
        if final:
            log.info("node %s failed for good: %s", item.key, error)
        try:
            await self.store.apply(
                item.execution_id,
                lambda txn: plans.fail_node(txn, item, error, retry_at, duration),
                fence=_fence(item),
                related=final,
            )
        except (Fenced, UnknownExecution) as exc:
            log.warning("dropped the failure of %s: %s", item.key, exc)
        if retry_at is not None:
            self._wake.set()


async def _wait_event(event: asyncio.Event, timeout: float) -> None:
    """Wait for ``event`` at most ``timeout`` seconds. (Not ``asyncio.wait_for``:
    on Python 3.11 it swallows a cancellation that races with the event.)"""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            await event.wait()


def _fence(item: WorkItem) -> Fence:
    return Fence(item.node, item.visit, item.fence, item.lease_owner or "")


def _needs_related(workflow: CompiledWorkflow, outcome: Outcome) -> bool:
    if isinstance(outcome, Park | Finish):
        return True
    return isinstance(outcome, Advance) and (
        outcome.next is None or workflow.node(outcome.next).type == "join"
    )


def _load_state(
    workflow: CompiledWorkflow, text: str, cache: tuple[str, BaseModel, dict[str, Any]] | None
) -> tuple[BaseModel, dict[str, Any]]:
    if cache is not None and cache[0] == text:
        return cache[1], cache[2]
    data = json.loads(text)
    try:
        return workflow.state_model.model_validate(data), data
    except ValidationError as exc:
        raise StateValidationError(f"the stored state does not fit {workflow.key}: {exc}") from None


def _state_change(
    ctx: NodeContext, record: ExecutionRecord, outcome: Outcome
) -> tuple[plans.StateChange | None, tuple[str, BaseModel, dict[str, Any]] | None]:
    if not isinstance(outcome, Advance) or (outcome.state is None and not outcome.patch):
        return None, (record.state, ctx.state, dict(ctx.data))
    model = outcome.state
    if model is None:
        model = coerce_state(ctx, outcome.patch)
    data = model.model_dump(mode="json")
    old = ctx.data
    patch = {k: v for k, v in data.items() if k not in old or old[k] != v}
    if not patch:
        return None, (record.state, ctx.state, dict(ctx.data))
    text = plans.dumps(data)
    return plans.StateChange(patch, text, record.last_seq), (text, model, data)

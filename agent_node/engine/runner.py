"""Running one claimed node visit: execute it, commit its outcome, go on.

The engine hands a claim to :meth:`Runner.run_one`, which builds the
node's context, runs its executor under the node's timeout, turns the
outcome into a state change, and commits it under the claim's fence. When
the outcome leads to more nodes, they are leased to the same owner in the
same transaction: the first comes back as the next claim to run, the others
(a fork) as extra claims for the engine to start.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from agent_node.errors import (
    Fenced,
    NodeFailed,
    NodeTimeout,
    NotEquipped,
    PermanentFailure,
    StateValidationError,
    Throttled,
    UnknownExecution,
    UsageError,
)
from agent_node.problems import describe_validation
from agent_node.store.base import Store
from agent_node.store.records import Claim, ExecutionRecord, VisitKey, WorkItem
from agent_node.store.txn import Fence, Txn
from agent_node.workflow.compiled import CompiledWorkflow
from agent_node.workflow.retry import NO_RETRY, RetryPolicy

from . import attempts, faults, plans
from .context import node_context
from .executor import Advance, Executor, Finish, NodeContext, Outcome, Park, Restart
from .failures import report
from .registry import WorkflowRegistry
from .roundtrip import json_exact
from .state import coerce_state, stored_change
from .tracebacks import step_traceback

__all__ = ["MAX_THROTTLE", "Runner", "StateCache"]

log = logging.getLogger("agent_node.engine")
#: One INFO record per execution that fails, with ``execution_id``,
#: ``workflow_id`` and ``error`` as attributes (``agent-node serve`` shows them).
#: Attempts a node may lose to crashed workers beyond its retry policy before
#: it fails: a body that kills its worker every time must not loop forever.
CRASH_ALLOWANCE = 10
#: Seconds a throttled visit waits at most, whatever ``Retry-After`` says.
MAX_THROTTLE = 3600.0
#: When a visit this process cannot run (not equipped for it, or its
#: workflow version unknown here) is due here again
#: (seconds; doubled each time it is left again, up to the most): soon
#: enough for a restarted node to take it, rarely enough not to fill
#: the log with the claims of a process that cannot run it.
_LEAVE_FIRST = 2.0
_LEAVE_MOST = 300.0
#: The state a chain of nodes carries along: (its ``state_seq``, model, data).
#: A claim whose execution's ``state_seq`` is another was changed by another
#: writer (a parallel branch, a signal): the state is read again.
StateCache = tuple[int, BaseModel, dict[str, Any]]
#: What a run returns: the next claim to run here, extra claims to start, the cache.
Step = tuple[Claim | None, list[Claim], StateCache | None]


class Runner:
    def __init__(
        self,
        store: Store,
        workflows: WorkflowRegistry,
        executors: Mapping[str, Executor],
        *,
        owner: str,
        lease_ttl: float,
        committed: Callable[[ExecutionRecord], None] = lambda record: None,
        leaves: bool = False,
    ) -> None:
        self.store = store
        #: Whether a visit this process is not equipped for is left to one
        #: that is (an engine over the whole store) rather than failed.
        self.leaves = leaves
        #: The visits left so far for a process that can run them (equipped
        #: for them, or with their workflow version), and why (``resume``
        #: reports them).
        self.left: dict[VisitKey, str] = {}
        #: How many times each visit was given back unrun here.
        self._given_back: dict[VisitKey, int] = {}
        #: Told each record a commit of a node's outcome wrote (the engine's
        #: waiters take an execution's last one instead of reading it).
        self.committed = committed
        self.workflows = workflows
        self.executors = executors
        self.owner = owner
        self.lease_ttl = lease_ttl

    async def run_one(self, claim: Claim, cache: StateCache | None) -> Step:
        item, record = claim.work, claim.execution
        try:
            workflow = self.workflows.get(
                record.workflow_id, record.workflow_version, record.workflow_ref
            )
        except UsageError as exc:
            # Not runnable here (yet): another worker, or a later deploy, may have it.
            await self._leave(item, exc)
            return None, [], None
        try:
            seq, state, data = await self._load_state(workflow, record, cache)
        except StateValidationError as exc:
            await self._fail(item, exc, 0.0, final=True)
            return None, [], None
        except UnknownExecution as exc:  # deleted meanwhile (pruned): nothing to run
            log.warning("dropped %s: %s", item.key, exc)
            return None, [], None
        spec = workflow.node(item.node)
        allowed = (spec.retry or NO_RETRY).max_attempts + CRASH_ALLOWANCE
        if item.attempt > allowed:
            crashed = NodeFailed(
                f"node {spec.id!r} was interrupted {item.attempt - 1} times (its worker died"
                " or lost its lease each time); not starting it again"
            )
            await self._fail(item, crashed, 0.0, final=True)
            return None, [], None
        ctx = NodeContext(
            record.id,
            workflow,
            spec,
            item.visit,
            item.attempt,
            state,
            data,
            time.time(),
            record.traceparent,
            functools.partial(self.store.events, record.id),
            self.store.live,
            functools.partial(self._note, item),
        )
        faults.hit("after_claim", item.node)
        started = time.perf_counter()
        token = node_context.set(ctx)
        try:
            if spec.timeout is None:  # most nodes: no timer to arm and disarm
                outcome = await self.executors[spec.type].execute(ctx)
            else:
                async with asyncio.timeout(spec.timeout):
                    outcome = await self.executors[spec.type].execute(ctx)
            change, new_cache = _state_change(ctx, outcome, seq)
        except TimeoutError as exc:
            error: Exception = NodeTimeout(
                f"node {spec.id!r} timed out after {spec.timeout}s{_waiting_on(exc)}"
            )
            trace = None
        except Exception as exc:
            error = exc
            trace = step_traceback(exc) if spec.type == "python" else None
        else:
            node_context.reset(token)
            faults.hit("after_effect", item.node)
            return await self._commit(workflow, claim, outcome, change, started, new_cache)
        node_context.reset(token)
        faults.hit("after_effect", item.node)
        if isinstance(error, NodeFailed) and error.usage is None:
            # Calls made count however the attempt ended (a timeout cut it short).
            error.usage = attempts.spent_usage(ctx.spending)
        policy = spec.retry or NO_RETRY
        duration = time.perf_counter() - started
        if isinstance(error, Throttled) and await self._throttle(item, error, duration, policy):
            return None, [], None
        if isinstance(error, NotEquipped) and self.leaves:
            await self._leave(item, error)
            return None, [], None
        final = isinstance(error, PermanentFailure | NotEquipped)
        retry = item.attempt < policy.max_attempts and not final
        await self._fail(item, error, duration, final=not retry, policy=policy, trace=trace)
        return None, [], None

    async def _load_state(
        self, workflow: CompiledWorkflow, record: ExecutionRecord, cache: StateCache | None
    ) -> StateCache:
        """The state the claimed node runs on: the one carried from the node
        before when nobody changed it since, else the row's (a small state),
        else the store's (a snapshot and the patches since it)."""
        if cache is not None and cache[0] == record.state_seq:
            return cache
        text, seq = record.state, record.state_seq
        if not text:
            read = await self.store.get(record.id)
            if read is None:
                raise UnknownExecution(record.id)
            text, seq = read.state, read.state_seq
        data = json.loads(text)
        try:
            return seq, workflow.state_model.model_validate(data), data
        except ValidationError as exc:
            raise StateValidationError(
                f"the stored state does not fit {workflow.key}:"
                f" {describe_validation(exc, workflow.state_model)}"
            ) from None

    async def _note(self, item: WorkItem, kind: str, data: Mapping[str, Any]) -> None:
        """Log ``kind`` about ``item``'s attempt while it runs (fenced: a lost
        lease drops it, as it will drop the attempt's result)."""

        def plan(txn: Txn) -> None:
            txn.event(kind, item.node, item.visit, item.attempt, plans.dumps(dict(data)))

        try:
            await self.store.apply(item.execution_id, plan, fence=_fence(item))
        except (Fenced, UnknownExecution) as exc:
            log.warning("dropped a note of %s: %s", item.key, exc)

    async def _throttle(
        self, item: WorkItem, error: Throttled, duration: float, policy: RetryPolicy
    ) -> bool:
        """Park the visit on a durable timer (its work row, due after the
        ``Retry-After``) without using an attempt; False when it was
        throttled ``policy.rate_limited`` times already (an ordinary failure
        then). Rare: the count is read from the log."""
        events = await self.store.events(item.execution_id)
        throttled = attempts.throttled_count(events, item.node, item.visit)
        if throttled >= policy.rate_limited:
            return False
        wait = error.retry_after
        if wait is None:
            wait = max(1.0, policy.delay(throttled + 1))
        wait = min(max(wait, 0.0), MAX_THROTTLE)
        log.info("node %s throttled: %s; again in %.1f s", item.key, error, wait)

        def plan(txn: Txn) -> None:
            attempts.throttle_node(txn, item, error, time.time() + wait, wait, duration)

        try:
            await self.store.apply(item.execution_id, plan, fence=_fence(item))
        except (Fenced, UnknownExecution) as exc:
            log.warning("dropped the throttling of %s: %s", item.key, exc)
        return True

    async def _leave(self, item: WorkItem, error: NotEquipped | UsageError) -> None:
        """Give the visit back, its attempt unused (once it can run, it has
        all its attempts, however long it waited), for a process that can
        run it: one equipped for it, or with its workflow version. Due
        again here later (each time later, up to :data:`_LEAVE_MOST`), when
        this process may still lack what it needs. Said once."""
        times = self._give_back(item)
        if times == 0:
            log.warning("left %s for a process that can run it: %s", item.key, error)
        self.left[(item.execution_id, item.node, item.visit)] = str(error)
        await self._left_until(item, time.time() + min(_LEAVE_FIRST * 2**times, _LEAVE_MOST))

    def _give_back(self, item: WorkItem) -> int:
        """Count one more visit given back unrun; how many were before."""
        key = (item.execution_id, item.node, item.visit)
        times = self._given_back.get(key, 0)
        self._given_back[key] = times + 1
        return times

    async def _left_until(self, item: WorkItem, later: float) -> None:
        """The visit's work row unleased, due at ``later``, its attempt unused."""

        def plan(txn: Txn) -> None:
            attempts.leave_node(txn, item, later)

        try:
            await self.store.apply(item.execution_id, plan, fence=_fence(item))
        except (Fenced, UnknownExecution) as exc:
            log.warning("dropped the leaving of %s: %s", item.key, exc)

    async def _commit(
        self,
        workflow: CompiledWorkflow,
        claim: Claim,
        outcome: Outcome,
        change: plans.StateChange | None,
        started: float,
        cache: StateCache,
    ) -> Step:
        item = claim.work
        duration = time.perf_counter() - started
        lease = plans.Lease(self.owner, time.time() + self.lease_ttl)

        def plan(txn: Txn) -> tuple[list[WorkItem], ExecutionRecord, bool]:
            # Nobody changed the state since this node read it: the state the
            # runner holds (with this node's change) is the committed one.
            # (A run continued as new starts from a state of its own.)
            current = txn.execution.state_seq == cache[0] and not isinstance(outcome, Restart)
            leased = plans.complete_node(txn, workflow, item, outcome, change, duration, lease)
            return leased, txn.execution, current

        try:
            leased, record, current = await self.store.apply(
                item.execution_id,
                plan,
                fence=_fence(item),
                related=_needs_related(workflow, outcome),
                held=claim,
            )
        except (Fenced, UnknownExecution) as exc:
            log.warning("dropped the result of %s: %s", item.key, exc)
            return None, [], None
        report(record)
        self.committed(record)
        faults.hit("after_commit", item.node)
        if not leased:
            return None, [], None
        extras = [Claim(extra, record) for extra in leased[1:]]
        kept = (record.state_seq, cache[1], cache[2]) if current else None
        return Claim(leased[0], record), extras, kept

    async def _fail(
        self,
        item: WorkItem,
        error: Exception,
        duration: float,
        *,
        final: bool,
        policy: RetryPolicy = NO_RETRY,
        trace: str | None = None,
    ) -> None:
        retry_at = None if final else time.time() + policy.delay(item.attempt)
        if final:
            log.info("node %s failed for good: %s", item.key, attempts.described(error))

        def plan(txn: Txn) -> ExecutionRecord:
            attempts.fail_node(txn, item, error, retry_at, duration, trace)
            return txn.execution

        try:
            record = await self.store.apply(
                item.execution_id, plan, fence=_fence(item), related=final
            )
        except (Fenced, UnknownExecution) as exc:
            log.warning("dropped the failure of %s: %s", item.key, exc)
            return
        report(record)
        self.committed(record)


def _fence(item: WorkItem) -> Fence:
    return Fence(item.node, item.visit, item.fence, item.lease_owner or "")


def _needs_related(workflow: CompiledWorkflow, outcome: Outcome) -> bool:
    if isinstance(outcome, Park | Finish | Restart):
        return True
    return isinstance(outcome, Advance) and (
        outcome.next is None or workflow.node(outcome.next).type == "join"
    )


def _state_change(
    ctx: NodeContext, outcome: Outcome, seq: int
) -> tuple[plans.StateChange | None, StateCache]:
    """The change ``outcome`` makes to the state read at ``seq`` (its patch:
    what a step writes), and the state after it. The outcome's state is
    dumped to JSON data, not to text: values it shares with the state before
    cost nothing to compare (:func:`~agent_node.store.patches.diff`).

    The state after it is the one a resume would read: the step's own model
    when the state model reads back from JSON as it was (:mod:`.roundtrip`),
    else its JSON validated again."""
    data = ctx.data if isinstance(ctx.data, dict) else dict(ctx.data)
    if not isinstance(outcome, Advance) or (outcome.state is None and not outcome.patch):
        return None, (seq, ctx.state, data)
    model = outcome.state
    if model is None:
        model = coerce_state(ctx, outcome.patch)
    new, patch = stored_change(ctx, model, data)
    exact = json_exact(ctx.workflow.state_model)
    if not patch:  # a step may still have put a value in another form (a tuple for a list)
        return None, (seq, ctx.state if exact else _as_stored(ctx, data), data)
    return plans.StateChange(patch, seq), (seq, model if exact else _as_stored(ctx, new), new)


def _as_stored(ctx: NodeContext, data: dict[str, Any]) -> BaseModel:
    """The state as a resume reads it from ``data``, its JSON form."""
    model = ctx.workflow.state_model
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise StateValidationError(
            f"node {ctx.spec.id!r} produced a state that does not read back from its JSON:"
            f" {describe_validation(exc, model)}"
        ) from None


def _waiting_on(timeout: TimeoutError) -> str:
    """What the node was waiting for when its time ran out, when the work it
    cancelled says (a ``CancelledError`` with a message, e.g. an MCP server
    still starting): ``": <that>"``, else nothing."""
    cancelled = timeout.__cause__
    if isinstance(cancelled, asyncio.CancelledError) and cancelled.args:
        return f": {cancelled.args[0]}"
    return ""

"""Operations on executions that need no running engine: create, signal,
cancel, expire. The CLI uses them directly; the engine through ``control``."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any, cast

from pydantic import BaseModel

from agent_node.errors import InvalidSignal, UnknownExecution, UsageError
from agent_node.ids import new_id
from agent_node.store.base import Store
from agent_node.store.records import TERMINAL, Claim, ExecutionRecord, WaitRecord
from agent_node.store.txn import Txn
from agent_node.workflow.compiled import CompiledWorkflow

from . import faults, fit, plans
from .executor import Executor, Informed, ResumeContext
from .failures import report
from .registry import WorkflowRegistry
from .state import validated_input

__all__ = ["Control", "Note"]

log = logging.getLogger("agent_node.engine")

#: An extra event for the log: ``(kind, JSON-able data)``.
Note = tuple[str, Any]
_SCALARS = frozenset({str, bool, int, float, type(None)})


def _flat(data: Mapping[str, Any]) -> bool:
    """Whether ``data`` reads back from its JSON as it is (text keys, scalar values)."""
    return all(type(k) is str and type(v) in _SCALARS for k, v in data.items())


class Control:
    def __init__(
        self, store: Store, workflows: WorkflowRegistry, executors: Mapping[str, Executor]
    ) -> None:
        self.store = store
        self.workflows = workflows
        self.executors = executors
        #: Due waits :meth:`fire_due` could not fire (their workflow not loadable), said once.
        self._unfired: set[tuple[str, str, int]] = set()

    async def create(
        self,
        workflow: CompiledWorkflow,
        state: BaseModel | Mapping[str, Any],
        execution_id: str | None = None,
        lease: plans.Lease | None = None,
        *,
        context_id: str | None = None,
        notes: Sequence[Note] = (),
        metadata: Mapping[str, Any] | None = None,
    ) -> tuple[str, list[Claim] | None, dict[str, Any]]:
        """Create an execution: its id, the claims leased to ``lease`` (None
        when that id exists already) and its input as JSON data.

        ``context_id`` groups executions (an A2A context); ``notes`` are
        events logged right after ``execution_started`` (e.g. the message
        that started it), so the log alone can answer for them."""
        self.workflows.add(workflow)
        execution_id = execution_id or new_id()
        data = validated_input(workflow, state)
        now = time.time()
        meta = dict(metadata) if metadata else None
        record = ExecutionRecord(
            execution_id,
            workflow.ir.id,
            workflow.ir.version,
            workflow.ref,
            "pending",
            plans.dumps(data),
            "",
            0,
            None,
            context_id,
            plans.dumps(meta) if meta else None,
            now,
            now,
            # As a parse of its JSON would give it back (its readers — the
            # runner's traceparent, the traces' origin — need not parse it).
            parsed=meta if meta and _flat(meta) else None,
        )

        def plan(txn: Txn) -> list[Claim]:
            leased = plans.start_execution(txn, workflow, lease, notes)
            return [Claim(item, txn.execution) for item in leased]

        claims = await self.store.create(record, plan)
        return execution_id, claims, data

    async def signal(
        self, execution_id: str, event: str, payload: Any = None, *, notes: Sequence[Note] = ()
    ) -> None:
        """Deliver ``event`` to the execution's wait for it; ``notes`` are logged
        before the resolution (e.g. the message that carried the answer)."""
        try:
            plans.dumps(payload)
        except (TypeError, ValueError) as exc:
            raise InvalidSignal(f"the payload of {event!r} is not JSON: {exc}") from None
        workflow = await self._workflow_of(execution_id)

        def plan(txn: Txn) -> ExecutionRecord:
            wait = plans.find_event_wait(txn, event)
            faults.hit("in_wait_resolution", wait.node)
            plans.log_notes(txn, notes)
            ctx = _resume_context(txn, workflow, wait.node, wait.visit, wait)
            outcome = self.executors[ctx.spec.type].resume(ctx, payload)
            plans.resolve_wait(txn, workflow, wait, outcome, {"event": event, "payload": payload})
            return txn.execution

        report(await self.store.apply(execution_id, plan, related=True, state=True))
        faults.hit("after_wait_resolution")

    async def inform(
        self,
        execution_id: str,
        node: str,
        visit: int,
        news: Mapping[str, Any],
        *,
        notes: Sequence[Note] = (),
    ) -> bool:
        """Hand ``news`` about one visit to its executor's ``inform`` (see
        :class:`~agent_node.engine.executor.Informed`), in one transaction
        with the visit's wait and delegation as they are now; ``notes`` are
        logged first. False when the execution has ended or is unknown."""
        try:
            workflow = await self._workflow_of(execution_id)
        except UnknownExecution:
            return False

        def plan(txn: Txn) -> tuple[bool, ExecutionRecord | None]:
            if txn.execution.status in TERMINAL and not txn.delegations:
                return False, None
            wait = plans.find_visit_wait(txn, node, visit)
            ctx = _resume_context(txn, workflow, node, visit, wait)
            informed = cast(Informed, self.executors[ctx.spec.type])
            faults.hit("in_inform", node)
            reaction = informed.inform(ctx, news)
            plans.log_notes(txn, notes)
            info = {"event": "news", "payload": dict(news)}
            was = txn.execution.status
            plans.inform_visit(txn, workflow, node, visit, wait, reaction, info)
            return True, txn.execution if was not in TERMINAL else None

        try:
            informed, ended = await self.store.apply(execution_id, plan, related=True, state=True)
        except UnknownExecution:
            return False
        if ended is not None:
            report(ended)
        return informed

    async def fire_due(self, wait: WaitRecord) -> None:
        """:meth:`expire` a due wait for an engine's claim loop: one whose
        workflow (version) is not loadable here stays due, said once in one
        line, and the loop goes on with the other due waits."""
        try:
            await self.expire(wait)
        except UsageError as exc:
            key = (wait.execution_id, wait.node, wait.visit)
            if key not in self._unfired:
                self._unfired.add(key)
                log.error(
                    "cannot fire the due wait of %s/%s/%d here: %s",
                    *key,
                    exc,
                    extra={"execution_id": wait.execution_id},
                )

    async def expire(self, wait: WaitRecord) -> None:
        """Resolve a wait whose deadline passed (a no-op if it was resolved)."""
        try:
            workflow = await self._workflow_of(wait.execution_id)
        except UnknownExecution:
            return

        def plan(txn: Txn) -> ExecutionRecord | None:
            current = next(
                (w for w in txn.waits or () if (w.node, w.visit) == (wait.node, wait.visit)), None
            )
            if current is None or current.deadline is None or current.deadline > txn.now:
                return None
            ctx = _resume_context(txn, workflow, current.node, current.visit, current)
            outcome = self.executors[ctx.spec.type].expire(ctx)
            plans.resolve_wait(txn, workflow, current, outcome, {"expired": True})
            return txn.execution

        expired = await self.store.apply(wait.execution_id, plan, related=True, state=True)
        if expired is not None:
            report(expired)

    async def cancel(self, execution_id: str, reason: str = "cancelled") -> bool:
        """Cancel the execution; ``False`` when it had ended already."""
        cancelled: bool = await self.store.apply(
            execution_id, lambda txn: plans.cancel_execution(txn, reason), related=True
        )
        return cancelled

    async def _workflow_of(self, execution_id: str) -> CompiledWorkflow:
        record = await self.store.get(execution_id)
        if record is None:
            raise UnknownExecution(execution_id)
        return self.workflows.get(record.workflow_id, record.workflow_version, record.workflow_ref)


def _resume_context(
    txn: Txn, workflow: CompiledWorkflow, node: str, visit: int, wait: WaitRecord | None
) -> ResumeContext:
    """What an executor sees of one visit inside the transaction on it; a
    ``ConfigError`` (nothing written) when the workflow's definition no
    longer fits the execution (:mod:`.fit`)."""
    delegation = next(
        (d for d in txn.delegations or () if (d.node, d.visit) == (node, visit)), None
    )
    spec = fit.node_at(workflow, txn.execution.id, node)
    data = json.loads(plans.state_of(txn))
    fit.stored_state(workflow, txn.execution.id, data)
    return ResumeContext(
        txn.execution.id,
        workflow,
        spec,
        visit,
        data,
        txn.now,
        delegation,
        wait,
    )

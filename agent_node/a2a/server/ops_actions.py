"""What an operator may do to an execution: signal it, cancel it, retry it.

* ``signal``: deliver a named event to the wait for it (409 when none waits).
* ``cancel``: end it (``canceled: false`` when it had ended already).
* ``retry``: start a *new* execution of the same workflow version with the
  input the failed or canceled one started with, in the same context, with
  the notes it was started with (the A2A message that created it, its
  budget). The engine has no "run again from the failed node" — a workflow's
  steps may have had effects — so a retry is a fresh run, and says whose
  retry it is (``metadata.retry_of``, ``retried_by``); it belongs to the
  caller of the original, who can see it as their task.

Answering a question (INPUT_REQUIRED, AUTH_REQUIRED) is not here: it is an
A2A ``SendMessage`` on the task, which operators may send on any task.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from agent_node.errors import StateValidationError, UsageError
from agent_node.ids import new_id
from agent_node.nodes.model_budget import BUDGET_EVENT
from agent_node.results import RUN_STARTS, to_event
from agent_node.runtime import Runtime
from agent_node.scope import caller_of
from agent_node.store import ExecutionRecord
from agent_node.tracing import new_traceparent

from .ops_edge import Refused, read_body, record_of
from .taskview import MESSAGE_EVENT

__all__ = ["cancel", "retry", "retry_execution", "signal"]

#: Notes logged with ``execution_started`` that a retry logs again.
_REPEATED_NOTES = frozenset({MESSAGE_EVENT, BUDGET_EVENT})
_RETRYABLE = frozenset({"failed", "canceled"})


async def signal(request: Request, runtime: Runtime) -> Any:
    record = await record_of(request, runtime)
    body = await read_body(request)
    event = body.get("event")
    if not isinstance(event, str) or not event:
        raise Refused(400, '"event" must be a non-empty string')
    try:
        await runtime.engine.control.signal(record.id, event, body.get("data"))
    except UsageError as exc:  # InvalidSignal among them
        raise Refused(409, str(exc)) from None
    runtime.engine.drive(record.id)
    return {"id": record.id, "signaled": event}


async def cancel(request: Request, runtime: Runtime) -> Any:
    record = await record_of(request, runtime)
    body = await read_body(request)
    reason = body.get("reason", "canceled by an operator")
    if not isinstance(reason, str):
        raise Refused(400, '"reason" must be a string')
    canceled = await runtime.engine.control.cancel(record.id, reason[:500])
    return {"id": record.id, "canceled": canceled}


async def retry(request: Request, runtime: Runtime) -> Any:
    record = await record_of(request, runtime)
    await read_body(request)  # nothing to say yet; a bad body is still refused
    try:
        retried_as = await retry_execution(runtime, record, caller_of(request.scope))
    except UsageError as exc:
        raise Refused(409, str(exc)) from None
    return {"id": record.id, "retried_as": retried_as}


async def retry_execution(
    runtime: Runtime, record: ExecutionRecord, retried_by: str | None, *, run_here: bool = True
) -> str:
    """Start the retry of ``record`` (see the module's docstring): the new
    execution's id. A :class:`UsageError` says why it cannot be retried.
    ``agent-node retry`` calls it too, with ``run_here=False``: the new
    execution waits for the process that runs the store's work."""
    if record.status not in _RETRYABLE:
        status = record.status
        raise UsageError(f"execution {record.id} is {status}: only failed or canceled ones retry")
    try:
        workflow = runtime.workflows.get(
            record.workflow_id, record.workflow_version, record.workflow_ref
        )
    except Exception as exc:  # a workflow file that no longer loads here
        raise UsageError(f"cannot retry {record.id}: {exc}") from None
    events = [to_event(e) for e in await runtime.store.events(record.id)]
    # The input of the run: the first, or the last continued as new.
    started = next((e for e in events if e.kind in RUN_STARTS), None)
    initial = (started.data or {}).get("input") if started is not None else None
    if not isinstance(initial, dict):
        raise UsageError(f"execution {record.id} has no recorded input to start again with")
    retried_as = new_id()
    notes = []
    for event in events:
        if event.node is not None:
            break  # notes come before the first node
        if event.kind in _REPEATED_NOTES:
            data = event.data
            if event.kind == MESSAGE_EVENT and isinstance(data, dict):
                data = {**data, "taskId": retried_as}
            notes.append((event.kind, data))
    metadata = json.loads(record.metadata) if record.metadata else {}
    metadata.update(
        retry_of=record.id,
        retried_by=retried_by,
        traceparent=new_traceparent(),
        trace_root=True,  # a trace of its own: its span is the root
    )
    try:
        await runtime.engine.submit(
            workflow,
            initial,
            execution_id=retried_as,
            run_here=run_here,
            context_id=record.context_id,
            notes=notes,
            metadata=metadata,
        )
    except StateValidationError as exc:
        raise UsageError(f"cannot retry {record.id}: {exc}") from None
    except UsageError as exc:
        raise UsageError(f"cannot retry {record.id}: {exc}") from None
    return retried_as

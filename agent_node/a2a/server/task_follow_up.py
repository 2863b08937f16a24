"""A follow-up message: ``SendMessage`` with the ``taskId`` of a task that
asks its caller something (INPUT_REQUIRED or AUTH_REQUIRED).

The message answers the task's wait: its parts become the answer the wait's
node reads (a delegate node relays the whole message to the peer that
asked), and it is recorded in the task's history. A terminal task takes no
more messages; a task that asks nothing cannot be answered (the refusal
says, in A2A terms, what the task is doing instead); a message may not move
a task to another context; every part must be in a mode the task's
skill takes (:mod:`agent_node.a2a.server.input_modes`). A push config it
carries is checked first, then stored *before* the message is taken, so
that no other add can take its place under the task's cap once the message
is in (the caller, told -32602, would send the message again); a refused
message gives the place back, and puts back the config it replaced. Its
caller was checked by the task service
(:class:`~agent_node.a2a.server.tasks.TaskService`) already.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from agent_node.a2a.protocol.errors import A2AError, InvalidParams, UnsupportedOperation
from agent_node.a2a.protocol.models import SendMessageRequest
from agent_node.a2a.server.handler import CallContext
from agent_node.a2a.server.input_modes import check_parts
from agent_node.a2a.server.push import PushSender
from agent_node.a2a.server.task_context import referenced
from agent_node.a2a.server.task_push import check_push, push_config_of
from agent_node.a2a.server.taskview import MESSAGE_EVENT, answer_from_message
from agent_node.engine import faults
from agent_node.errors import InvalidSignal
from agent_node.runtime import Runtime
from agent_node.security.authz import Policy
from agent_node.store.outage import is_outage
from agent_node.store.records import TERMINAL, ExecutionRecord
from agent_node.workflow.compiled import CompiledWorkflow
from agent_node.workflow.ir import INPUT_EVENT

__all__ = ["ASKING_KINDS", "follow_up"]

#: The wait kinds a follow-up message answers (what the task asks its caller).
ASKING_KINDS = frozenset({"input", "auth"})


async def follow_up(
    runtime: Runtime,
    policy: Policy,
    push: PushSender | None,
    skills: Mapping[str, CompiledWorkflow],
    record: ExecutionRecord,
    request: SendMessageRequest,
    ctx: CallContext,
    *,
    input_modes: Mapping[str, Sequence[str]] | None = None,
) -> None:
    """Answer the wait of task ``record`` with ``request``'s message;
    ``input_modes``: what each skill takes (as :class:`TaskService` has it)."""
    message = request.message
    task_id = record.id
    if record.status in TERMINAL:
        raise UnsupportedOperation(f"task {task_id} is {record.status}; it takes no more messages")
    context_id = record.context_id or record.id
    if message.context_id and message.context_id != context_id:
        raise InvalidParams(f"task {task_id} belongs to context {context_id!r}")
    running = [skill for skill, wf in skills.items() if wf.ir.id == record.workflow_id]
    check_parts(message, running, input_modes or {})
    received = message.model_copy(update={"context_id": context_id})
    await referenced(runtime.store, policy, message.reference_task_ids or [], ctx.caller)
    config = push_config_of(request)
    new_push = check_push(push, config, task_id) if config is not None else None
    answer = answer_from_message(message)
    if await _answer_field(runtime, skills, record) == "message":
        answer = received.to_json()
    # From the task's event before the answer on; a full task refuses it here.
    held = await new_push.hold(runtime.store, ctx, record) if new_push is not None else None
    await faults.reached("task_answer", task_id)
    try:
        await runtime.engine.control.signal(
            task_id,
            INPUT_EVENT,
            answer,
            notes=[(MESSAGE_EVENT, received.to_json())],
        )
    except Exception as exc:
        # Not taken (the store out of reach: perhaps taken, so kept: a
        # retry of the same config replaces it).
        if held is not None and not is_outage(exc):
            await held.give_back(runtime.store)
        if isinstance(exc, InvalidSignal):
            raise await _refusal(runtime, task_id, exc) from None
        raise
    runtime.engine.drive(task_id)


async def _answer_field(
    runtime: Runtime, skills: Mapping[str, CompiledWorkflow], record: ExecutionRecord
) -> str | None:
    """The state field the task's input or auth wait writes its answer to."""
    workflow = next((w for w in skills.values() if w.ir.id == record.workflow_id), None)
    if workflow is None:
        return None
    for wait in await runtime.store.waits(record.id):
        spec = workflow.ir.nodes.get(wait.node)
        if wait.kind in ASKING_KINDS and spec is not None:
            # A delegate node relays the whole message to the peer that asked.
            return "message" if spec.type == "delegate" else getattr(spec, "output", None)
    return None


#: What a task waiting on something other than its caller is doing, by wait kind.
_DOING = {
    "timer": "it waits for a timer",
    "event": "it waits for a signal from outside the conversation",
}


async def _refusal(runtime: Runtime, task_id: str, exc: InvalidSignal) -> A2AError:
    """Why the engine refused a message as the answer of task ``task_id``, in
    A2A terms: the task ended or asks nothing (then what it does instead,
    never the engine's wait names), else the answer does not fit its state."""
    store = runtime.store
    record = await store.get(task_id)
    if record is None or record.status in TERMINAL:  # it ended in between
        status = record.status if record else "gone"
        return UnsupportedOperation(f"task {task_id} is {status}; it takes no more messages")
    kinds = {w.kind for w in await store.waits(task_id)}
    if kinds & ASKING_KINDS:
        return InvalidParams(f"the message does not answer task {task_id}: {exc}")
    doing = []
    for delegation in await store.delegations(task_id):
        peer = f"peer {delegation.peer!r}" if delegation.peer else "a peer"
        doing.append(f"it waits for its delegation to {peer}")
    doing += [_DOING.get(kind, f"it waits ({kind})") for kind in sorted(kinds - {"delegation"})]
    detail = f" ({'; '.join(doing)})" if doing else ""
    state = "submitted" if record.status == "pending" else "working"
    return UnsupportedOperation(
        f"task {task_id} is not asking for input or authorization; it is {state}{detail}"
    )

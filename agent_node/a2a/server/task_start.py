"""A new task: ``SendMessage`` or ``SendStreamingMessage`` without ``taskId``.

The skill named in the message's or the request's metadata as ``skill``
(else the default one) picks the workflow. The caller must be allowed that
skill (else PermissionDenied, logged, nothing made), and every part of the
message must be in a media type the skill takes (:mod:`.input_modes`).
The message fills the workflow's state, with the task's context (its
earlier tasks and the ones the message references, :mod:`.task_context`)
when the state has a field for it. A push config in the request is checked
before anything is made and stored once the task is, from its start (its
cursor is before the task's first event, so no change is missed); a send
refused meanwhile (the key's task made by another message) leaves no
config on the task. The message is
recorded in the task's history, the call in its metadata
(:mod:`.task_origin`). A send with an ``Idempotency-Key`` makes one task
however often it is repeated, and the key with another message is refused
(:mod:`.task_repeat`). A caller with as many open tasks as
``limits.max_open_tasks_per_caller`` allows makes no more
(:mod:`.open_tasks`: a send holds room for its task until it is made, so
sends racing at the cap do not pass it); a repeated send, which makes
none, is not refused.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from agent_node.a2a.protocol.errors import InvalidParams, PermissionDenied
from agent_node.a2a.protocol.models import Message, SendMessageRequest
from agent_node.a2a.server.handler import CallContext
from agent_node.a2a.server.input_modes import check_parts
from agent_node.a2a.server.open_tasks import room_for_task
from agent_node.a2a.server.push import PushSender
from agent_node.a2a.server.task_context import CONTEXT_FIELD, Read, context_of, referenced
from agent_node.a2a.server.task_origin import metadata_of, task_id_of
from agent_node.a2a.server.task_push import check_push, push_config_of
from agent_node.a2a.server.task_repeat import check_repeat
from agent_node.a2a.server.taskview import MESSAGE_EVENT, state_from_message
from agent_node.engine import faults
from agent_node.ids import new_id
from agent_node.runtime import Runtime
from agent_node.security.authz import Policy
from agent_node.workflow.compiled import CompiledWorkflow

__all__ = ["start_task"]

#: The task service's log: a denied start is one of its lines.
log = logging.getLogger("agent_node.a2a.server.tasks")


async def start_task(
    runtime: Runtime,
    policy: Policy,
    push: PushSender | None,
    skills: Mapping[str, CompiledWorkflow],
    default_skill: str | None,
    read: Read,
    request: SendMessageRequest,
    ctx: CallContext,
    *,
    input_modes: Mapping[str, Sequence[str]],
    max_open: int = 0,
    then_wait: bool = False,
) -> tuple[str, bool]:
    """Start the task ``request`` asks for: its id, and whether it is new
    (a send repeated with its ``Idempotency-Key`` finds the one it made);
    ``read`` renders a task as its caller gets it, ``input_modes`` says what
    each skill takes, ``max_open`` how many open tasks a caller may have
    (0: any; as :class:`~.tasks.TaskService` has them)."""
    message = request.message
    skill, workflow = _skill_of(message, request.metadata, skills, default_skill)
    if not policy.may_call(skill, ctx.caller):
        log.warning("denied: %s may not call skill %r", ctx.caller or "anonymous", skill)
        raise PermissionDenied(
            f"{ctx.caller or 'an anonymous caller'} may not call skill {skill!r}",
            metadata={"skill": skill},
        )
    check_parts(message, [skill], input_modes)
    references = await referenced(
        runtime.store, policy, message.reference_task_ids or [], ctx.caller
    )
    task_id = task_id_of(ctx)
    context_id = message.context_id or new_id()
    extra = None
    if CONTEXT_FIELD in workflow.state_model.model_fields:
        context = await context_of(
            runtime.store,
            policy,
            read,
            context_id=context_id,
            caller=ctx.caller,
            references=references,
            known=message.context_id is not None,
        )
        extra = {CONTEXT_FIELD: context}
    state = state_from_message(workflow.state_model, message, extra)
    received = message.model_copy(update={"task_id": task_id, "context_id": context_id})
    config = push_config_of(request)
    new_push = check_push(push, config, task_id) if config is not None else None
    made = ctx.idempotency_key is not None and await runtime.store.get(task_id)
    if made:
        await check_repeat(runtime.store, task_id, workflow.ir.id, message, made)
    engine = runtime.engine
    watch = then_wait and ctx.idempotency_key is None  # a repeat finds an old task
    if watch:
        engine.watch_status(task_id)
    try:
        # Room held until the task is made: sends racing at the cap do not pass it.
        async with room_for_task(runtime.store, ctx.caller, 0 if made else max_open):
            await faults.reached("task_submit", task_id)
            runtime.workflows.add(workflow)
            _, created = await engine.submit(
                workflow,
                state,
                execution_id=task_id,
                context_id=context_id,
                notes=[(MESSAGE_EVENT, received.to_json())],
                metadata=metadata_of(ctx, request),
            )
        if not created and not made:  # a first send with the same key, just before
            await check_repeat(runtime.store, task_id, workflow.ir.id, message, None)
        if new_push is not None:  # from the task's start: its first change is past the cursor
            await new_push.put(runtime.store, ctx, None)
    except BaseException:
        if watch:
            engine.release_status_watch(task_id)
        raise
    return task_id, created


def _skill_of(
    message: Message,
    metadata: Mapping[str, object] | None,
    skills: Mapping[str, CompiledWorkflow],
    default_skill: str | None,
) -> tuple[str, CompiledWorkflow]:
    """The skill a new task's message or request names as ``skill`` (else
    the default one), and its workflow."""
    named = (message.metadata or {}).get("skill") or (metadata or {}).get("skill")
    skill = named if isinstance(named, str) else default_skill
    if skill is None or skill not in skills:
        known = ", ".join(sorted(skills)) or "none"
        raise InvalidParams(f"no skill {skill!r} here (skills: {known})")
    return skill, skills[skill]

"""A2A operations on a node's executions (implements :class:`TaskHandler`).

* ``SendMessage`` without ``taskId`` starts the skill's workflow (the skill
  named in the message's or request's metadata as ``skill``, else the
  default one) with the state the message fills
  (:mod:`agent_node.a2a.server.task_start`); with ``taskId`` it answers
  the task's wait for input or authorization (INPUT_REQUIRED or
  AUTH_REQUIRED: :mod:`agent_node.a2a.server.task_follow_up`). It blocks
  until the task is terminal or interrupted, unless ``returnImmediately``.
* ``SendStreamingMessage`` starts or continues a task the same way without
  waiting, and streams it (:mod:`agent_node.a2a.server.streaming`): first the task
  as accepted (SUBMITTED, or WORKING for a follow-up), then its changes,
  until it is terminal or interrupted. ``SubscribeToTask`` streams a task
  that is not terminal, from how it is now until it is terminal.
* A send with an ``Idempotency-Key`` is deduplicated on (caller, key): the
  task id is derived from both, and a repeat finds the task already there;
  the key with another message is refused
  (:mod:`agent_node.a2a.server.task_repeat`). ``messageId`` is never a
  dedupe key (clients and the TCK reuse them).
* Every part of a new task's message, or of a follow-up, must be in a media
  type the skill takes, else ContentTypeNotSupported, before anything is
  made (:mod:`agent_node.a2a.server.input_modes`).
* A client's ``contextId`` is kept; without one the task gets a new context.
  A new task can read its context's earlier tasks and the tasks its message
  references (``referenceTaskIds``): :mod:`agent_node.a2a.server.task_context`.
* Push configs (the four ``…PushNotificationConfig`` methods, or
  ``taskPushNotificationConfig`` in a send): :mod:`agent_node.a2a.server.task_push`.
* ``ListTasks`` filters and pages: :mod:`agent_node.a2a.server.task_list`.
* Authorization (:class:`~agent_node.security.authz.Policy`): a new task
  needs the caller to be allowed its skill (else PermissionDenied, logged,
  nothing created); every other method works only on tasks the caller
  created (or on any, for an operator), and answers TaskNotFound for the
  rest, so a task's existence is not disclosed. ListTasks lists the
  caller's own tasks. The caller is recorded as the task's
  ``metadata.caller``.
* A caller may have :attr:`TaskService.max_open_tasks_per_caller` open
  tasks; a new one past it is refused (:mod:`agent_node.a2a.server.open_tasks`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

from agent_node.a2a.protocol import compat_methods
from agent_node.a2a.protocol.errors import (
    InvalidParams,
    TaskNotCancelable,
    TaskNotFound,
    Unavailable,
    UnsupportedOperation,
)
from agent_node.a2a.protocol.models import (
    CancelTaskRequest,
    DeleteTaskPushNotificationConfigRequest,
    Empty,
    GetExtendedAgentCardRequest,
    GetTaskPushNotificationConfigRequest,
    GetTaskRequest,
    ListTaskPushNotificationConfigsRequest,
    ListTaskPushNotificationConfigsResponse,
    ListTasksRequest,
    ListTasksResponse,
    SendMessageRequest,
    SendMessageResponse,
    StreamResponse,
    SubscribeToTaskRequest,
    Task,
    TaskPushNotificationConfig,
    TaskState,
    TaskStatus,
)
from agent_node.a2a.server.extended_card import ExtendedCard, ServedCard
from agent_node.a2a.server.failed import log_outage
from agent_node.a2a.server.handler import CallContext
from agent_node.a2a.server.limits import DEFAULT_LIMITS
from agent_node.a2a.server.push import PushSender
from agent_node.a2a.server.streaming import POLL_SECONDS, Watches
from agent_node.a2a.server.task_follow_up import ASKING_KINDS, follow_up
from agent_node.a2a.server.task_list import ListQuery, token_of
from agent_node.a2a.server.task_push import get_push, list_push, set_push
from agent_node.a2a.server.task_start import start_task
from agent_node.a2a.server.task_stream import TaskStream
from agent_node.a2a.server.taskview import (
    TASK_EVENTS,
    render_task,
    reply_message,
)
from agent_node.engine import faults
from agent_node.results import Event, to_event
from agent_node.runtime import Runtime
from agent_node.security.authz import Policy
from agent_node.store.outage import is_outage
from agent_node.store.records import TERMINAL, ExecutionRecord
from agent_node.workflow.compiled import CompiledWorkflow

__all__ = ["TaskService"]

log = logging.getLogger(__name__)


class TaskService:
    def __init__(
        self,
        runtime: Runtime,
        skills: Mapping[str, CompiledWorkflow],
        default_skill: str | None = None,
        *,
        poll: float = POLL_SECONDS,
        push: PushSender | None = None,
        policy: Policy | None = None,
        input_modes: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self.runtime = runtime
        #: Who may do what; open (everything allowed) when not given.
        self.policy = policy or Policy.open()
        #: Delivers push notifications; None: this agent does not push.
        self.push = push
        self.skills = dict(skills)
        #: The media types each skill takes (skill id → modes, as its card
        #: declares them); a skill not named takes the card's default ones
        #: (:mod:`agent_node.a2a.server.input_modes`).
        self.input_modes = dict(input_modes or {})
        self.default_skill = default_skill or (next(iter(self.skills)) if self.skills else None)
        #: The tasks being streamed; ``poll`` is their safety poll, in seconds.
        self.watches = Watches(runtime.store, self._task, poll)
        #: GetExtendedAgentCard (:mod:`.extended_card`); the node sets it.
        self.extended_card = ExtendedCard(None, self.policy)
        #: Open tasks one caller may have (``limits.max_open_tasks_per_caller``;
        #: 0: any); the node sets it.
        self.max_open_tasks_per_caller = DEFAULT_LIMITS.max_open_tasks_per_caller
        #: Whether the node is stopping (a blocking send its stop cuts then
        #: answers :class:`Unavailable` with its task's id); the node sets it.
        self.stopping: Callable[[], bool] = lambda: False

    # -- SendMessage -------------------------------------------------------------

    async def send_message(
        self, request: SendMessageRequest, ctx: CallContext
    ) -> SendMessageResponse:
        message = request.message
        config = request.configuration
        blocking = not (config and config.return_immediately)
        if message.task_id:
            task_id = await self._continue(request, ctx)
        else:
            task_id, _ = await self._start(request, ctx, then_wait=blocking)
        history = config.history_length if config else None
        if not blocking:
            return SendMessageResponse(task=await self._task(task_id, history_length=history))
        # The record the wait ends on and one read of the log make the answer.
        try:
            record = await self.runtime.engine.wait(task_id)
            events = await self._events(task_id)
        except asyncio.CancelledError:
            if not self.stopping():
                raise
            # Cut by the node's stop: the task is durable and goes on at its
            # next start; the caller learns which task to ask for then.
            log.warning("stopped with task %s still running: its send answered -32033", task_id)
            raise Unavailable(
                f"the node is stopping; task {task_id} goes on when it is back: ask for it then",
                metadata={"taskId": task_id},
            ) from None
        except Exception as exc:
            if not is_outage(exc):
                raise
            # The task was made: a caller told only "ask again" would make another.
            log_outage(log, f"SendMessage waiting for task {task_id}", exc)
            raise Unavailable(
                f"the node's store cannot be reached now; task {task_id} was accepted and goes"
                " on: ask for it in a moment",
                metadata={"taskId": task_id},
            ) from None
        reply = reply_message(record, events)
        if reply is not None:
            return SendMessageResponse(message=reply)
        task = await self._render(record, events, history_length=history)
        return SendMessageResponse(task=task)

    async def _start(
        self, request: SendMessageRequest, ctx: CallContext, *, then_wait: bool = False
    ) -> tuple[str, bool]:
        return await start_task(
            self.runtime,
            self.policy,
            self.push,
            self.skills,
            self.default_skill,
            self._task,
            request,
            ctx,
            input_modes=self.input_modes,
            max_open=self.max_open_tasks_per_caller,
            then_wait=then_wait,
        )

    async def _continue(self, request: SendMessageRequest, ctx: CallContext) -> str:
        task_id = request.message.task_id or ""
        record = await self._record(task_id, ctx)
        await follow_up(
            self.runtime,
            self.policy,
            self.push,
            self.skills,
            record,
            request,
            ctx,
            input_modes=self.input_modes,
        )
        return task_id

    # -- SendStreamingMessage, SubscribeToTask -----------------------------------

    async def send_streaming_message(
        self, request: SendMessageRequest, ctx: CallContext
    ) -> AsyncIterator[StreamResponse]:
        message = request.message
        accepted: TaskState | None  # None: the task as it is (a repeated send)
        if message.task_id:
            task_id, accepted = await self._continue(request, ctx), TaskState.WORKING
        else:
            task_id, created = await self._start(request, ctx)
            accepted = TaskState.SUBMITTED if created else None
        config = request.configuration
        task = await self._task(task_id, history_length=config.history_length if config else None)
        status = task.status
        if accepted is not None:
            status = TaskStatus(state=accepted, timestamp=task.status.timestamp)
        base = task.model_copy(update={"status": status, "artifacts": None})
        return TaskStream(await self.watches.private(task_id, base), at_interrupt=True)

    async def subscribe_to_task(
        self, request: SubscribeToTaskRequest, ctx: CallContext
    ) -> AsyncIterator[StreamResponse]:
        record = await self._record(request.id, ctx)
        if record.status in TERMINAL:
            raise UnsupportedOperation(
                f"task {request.id} is {record.status}; a terminal task cannot be subscribed to"
            )
        return TaskStream(await self.watches.shared(request.id), at_interrupt=False)

    # -- GetTask, ListTasks, CancelTask -------------------------------------------

    async def get_extended_agent_card(
        self, request: GetExtendedAgentCardRequest, ctx: CallContext
    ) -> ServedCard:
        return await self.extended_card.get(request, ctx)

    async def get_task(self, request: GetTaskRequest, ctx: CallContext) -> Task:
        record = await self._record(request.id, ctx)
        events = await self._events(record.id)
        return await self._render(record, events, history_length=request.history_length)

    async def list_tasks(self, request: ListTasksRequest, ctx: CallContext) -> ListTasksResponse:
        # An operator (or a node without identities) sees every task.
        caller = None if self.policy.is_operator(ctx.caller) else ctx.caller or ""
        query = ListQuery.of(request, caller)
        store = self.runtime.store
        records = await store.list_executions(
            **query.filters, limit=query.size + 1, offset=query.offset, before=query.before
        )
        shown = records[: query.size]
        # One read of the page's logs (the kinds a task renders from), not one per task.
        logs = await store.events_of([r.id for r in shown], TASK_EVENTS)
        tasks = [
            await self._render(
                record,
                [to_event(e) for e in logs[record.id]],
                history_length=request.history_length,
                include_artifacts=bool(request.include_artifacts),
            )
            for record in shown
        ]
        # Counted with the first page, carried in the tokens of the next ones.
        total = query.total
        if total is None:
            total = await store.count_executions(**query.filters)
        last = shown[-1] if len(records) > query.size else None
        return ListTasksResponse(
            tasks=tasks,
            next_page_token=token_of(last.created_at, last.id, total) if last else "",
            page_size=query.size,
            total_size=total,
        )

    async def cancel_task(self, request: CancelTaskRequest, ctx: CallContext) -> Task:
        record = await self._record(request.id, ctx)
        if record.status in TERMINAL:
            raise TaskNotCancelable(f"task {request.id} is {record.status}")
        await self.runtime.engine.control.cancel(request.id, "canceled by the caller")
        return await self._task(request.id)

    # -- push notification configs -----------------------------------------------

    async def create_task_push_notification_config(
        self, request: TaskPushNotificationConfig, ctx: CallContext
    ) -> TaskPushNotificationConfig:
        if not request.task_id:
            raise InvalidParams("taskId: field required")
        record = await self._record(request.task_id, ctx)
        return await set_push(self.runtime.store, self.push, request, ctx, record)

    async def get_task_push_notification_config(
        self, request: GetTaskPushNotificationConfigRequest, ctx: CallContext
    ) -> TaskPushNotificationConfig:
        await self._record(request.task_id, ctx)
        return await get_push(self.runtime.store, request)

    async def list_task_push_notification_configs(
        self, request: ListTaskPushNotificationConfigsRequest, ctx: CallContext
    ) -> ListTaskPushNotificationConfigsResponse:
        await self._record(request.task_id, ctx)
        return await list_push(self.runtime.store, request)

    async def delete_task_push_notification_config(
        self, request: DeleteTaskPushNotificationConfigRequest, ctx: CallContext
    ) -> Empty:
        await self._record(request.task_id, ctx)
        await self.runtime.store.delete_push_config(request.task_id, request.id)
        return Empty()

    async def render_push(self, task_id: str, version: str) -> Any:
        """The body of a push about ``task_id``: a 1.0 ``StreamResponse`` holding
        the task, or for a 0.3 caller the 0.3 task object."""
        task = (await self._task(task_id)).to_json()
        return compat_methods.result_to_v03("GetTask", task) if version == "0.3" else {"task": task}

    # -- rendering ---------------------------------------------------------------

    async def _record(self, task_id: str, ctx: CallContext | None = None) -> ExecutionRecord:
        """The task's record; with ``ctx``, only if that caller may use it."""
        record = await self.runtime.store.get(task_id)
        if (
            record is not None
            and ctx is not None
            and not self.policy.may_see(record.caller, ctx.caller)
        ):
            log.warning("denied: %s may not use task %s", ctx.caller or "anonymous", task_id)
            record = None
        if record is None:
            raise TaskNotFound(f"no task {task_id!r}")
        return record

    async def _task(
        self, task_id: str, *, history_length: int | None = None, include_artifacts: bool = True
    ) -> Task:
        record = await self._record(task_id)
        events = await self._events(task_id)
        return await self._render(
            record, events, history_length=history_length, include_artifacts=include_artifacts
        )

    async def _events(self, task_id: str) -> list[Event]:
        """The task's events that rendering reads (the store reads no others)."""
        found = await self.runtime.store.events_of([task_id], TASK_EVENTS)
        return [to_event(e) for e in found[task_id]]

    async def _render(
        self,
        record: ExecutionRecord,
        events: list[Event],
        *,
        history_length: int | None = None,
        include_artifacts: bool = True,
    ) -> Task:
        await faults.reached("task_render", record)
        waits = await self.runtime.store.waits(record.id) if record.status == "waiting" else []
        if any(w.kind in ASKING_KINDS for w in waits):
            # The log was read before the waits: a question asked in between
            # is missing from it. Read it again, now as new as the waits.
            events = await self._events(record.id)
        return render_task(
            record,
            events,
            waits,
            history_length=history_length,
            include_artifacts=include_artifacts,
        )

"""A2A operations on a node's executions (implements :class:`TaskHandler`).

* ``SendMessage`` without ``taskId`` starts the skill's workflow (the skill
  named in the message's or request's metadata as ``skill``, else the
  default one) with the state the message fills; with ``taskId`` it answers
  the task's wait for input. It blocks until the task is terminal or
  interrupted, unless ``returnImmediately``.
* ``SendStreamingMessage`` starts or continues a task the same way without
  waiting, and streams it (:mod:`agent_node.a2a.streaming`): first the task
  as accepted (SUBMITTED, or WORKING for a follow-up), then its changes,
  until it is terminal or interrupted. ``SubscribeToTask`` streams a task
  that is not terminal, from how it is now until it is terminal.
* A send with an ``Idempotency-Key`` is deduplicated on (caller, key): the
  task id is derived from both, and a repeat finds the task already there.
  ``messageId`` is never a dedupe key (clients and the TCK reuse them).
* A client's ``contextId`` is kept; without one the task gets a new context.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator, Mapping

from agent_node.a2a.errors import (
    InvalidParams,
    TaskNotCancelable,
    TaskNotFound,
    UnsupportedOperation,
)
from agent_node.a2a.handler import CallContext
from agent_node.a2a.models import (
    CancelTaskRequest,
    GetTaskRequest,
    ListTasksRequest,
    ListTasksResponse,
    Message,
    SendMessageRequest,
    SendMessageResponse,
    StreamResponse,
    SubscribeToTaskRequest,
    Task,
    TaskState,
    TaskStatus,
)
from agent_node.a2a.streaming import POLL_SECONDS, Follower, Watches
from agent_node.a2a.taskview import (
    MESSAGE_EVENT,
    answer_from_message,
    render_task,
    reply_message,
    state_from_message,
)
from agent_node.errors import InvalidSignal
from agent_node.results import to_event
from agent_node.runtime import Runtime
from agent_node.store.records import TERMINAL, ExecutionRecord
from agent_node.workflow.compiled import CompiledWorkflow
from agent_node.workflow.ir import INPUT_EVENT

__all__ = ["TaskService"]

_IDEMPOTENCY = uuid.UUID("6f1d0c8e-52a4-4d43-9a55-2f6c1c9a4b21")
_STATUS_FILTER = {
    "TASK_STATE_SUBMITTED": ["pending"],
    "TASK_STATE_WORKING": ["running", "waiting"],
    "TASK_STATE_INPUT_REQUIRED": ["waiting"],
    "TASK_STATE_COMPLETED": ["completed"],
    "TASK_STATE_FAILED": ["failed"],
    "TASK_STATE_CANCELED": ["canceled"],
}


class TaskService:
    def __init__(
        self,
        runtime: Runtime,
        skills: Mapping[str, CompiledWorkflow],
        default_skill: str | None = None,
        *,
        poll: float = POLL_SECONDS,
    ) -> None:
        self.runtime = runtime
        self.skills = dict(skills)
        self.default_skill = default_skill or (next(iter(self.skills)) if self.skills else None)
        #: The tasks being streamed; ``poll`` is their safety poll, in seconds.
        self.watches = Watches(runtime.store, self._task, poll)

    # -- SendMessage -------------------------------------------------------------

    async def send_message(
        self, request: SendMessageRequest, ctx: CallContext
    ) -> SendMessageResponse:
        message = request.message
        if message.task_id:
            task_id = await self._continue(message)
        else:
            task_id = await self._start(request, ctx)
        config = request.configuration
        if not (config and config.return_immediately):
            await self.runtime.engine.wait(task_id)
            reply = await self._reply(task_id)
            if reply is not None:
                return SendMessageResponse(message=reply)
        history = config.history_length if config else None
        return SendMessageResponse(task=await self._task(task_id, history_length=history))

    async def _reply(self, task_id: str) -> Message | None:
        record = await self._record(task_id)
        if record.status != "completed":
            return None
        return reply_message(
            record, [to_event(e) for e in await self.runtime.store.events(task_id)]
        )

    async def _start(self, request: SendMessageRequest, ctx: CallContext) -> str:
        message = request.message
        workflow = self._skill_of(message, request.metadata)
        state = state_from_message(workflow.state_model, message)
        task_id = _task_id(ctx)
        context_id = message.context_id or str(uuid.uuid4())
        received = message.model_copy(update={"task_id": task_id, "context_id": context_id})
        self.runtime.workflows.add(workflow)
        await self.runtime.engine.submit(
            workflow,
            state,
            execution_id=task_id,
            context_id=context_id,
            notes=[(MESSAGE_EVENT, received.to_json())],
        )
        return task_id

    async def _continue(self, message: Message) -> str:
        task_id = message.task_id or ""
        record = await self._record(task_id)
        if record.status in TERMINAL:
            raise UnsupportedOperation(
                f"task {task_id} is {record.status}; it takes no more messages"
            )
        context_id = record.context_id or record.id
        if message.context_id and message.context_id != context_id:
            raise InvalidParams(f"task {task_id} belongs to context {context_id!r}")
        received = message.model_copy(update={"context_id": context_id})
        answer = answer_from_message(message)
        if await self._answer_field(record) == "message":
            answer = received.to_json()
        try:
            await self.runtime.engine.control.signal(
                task_id,
                INPUT_EVENT,
                answer,
                notes=[(MESSAGE_EVENT, received.to_json())],
            )
        except InvalidSignal as exc:
            raise UnsupportedOperation(f"task {task_id} is not asking for input ({exc})") from None
        self.runtime.engine.drive(task_id)
        return task_id

    async def _answer_field(self, record: ExecutionRecord) -> str | None:
        """The state field the task's input wait writes its answer to."""
        workflow = next((w for w in self.skills.values() if w.ir.id == record.workflow_id), None)
        if workflow is None:
            return None
        for wait in await self.runtime.store.waits(record.id):
            spec = workflow.ir.nodes.get(wait.node)
            if wait.kind == "input" and spec is not None:
                return getattr(spec, "output", None)
        return None

    def _skill_of(
        self, message: Message, metadata: Mapping[str, object] | None
    ) -> CompiledWorkflow:
        named = (message.metadata or {}).get("skill") or (metadata or {}).get("skill")
        skill = named if isinstance(named, str) else self.default_skill
        if skill is None or skill not in self.skills:
            known = ", ".join(sorted(self.skills)) or "none"
            raise InvalidParams(f"no skill {skill!r} here (skills: {known})")
        return self.skills[skill]

    # -- SendStreamingMessage, SubscribeToTask -----------------------------------

    async def send_streaming_message(
        self, request: SendMessageRequest, ctx: CallContext
    ) -> AsyncIterator[StreamResponse]:
        message = request.message
        if message.task_id:
            task_id, accepted = await self._continue(message), TaskState.WORKING
        else:
            task_id, accepted = await self._start(request, ctx), TaskState.SUBMITTED
        config = request.configuration
        task = await self._task(task_id, history_length=config.history_length if config else None)
        status = TaskStatus(state=accepted, timestamp=task.status.timestamp)
        base = task.model_copy(update={"status": status, "artifacts": None})
        return Follower(await self.watches.private(task_id, base), at_interrupt=True)

    async def subscribe_to_task(
        self, request: SubscribeToTaskRequest, ctx: CallContext
    ) -> AsyncIterator[StreamResponse]:
        record = await self._record(request.id)
        if record.status in TERMINAL:
            raise UnsupportedOperation(
                f"task {request.id} is {record.status}; a terminal task cannot be subscribed to"
            )
        return Follower(await self.watches.shared(request.id), at_interrupt=False)

    # -- GetTask, ListTasks, CancelTask -------------------------------------------

    async def get_task(self, request: GetTaskRequest, ctx: CallContext) -> Task:
        return await self._task(request.id, history_length=request.history_length)

    async def list_tasks(self, request: ListTasksRequest, ctx: CallContext) -> ListTasksResponse:
        size = request.page_size or 50
        offset = _offset(request.page_token)
        status = _STATUS_FILTER.get(str(request.status)) if request.status else None
        records = await self.runtime.store.list_executions(
            status=status, context_id=request.context_id, limit=size + 1, offset=offset
        )
        page = records[:size]
        tasks = [
            await self._task(
                r.id,
                history_length=request.history_length,
                include_artifacts=bool(request.include_artifacts),
            )
            for r in page
        ]
        more = len(records) > size
        token = _token(offset + size) if more else ""
        total = await self.runtime.store.count_executions(
            status=status, context_id=request.context_id
        )
        return ListTasksResponse(
            tasks=tasks, next_page_token=token, page_size=size, total_size=total
        )

    async def cancel_task(self, request: CancelTaskRequest, ctx: CallContext) -> Task:
        record = await self._record(request.id)
        if record.status in TERMINAL:
            raise TaskNotCancelable(f"task {request.id} is {record.status}")
        await self.runtime.engine.control.cancel(request.id, "canceled by the caller")
        return await self._task(request.id)

    # -- rendering ---------------------------------------------------------------

    async def _record(self, task_id: str) -> ExecutionRecord:
        record = await self.runtime.store.get(task_id)
        if record is None:
            raise TaskNotFound(f"no task {task_id!r}")
        return record

    async def _task(
        self, task_id: str, *, history_length: int | None = None, include_artifacts: bool = True
    ) -> Task:
        record = await self._record(task_id)
        store = self.runtime.store
        events = [to_event(e) for e in await store.events(task_id)]
        waits = await store.waits(task_id) if record.status == "waiting" else []
        return render_task(
            record,
            events,
            waits,
            history_length=history_length,
            include_artifacts=include_artifacts,
        )


def _task_id(ctx: CallContext) -> str:
    if ctx.idempotency_key is None:
        return str(uuid.uuid4())
    return str(uuid.uuid5(_IDEMPOTENCY, f"{ctx.caller or ''}\0{ctx.idempotency_key}"))


def _offset(token: str | None) -> int:
    if not token:
        return 0
    try:
        value = int(base64.urlsafe_b64decode(token.encode()).decode())
    except (ValueError, UnicodeDecodeError):
        raise InvalidParams("pageToken is not one this agent issued") from None
    if value < 0:
        raise InvalidParams("pageToken is not one this agent issued")
    return value


def _token(offset: int) -> str:
    return base64.urlsafe_b64encode(str(offset).encode()).decode()

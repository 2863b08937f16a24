"""A small in-memory :class:`~agent_node.a2a.server.handler.TaskHandler` for transport tests.

It keeps tasks in a dict and records every call. A message's first text part
steers it: ``raise:<code>`` raises that A2A error, ``crash`` raises a
``ValueError`` whose text must never reach the client, ``reply`` answers
with a Message instead of a Task. Errors are raised before anything is stored.
"""

from __future__ import annotations

import itertools

from agent_node.a2a.protocol.errors import (
    A2AError,
    TaskNotCancelable,
    TaskNotFound,
    UnsupportedOperation,
)
from agent_node.a2a.protocol.models import (
    CancelTaskRequest,
    GetTaskRequest,
    ListTasksRequest,
    ListTasksResponse,
    Message,
    Part,
    Role,
    SendMessageRequest,
    SendMessageResponse,
    Task,
    TaskState,
    TaskStatus,
    WireModel,
)
from agent_node.a2a.server.handler import CallContext

SECRET = "secret-detail-in-exception-text"

_RAISES: dict[str, type[A2AError]] = {
    "-32001": TaskNotFound,
    "-32002": TaskNotCancelable,
    "-32004": UnsupportedOperation,
}


class FakeHandler:
    @classmethod
    def with_working_task(cls) -> FakeHandler:
        """A handler holding one task, ``t1`` (context ``c1``), working."""
        handler = cls()
        handler.tasks["t1"] = Task(
            id="t1", context_id="c1", status=TaskStatus(state=TaskState.WORKING)
        )
        return handler

    def __init__(self) -> None:
        self.tasks: dict[str, Task] = {}
        self.calls: list[tuple[str, WireModel, CallContext]] = []
        self._ids = itertools.count(1)

    def snapshot(self) -> dict[str, object]:
        return {task_id: task.to_json() for task_id, task in self.tasks.items()}

    async def send_message(
        self, request: SendMessageRequest, ctx: CallContext
    ) -> SendMessageResponse:
        self.calls.append(("send_message", request, ctx))
        message = request.message
        text = message.parts[0].text or ""
        _steer(text)
        if text == "reply":
            reply = Message(message_id="m-reply", role=Role.AGENT, parts=[Part(text="hi")])
            return SendMessageResponse(message=reply)
        if message.task_id is not None:
            task = self._task(message.task_id)
            if task.status.state.is_terminal:
                raise UnsupportedOperation("task is terminal")
        task_id = f"task-{next(self._ids)}"
        done = Message(message_id=f"m-{task_id}", role=Role.AGENT, parts=[Part(text="done")])
        task = Task(
            id=task_id,
            context_id=message.context_id or f"ctx-{task_id}",
            status=TaskStatus(state=TaskState.COMPLETED, message=done),
            history=[message],
        )
        self.tasks[task_id] = task
        return SendMessageResponse(task=task)

    async def get_task(self, request: GetTaskRequest, ctx: CallContext) -> Task:
        self.calls.append(("get_task", request, ctx))
        return self._task(request.id)

    async def list_tasks(self, request: ListTasksRequest, ctx: CallContext) -> ListTasksResponse:
        self.calls.append(("list_tasks", request, ctx))
        tasks = [
            t
            for t in self.tasks.values()
            if request.context_id is None or t.context_id == request.context_id
        ]
        return ListTasksResponse(
            tasks=tasks, next_page_token="", page_size=len(tasks), total_size=len(tasks)
        )

    async def cancel_task(self, request: CancelTaskRequest, ctx: CallContext) -> Task:
        self.calls.append(("cancel_task", request, ctx))
        task = self._task(request.id)
        if task.status.state.is_terminal:
            raise TaskNotCancelable()
        canceled = task.model_copy(update={"status": TaskStatus(state=TaskState.CANCELED)})
        self.tasks[task.id] = canceled
        return canceled

    def _task(self, task_id: str) -> Task:
        task = self.tasks.get(task_id)
        if task is None:
            raise TaskNotFound(metadata={"taskId": task_id})
        return task


def _steer(text: str) -> None:
    if text == "crash":
        raise ValueError(SECRET)
    if text.startswith("raise:") and text[6:] in _RAISES:
        raise _RAISES[text[6:]]()

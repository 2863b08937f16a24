"""What the JSON-RPC transport calls: one method per A2A operation.

The transport (:mod:`agent_node.a2a.server.jsonrpc`) parses and validates a
request into the 1.0 model, calls the matching method here, and renders the
result (or the :class:`~agent_node.a2a.protocol.errors.A2AError` raised) in the
caller's protocol version. Implementations never see JSON-RPC or 0.3.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal, Protocol

from agent_node.a2a.protocol.models import (
    CancelTaskRequest,
    GetTaskRequest,
    ListTasksRequest,
    ListTasksResponse,
    SendMessageRequest,
    SendMessageResponse,
    StreamResponse,
    SubscribeToTaskRequest,
    Task,
)

__all__ = ["CallContext", "TaskHandler"]


@dataclass(frozen=True)
class CallContext:
    """Who calls, and how."""

    #: The caller's identity (its certificate's URI SAN, later); None when unknown.
    caller: str | None = None
    #: The ``Idempotency-Key`` header: a repeated send returns the same task.
    idempotency_key: str | None = None
    version: Literal["1.0", "0.3"] = "1.0"
    #: W3C trace context, carried on to the workflow.
    traceparent: str | None = None
    extensions: tuple[str, ...] = field(default_factory=tuple)


class TaskHandler(Protocol):
    async def send_message(
        self, request: SendMessageRequest, ctx: CallContext
    ) -> SendMessageResponse:
        """Start a task (or continue one: ``message.taskId``). Blocks until the
        task is terminal or interrupted unless ``returnImmediately``."""
        ...

    async def send_streaming_message(
        self, request: SendMessageRequest, ctx: CallContext
    ) -> AsyncIterator[StreamResponse]:
        """Start or continue a task as :meth:`send_message` does, without
        waiting; the events: the task, then its status and artifact updates,
        ending after a terminal or interrupted state. Errors found before the
        stream exists (unknown task, bad params) are raised by the call itself;
        closing the iterator early stops following the task. Optional: a
        handler without it answers UnsupportedOperation."""
        ...

    async def subscribe_to_task(
        self, request: SubscribeToTaskRequest, ctx: CallContext
    ) -> AsyncIterator[StreamResponse]:
        """The events of a task that is not terminal (else UnsupportedOperation):
        the task as it is now, then its updates, ending after a terminal state.
        Optional, like :meth:`send_streaming_message`."""
        ...

    async def get_task(self, request: GetTaskRequest, ctx: CallContext) -> Task: ...

    async def list_tasks(
        self, request: ListTasksRequest, ctx: CallContext
    ) -> ListTasksResponse: ...

    async def cancel_task(self, request: CancelTaskRequest, ctx: CallContext) -> Task: ...

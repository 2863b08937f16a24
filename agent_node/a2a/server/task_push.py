"""Push notification configs of tasks, stored beside them.

The four ``…PushNotificationConfig`` methods, and ``taskPushNotificationConfig``
in a send, store configs that :class:`~agent_node.a2a.server.push.PushSender`
delivers. A config set with a new task gets every change of it; one set
later gets the changes from then on. The config id defaults to the task
id; a task has at most :data:`MAX_PUSH_CONFIGS`. Whether the caller may use
the task is checked before any of these is called.
"""

from __future__ import annotations

import json
import time

from agent_node.a2a.protocol.errors import InvalidParams, PushNotificationNotSupported, TaskNotFound
from agent_node.a2a.protocol.models import (
    GetTaskPushNotificationConfigRequest,
    ListTaskPushNotificationConfigsResponse,
    SendMessageRequest,
    TaskPushNotificationConfig,
)
from agent_node.a2a.server.handler import CallContext
from agent_node.a2a.server.push import PushSender, check_push_url
from agent_node.store.base import Store
from agent_node.store.records import TERMINAL, ExecutionRecord, PushConfigRecord

__all__ = [
    "MAX_PUSH_CONFIGS",
    "MAX_PUSH_CONFIG_BYTES",
    "get_push",
    "list_push",
    "push_config_of",
    "set_push",
]

#: Push configs one task may have.
MAX_PUSH_CONFIGS = 10
#: The largest push config accepted, as JSON (URL, token and credentials).
MAX_PUSH_CONFIG_BYTES = 8192


def push_config_of(request: SendMessageRequest) -> TaskPushNotificationConfig | None:
    """The push config a send carries, if any."""
    config = request.configuration
    return config.task_push_notification_config if config else None


async def set_push(
    store: Store,
    push: PushSender | None,
    config: TaskPushNotificationConfig,
    task_id: str,
    ctx: CallContext,
    record: ExecutionRecord | None,
) -> TaskPushNotificationConfig:
    """Store a push config of ``task_id``: from the start for a new task
    (``record`` None), else from the task's current event on."""
    if push is None:
        raise PushNotificationNotSupported()
    check_push_url(config.url, push.allow)
    config = config.model_copy(update={"task_id": task_id, "id": config.id or task_id})
    document = json.dumps(config.to_json(), ensure_ascii=False, separators=(",", ":"))
    if len(document.encode("utf-8")) > MAX_PUSH_CONFIG_BYTES:
        raise InvalidParams(f"push config larger than {MAX_PUSH_CONFIG_BYTES} bytes")
    existing = {c.id for c in await store.push_configs(task_id)} if record else set()
    if config.id not in existing and len(existing) >= MAX_PUSH_CONFIGS:
        raise InvalidParams(
            f"task {task_id} has {MAX_PUSH_CONFIGS} push configs already; delete one first"
        )
    settled = record is not None and record.status in TERMINAL
    await store.put_push_config(
        PushConfigRecord(
            task_id=task_id,
            id=config.id or task_id,
            config=document,
            version=ctx.version,
            caller=ctx.caller,
            created_at=time.time(),
            pushed_seq=record.last_seq if record else 0,
            settled=settled,
        )
    )
    if not settled:
        push.watch(task_id)
    return config


async def get_push(
    store: Store, request: GetTaskPushNotificationConfigRequest
) -> TaskPushNotificationConfig:
    for stored in await store.push_configs(request.task_id):
        if stored.id == request.id:
            return TaskPushNotificationConfig.model_validate_json(stored.config)
    raise TaskNotFound(f"task {request.task_id} has no push notification config {request.id!r}")


async def list_push(store: Store, task_id: str) -> ListTaskPushNotificationConfigsResponse:
    stored = await store.push_configs(task_id)
    configs = [TaskPushNotificationConfig.model_validate_json(c.config) for c in stored]
    # At most MAX_PUSH_CONFIGS: always one page.
    return ListTaskPushNotificationConfigsResponse(configs=configs, next_page_token="")

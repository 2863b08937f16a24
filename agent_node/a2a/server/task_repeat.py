"""A send repeated with its ``Idempotency-Key``: the same request, or not.

A key names one task per caller (:func:`~.task_origin.task_id_of`). A
repeat of the request that made it — a retry after a timeout, a crash, a
lost answer — finds that task. The same key with another request is a
client's mistake (a key reused by a bug, two requests given one key), and
answering it with the first task would tell the caller its second request
was done: it is refused with :class:`IdempotencyKeyReused` (-32034, HTTP 422,
draft-ietf-httpapi-idempotency-key-header §2.7), naming the key's task.

What must match is what makes the task: the skill, and the message as its
first send recorded it — role, parts, metadata, extensions, referenced
tasks, and the ``contextId`` when the repeat names one. ``messageId`` is not
compared (a client's retry layer may mint a new one for the same request),
nor is how the caller asked to be answered (``configuration``: blocking or
not, history length, push config): a retry may ask differently.
"""

from __future__ import annotations

import json
from typing import Any

from agent_node.a2a.protocol.errors import IdempotencyKeyReused
from agent_node.a2a.protocol.models import Message
from agent_node.a2a.server.taskview import MESSAGE_EVENT
from agent_node.store.base import Store
from agent_node.store.records import ExecutionRecord

__all__ = ["check_repeat"]

#: What a message's record holds that a repeat may change.
_NOT_COMPARED = ("messageId", "taskId", "contextId")


async def check_repeat(
    store: Store, task_id: str, workflow_id: str, message: Message, record: ExecutionRecord | None
) -> None:
    """Raise :class:`IdempotencyKeyReused` unless ``message``, sent for
    workflow ``workflow_id``, repeats the send that made task ``task_id``
    (``record``, else read)."""
    record = record or await store.get(task_id)
    if record is None:  # gone since (pruned): nothing to compare with
        return
    found = await store.events_of([task_id], (MESSAGE_EVENT,))
    first = next((e.data for e in found.get(task_id, []) if e.data), None)
    made: dict[str, Any] = json.loads(first) if first else {}
    asked = message.to_json()
    differs = record.workflow_id != workflow_id
    if message.context_id is not None and made.get("contextId") != message.context_id:
        differs = True
    if not differs and _compared(made) == _compared(asked):
        return
    raise IdempotencyKeyReused(
        f"this Idempotency-Key made task {task_id} with another message or skill; "
        "send a new key for a new request",
        metadata={"taskId": task_id},
    )


def _compared(message: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in message.items() if key not in _NOT_COMPARED}

"""What a new task may know of its conversation: its context's earlier tasks
and the tasks its message references.

A skill whose state has a field named ``context`` gets, when a task starts::

    {"id": "<contextId>",
     "tasks": [{"id", "state", "messages": [Message…], "artifacts": [Artifact…]}, …],
     "references": [{"id", "state", "artifacts": [Artifact…]}, …]}

``tasks`` are the earlier tasks of the same ``contextId`` (A2A §3.4.3,
context inheritance), oldest first: the newest :data:`MAX_CONTEXT_TASKS`
of them, fewer when their JSON would pass :data:`MAX_CONTEXT_BYTES` (the
oldest are left out first). ``references`` are the tasks the message names
in ``referenceTaskIds``, with their artifacts. Both hold only the caller's
own tasks: a context id or a task id does not open another caller's
conversation (an operator is a caller like any other here). Without
identities (plain HTTP) every task is the caller's.

A reference to a task that does not exist, or is not the caller's, is the
caller's mistake: InvalidParams (-32602), the same answer for both, so a
task's existence is not disclosed; so are more than :data:`MAX_REFERENCES`.
They are checked on every send, follow-ups included (a follow-up's message
is the answer to a wait: it carries its references as they are). A skill
without a ``context`` field costs no reads.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from agent_node.a2a.protocol.errors import InvalidParams
from agent_node.a2a.protocol.models import Task
from agent_node.security.authz import Policy
from agent_node.store.base import Store
from agent_node.store.records import ExecutionRecord

__all__ = [
    "CONTEXT_FIELD",
    "MAX_CONTEXT_BYTES",
    "MAX_CONTEXT_TASKS",
    "MAX_REFERENCES",
    "context_of",
    "referenced",
]

#: The state field a skill declares to be told its context.
CONTEXT_FIELD = "context"
#: Earlier tasks of the context given at most.
MAX_CONTEXT_TASKS = 10
#: The JSON size the earlier tasks are kept under.
MAX_CONTEXT_BYTES = 64 * 1024
#: Tasks one message may reference.
MAX_REFERENCES = 16

#: Renders a task the way a caller gets it (history and artifacts).
Read = Callable[[str], Awaitable[Task]]


def _owner(policy: Policy, caller: str | None) -> str | None:
    """The caller whose tasks these may be (None: anyone's, without identities)."""
    return caller or "" if policy.enforced else None


async def referenced(
    store: Store, policy: Policy, ids: Sequence[str], caller: str | None
) -> list[ExecutionRecord]:
    """The records of the tasks ``ids`` reference (see the module doc)."""
    if len(ids) > MAX_REFERENCES:
        raise InvalidParams(f"referenceTaskIds: {len(ids)} tasks, limit {MAX_REFERENCES}")
    owner = _owner(policy, caller)
    records: list[ExecutionRecord] = []
    for task_id in dict.fromkeys(ids):
        record = await store.get(task_id)
        if record is None or (owner is not None and record.caller != owner):
            raise InvalidParams(f"referenceTaskIds: no task {task_id!r} of yours")
        records.append(record)
    return records


async def context_of(
    store: Store,
    policy: Policy,
    read: Read,
    *,
    context_id: str,
    caller: str | None,
    references: Sequence[ExecutionRecord],
    known: bool,
) -> dict[str, Any]:
    """The ``context`` of a task starting in ``context_id`` (``known``: a
    context the client named, which may have earlier tasks)."""
    earlier: list[dict[str, Any]] = []
    if known:
        records = await store.list_executions(
            context_id=context_id, caller=_owner(policy, caller), limit=MAX_CONTEXT_TASKS
        )
        size = 0
        for record in records:  # newest first
            task = await read(record.id)
            entry = {
                "id": task.id,
                "state": str(task.status.state),
                "messages": [m.to_json() for m in task.history or []],
                "artifacts": [a.to_json() for a in task.artifacts or []],
            }
            size += len(json.dumps(entry, ensure_ascii=False))
            if size > MAX_CONTEXT_BYTES:
                break
            earlier.append(entry)
        earlier.reverse()
    cited = []
    for record in references:
        task = await read(record.id)
        artifacts = [a.to_json() for a in task.artifacts or []]
        cited.append({"id": task.id, "state": str(task.status.state), "artifacts": artifacts})
    return {"id": context_id, "tasks": earlier, "references": cited}

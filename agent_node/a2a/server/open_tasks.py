"""The cap on a caller's open tasks (``limits.max_open_tasks_per_caller``).

A task stays open while it is submitted, working, or parked asking its
caller for input, however long that takes, and retention prunes finished
tasks only: without a cap, one caller could park tasks until the store is
full. So a send that would make a caller's open tasks one more than the cap
is refused before anything is made, with :class:`TooManyOpenTasks` (the
family of the per-caller request cap: JSON-RPC -32032, HTTP 429, gRPC
RESOURCE_EXHAUSTED), saying how many are open and how to close some. It
has no ``Retry-After``: time alone closes none.

The count is the store's (:meth:`~agent_node.store.base.Store.count_open`,
on an index of the unfinished executions that have a caller), so it holds
across restarts and every replica of one database sees the same one; it
reads at most the cap's number of that caller's entries, and a caller with
a few open tasks costs one short indexed read per new task. Sends racing
at the cap may pass it by as many as are in flight at once
(``limits.max_concurrent_per_caller`` bounds those). A caller without an
identity (``--insecure-dev``) is not counted: its tasks carry no caller.
Follow-ups and repeated sends make no task and are never refused here.
"""

from __future__ import annotations

import logging

from agent_node.a2a.protocol.errors import TooManyRequests
from agent_node.store.base import Store

__all__ = ["TooManyOpenTasks", "check_open_tasks"]

#: The task service's log: a refused start is one of its lines.
log = logging.getLogger("agent_node.a2a.server.tasks")


class TooManyOpenTasks(TooManyRequests):
    """The caller has as many open tasks as the node keeps for one caller;
    its metadata: ``openTasks`` and ``limit``."""


async def check_open_tasks(store: Store, caller: str | None, cap: int) -> None:
    """Refuse a new task of ``caller`` if it has ``cap`` open ones (0: no cap)."""
    if not cap or caller is None:
        return
    held = await store.count_open(caller, cap)
    if held >= cap:
        log.warning("refused: %s has %d open tasks", caller, held)
        raise TooManyOpenTasks(
            f"{caller} has {held} open tasks, the most this agent keeps for one caller;"
            " close some first: cancel them (CancelTask) or answer those that ask for"
            " input (ListTasks lists them), then send again",
            metadata={"openTasks": str(held), "limit": str(cap)},
        )

"""A failed attempt, in the transaction that records it: a retry scheduled,
a throttled visit parked, or the execution's end.

* :func:`fail_node` — ``node_failed`` (the error, its type, the retry's time,
  a python step's traceback, the usage of the model calls it made: the
  error's, which the runner fills from what the executor reported while it
  ran when the error has none, :func:`spent_usage`), then the work row due
  again at ``retry_at``, or the execution failed;
* :func:`throttle_node` — a rate-limited visit (:class:`~agent_node.errors.Throttled`):
  ``node_failed`` marked ``throttled`` with the wait, and its work row due
  after it with the attempt given back (the retry policy counts these apart,
  :func:`throttled_count`);
* :func:`leave_node` — a visit this process is not equipped for
  (:class:`~agent_node.errors.NotEquipped`): its work row unleased and
  due later, the attempt given back, for a process that is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from agent_node.errors import AgentNodeError
from agent_node.store.records import EventRecord, WorkItem
from agent_node.store.txn import Txn

from .executor import Finish
from .plans import dumps, finish

__all__ = [
    "described",
    "fail_node",
    "leave_node",
    "spent_usage",
    "throttle_node",
    "throttled_count",
]


def fail_node(
    txn: Txn,
    item: WorkItem,
    error: BaseException,
    retry_at: float | None,
    duration: float,
    trace: str | None = None,
) -> None:
    """Record a failed attempt: schedule the retry, or fail the execution."""
    message = str(error) or type(error).__name__
    data = {
        "error": message,
        "type": type(error).__name__,
        "retry_at": retry_at,
        "duration": round(duration, 6),
    }
    if trace is not None:
        data["traceback"] = trace
    if (usage := getattr(error, "usage", None)) is not None:
        data["usage"] = usage  # calls made before it failed count all the same
    txn.event("node_failed", item.node, item.visit, item.attempt, dumps(data))
    if retry_at is not None:
        txn.put_work(
            WorkItem(
                item.execution_id,
                item.node,
                item.visit,
                item.attempt,
                retry_at,
                None,
                None,
                item.fence,
            )
        )
        return
    txn.delete_work(item.node, item.visit)
    finish(txn, Finish("failed", f"node {item.node!r} failed: {described(error)}"))


def described(error: BaseException) -> str:
    """An error as a failed execution says it: our own errors by the message
    written for users; any other as Python prints it, ``KeyError: 'api_key'``
    (a step's ``KeyError`` read ``failed: 'api_key'``, its type lost)."""
    message = str(error)
    if isinstance(error, AgentNodeError):
        return message or type(error).__name__
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def throttle_node(
    txn: Txn, item: WorkItem, error: BaseException, retry_at: float, wait: float, duration: float
) -> None:
    """Park a throttled visit until ``retry_at``: a ``node_failed`` marked
    ``throttled``, and its work row due then with the attempt given back
    (the next claim runs the same attempt number again)."""
    data = {
        "error": str(error) or type(error).__name__,
        "type": type(error).__name__,
        "retry_at": retry_at,
        "throttled": True,
        "wait": round(wait, 3),
        "duration": round(duration, 6),
    }
    if (usage := getattr(error, "usage", None)) is not None:
        data["usage"] = usage
    txn.event("node_failed", item.node, item.visit, item.attempt, dumps(data))
    attempt = max(0, item.attempt - 1)
    parked = WorkItem(item.execution_id, item.node, item.visit, attempt, retry_at, None, None, 0)
    parked.fence = item.fence
    txn.put_work(parked)


def spent_usage(
    sources: Iterable[Callable[[], Mapping[str, Any] | None]],
) -> dict[str, Any] | None:
    """The sum of what an attempt's sources of spending say they used
    (:attr:`~.executor.NodeContext.spending`), key by key: numbers added
    (None where each is None), flags or-ed, anything else the first's;
    None when they say nothing or no call was made."""
    total: dict[str, Any] = {}
    for source in sources:
        for key, value in (source() or {}).items():
            total[key] = _added(total.get(key), value) if key in total else value
    if not total or not total.get("calls", 1):
        return None
    return {k: round(v, 8) if isinstance(v, float) else v for k, v in total.items()}


def _added(before: Any, value: Any) -> Any:
    if isinstance(before, bool) or isinstance(value, bool):
        return bool(before) or bool(value)
    if isinstance(before, int | float) and isinstance(value, int | float):
        return before + value
    return before if before is not None else value


def leave_node(txn: Txn, item: WorkItem, available_at: float) -> None:
    """Give back a visit this process is not equipped for: its work row
    unleased, due at ``available_at``, the attempt given back (nothing of
    it ran: no event)."""
    attempt = max(0, item.attempt - 1)
    left = WorkItem(item.execution_id, item.node, item.visit, attempt, available_at, None, None, 0)
    left.fence = item.fence
    txn.put_work(left)


def throttled_count(events: Sequence[EventRecord], node: str, visit: int) -> int:
    """How many times ``node``'s visit ``visit`` parked throttled, from its log."""
    return sum(
        1
        for event in events
        if event.kind == "node_failed"
        and event.node == node
        and event.visit == visit
        and '"throttled":true' in (event.data or "")
    )

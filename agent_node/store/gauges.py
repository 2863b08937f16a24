"""What a store holds right now, for metrics: how much work is ready and how
long the oldest has waited, what is parked, and what is owed to callers.

Every figure comes from the live tables (work, waits, delegations, push
configs: rows that go away when done) or from an index (executions by a
non-terminal status), so a scrape costs the same with a million finished
executions as with none.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["GAUGE_QUERIES", "StoreGauges", "count_by", "fold_gauges"]


@dataclass(slots=True)
class StoreGauges:
    #: Node visits ready to be claimed (a lapsed lease's included), and when
    #: the oldest became claimable.
    ready: int = 0
    oldest_ready_at: float | None = None
    #: Node visits leased (running somewhere) whose lease still holds.
    leased: int = 0
    #: Executions by status, non-terminal ones only.
    executions: dict[str, int] = field(default_factory=dict)
    #: Parked waits by kind (``event``, ``input``, ``delegation``, ``join``, …).
    waits: dict[str, int] = field(default_factory=dict)
    #: Delegations in flight by state.
    delegations: dict[str, int] = field(default_factory=dict)
    #: Push configs with a change not yet delivered, those whose last try
    #: failed, and when the oldest such change was made.
    pushes_due: int = 0
    pushes_failing: int = 0
    oldest_push_at: float | None = None


#: ``(name, SQL)``: ``{now}`` is the parameter placeholder of the dialect.
GAUGE_QUERIES: tuple[tuple[str, str], ...] = (
    # Ready: claimable now, a lease that lapsed (its process killed or gone)
    # included, since when it became so; leased: running somewhere.
    (
        "ready",
        "SELECT COUNT(*), MIN(CASE WHEN lease_owner IS NULL THEN available_at"
        " ELSE lease_expires_at END) FROM work WHERE available_at <= {now}"
        " AND (lease_owner IS NULL OR lease_expires_at < {now})",
    ),
    (
        "leased",
        "SELECT COUNT(*) FROM work WHERE lease_owner IS NOT NULL AND lease_expires_at >= {now}",
    ),
    (
        "executions",
        "SELECT status, COUNT(*) FROM executions"
        " WHERE status IN ('pending', 'running', 'waiting') GROUP BY status",
    ),
    ("waits", "SELECT kind, COUNT(*) FROM waits GROUP BY kind"),
    ("delegations", "SELECT state, COUNT(*) FROM delegations GROUP BY state"),
    (
        "pushes",
        "SELECT COUNT(*), SUM(CASE WHEN p.last_error IS NOT NULL THEN 1 ELSE 0 END),"
        " MIN(e.updated_at) FROM push_configs p JOIN executions e ON e.id = p.task_id"
        " WHERE p.settled = 0 AND e.last_seq > p.pushed_seq"
        " AND e.status IN ('waiting', 'completed', 'failed', 'canceled')",
    ),
)


def fold_gauges(results: Iterable[tuple[str, Sequence[Sequence[Any]]]]) -> StoreGauges:
    """The gauges from each query's rows."""
    gauges = StoreGauges()
    for name, rows in results:
        if name == "ready":
            gauges.ready, gauges.oldest_ready_at = int(rows[0][0] or 0), rows[0][1]
        elif name == "leased":
            gauges.leased = int(rows[0][0] or 0)
        elif name == "pushes":
            count, failing, oldest = rows[0]
            gauges.pushes_due, gauges.pushes_failing = int(count or 0), int(failing or 0)
            gauges.oldest_push_at = oldest
        else:
            grouped: dict[str, int] = getattr(gauges, name)
            grouped.update((str(key), int(count)) for key, count in rows)
    return gauges


def count_by(values: Iterable[Any], key: Callable[[Any], str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[key(value)] = counts.get(key(value), 0) + 1
    return counts

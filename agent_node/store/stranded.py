"""Executions with nothing left to move them: one page of the engine's sweep.

An execution is *stranded* when its status says it goes on (``waiting``,
``running``) while it has no work, no wait and no delegation row: no
worker, timer, signal or peer will ever change it. The engine never leaves
one so now, but an older release did (a parallel branch that stopped before
its join: :mod:`agent_node.engine.stranded` settles them at start).

:func:`stranded_page` reads the executions of one status a page at a time,
oldest first by ``(created_at, id)``, on an index (by status, where few
executions are in it: ``ix_executions_status``) — not through the finished
ones — and says which of the page are stranded: three probes of primary
keys per row. The caller goes on
from the page's last key, so a store of a million parked executions is read
a bounded page at a time, each a short read holding no lock.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent_node.store.listing import Fetch

__all__ = ["StrandedPage", "stranded_page"]

#: An execution's place in the sweep's order: ``(created_at, id)``.
Key = tuple[float, str]

_NOTHING_LEFT = (
    "NOT EXISTS (SELECT 1 FROM work w WHERE w.execution_id = e.id)"
    " AND NOT EXISTS (SELECT 1 FROM waits x WHERE x.execution_id = e.id)"
    " AND NOT EXISTS (SELECT 1 FROM delegations d WHERE d.execution_id = e.id)"
)
_PAGE = (
    "SELECT e.id, e.created_at, CASE WHEN {nothing_left} THEN 1 ELSE 0 END FROM"
    " (SELECT id, created_at FROM executions WHERE status = ?{after}"
    " ORDER BY created_at, id LIMIT ?) AS e ORDER BY e.created_at, e.id"
)
_FIRST = _PAGE.format(nothing_left=_NOTHING_LEFT, after="")
_NEXT = _PAGE.format(nothing_left=_NOTHING_LEFT, after=" AND (created_at, id) > (?, ?)")


@dataclass(frozen=True, slots=True)
class StrandedPage:
    """The stranded executions of one page, and where the next page starts
    (``None``: that was the last)."""

    ids: list[str]
    next: Key | None


async def stranded_page(fetch: Fetch, status: str, after: Key | None, limit: int) -> StrandedPage:
    """Of the first ``limit`` executions in ``status`` after ``after``, the
    stranded ones (see the module doc); ``?`` placeholders."""
    if after is None:
        rows = await fetch(_FIRST, (status, limit))
    else:
        rows = await fetch(_NEXT, (status, *after, limit))
    ids = [str(row[0]) for row in rows if row[2]]
    last = (float(rows[-1][1]), str(rows[-1][0])) if len(rows) >= limit else None
    return StrandedPage(ids, last)

"""``GET /ops/executions``: a page of a node's executions, newest first.

Filters the store applies itself (indexed or cheap): ``status`` (repeated
or comma-separated), ``workflow`` (or ``skill``, when the node says which
workflow each skill runs), ``caller``, ``context``, ``since`` (changed at
or after, epoch seconds). Two more the store's ``list_executions`` cannot
express yet, applied to the rows it returns: ``until`` (created at or
before) and ``q`` (an execution id, or the start of one). A request reads
at most :data:`SCAN_BUDGET` rows for them; when the page is not full by
then, it ends early with a cursor, and ``scanned`` says how far it looked —
so no request ever reads every execution.

Paging is by cursor (``next``; every row also carries the ``cursor`` that
continues after it, so a view merging several nodes resumes each where it
stopped). A cursor is an offset *and* the ``(created_at, id)`` of the row
before it: rows that slid under the offset because newer executions came
in are recognised and skipped, so no row is shown twice. ``offset`` still
works for old callers. ``count=1`` adds the total (``count_executions``).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, get_args

from starlette.datastructures import QueryParams

from agent_node.runtime import Runtime
from agent_node.store import ExecutionRecord, ExecutionStatus

from .ops_edge import Refused, boolean, integer, number, summary, text

__all__ = ["MAX_PAGE", "SCAN_BUDGET", "Cursor", "list_executions"]

MAX_PAGE = 500
#: Rows one request may read for the filters applied here (``until``, ``q``).
SCAN_BUDGET = 5000
_STATUSES = frozenset(get_args(ExecutionStatus))
#: Rows read per store call while scanning for ``until`` or ``q``.
_BATCH = 500


@dataclass(frozen=True)
class Cursor:
    """Where the next page starts: the offset of its first row, and the key
    of the row before it (``created_at``, ``id``)."""

    offset: int
    created_at: float
    id: str

    def encode(self) -> str:
        raw = json.dumps([self.offset, self.created_at, self.id], separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            offset, created_at, last_id = json.loads(raw)
        except (binascii.Error, ValueError, TypeError):
            raise Refused(400, "cursor is not one this API gave out") from None
        ok = isinstance(offset, int) and offset >= 0 and isinstance(last_id, str)
        if not ok or not isinstance(created_at, int | float):
            raise Refused(400, "cursor is not one this API gave out")
        return cls(offset, float(created_at), last_id)

    def after(self, record: ExecutionRecord) -> bool:
        """Whether ``record`` comes after this cursor's row (newest first)."""
        return (record.created_at, record.id) < (self.created_at, self.id)


@dataclass(frozen=True)
class _Query:
    store_filters: dict[str, Any]
    until: float | None
    q: str | None
    limit: int
    start: int
    cursor: Cursor | None
    count: bool

    def keeps(self, record: ExecutionRecord) -> bool:
        if self.until is not None and record.created_at > self.until:
            return False
        return self.q is None or record.id.startswith(self.q)

    @property
    def scans(self) -> bool:
        return self.until is not None or self.q is not None


def parse(params: QueryParams, skills: Mapping[str, str] | None) -> _Query:
    """The query of a request, checked (400 for what does not fit)."""
    statuses = [s for raw in params.getlist("status") for s in raw.split(",") if s]
    wrong = sorted(set(statuses) - _STATUSES)
    if wrong:
        raise Refused(400, f"status must be among {', '.join(sorted(_STATUSES))}: not {wrong[0]!r}")
    workflow = text(params.get("workflow"), "workflow")
    skill = text(params.get("skill"), "skill")
    if skill is not None:
        workflow = _workflow_of(skill, workflow, skills)
    since, until = number(params.get("since"), "since"), number(params.get("until"), "until")
    if since is not None and until is not None and until < since:
        raise Refused(400, "until must not be before since")
    token, offset = params.get("cursor"), params.get("offset")
    if token and offset:
        raise Refused(400, "give cursor or offset, not both")
    cursor = Cursor.decode(token) if token else None
    start = cursor.offset if cursor else integer(offset, "offset", 0, 10**9, 0)
    query = _Query(
        store_filters={
            "status": sorted(set(statuses)) or None,
            "workflow_id": workflow,
            "caller": text(params.get("caller"), "caller"),
            "context_id": text(params.get("context"), "context"),
            "updated_after": since,
        },
        until=until,
        q=text(params.get("q"), "q"),
        limit=integer(params.get("limit"), "limit", 1, MAX_PAGE, 50),
        start=start,
        cursor=cursor,
        count=boolean(params.get("count"), "count"),
    )
    if query.count and query.scans:
        raise Refused(400, "count=1 counts what the store filters: leave out until and q")
    return query


def _workflow_of(skill: str, workflow: str | None, skills: Mapping[str, str] | None) -> str:
    if skills is None:
        raise Refused(400, "this node does not say which workflow each skill runs: use workflow")
    found = skills.get(skill)
    if found is None:
        raise Refused(400, f"no skill {skill!r} here (skills: {', '.join(sorted(skills))})")
    if workflow is not None and workflow != found:
        raise Refused(400, f"skill {skill!r} runs workflow {found!r}, not {workflow!r}")
    return found


async def list_executions(
    runtime: Runtime, params: QueryParams, skills: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The page the query asks for (see the module doc)."""
    query = parse(params, skills)
    store = runtime.store
    if query.q is not None and query.cursor is None:
        exact = await store.get(query.q)
        if exact is not None and _matches(exact, query):
            return {"executions": [_row(exact, None)], "next": None, "exact": True}
    rows, position, last, scanned, exhausted = await _scan(runtime, query)
    page: dict[str, Any] = {"executions": rows}
    page["next"] = None if exhausted or last is None else Cursor(position, *last).encode()
    if query.scans:
        page["scanned"] = scanned
    if query.count:
        page["count"] = await store.count_executions(**query.store_filters)
    return page


async def _scan(
    runtime: Runtime, query: _Query
) -> tuple[list[dict[str, Any]], int, tuple[float, str] | None, int, bool]:
    """Read from the store until the page is full, the store has no more, or
    the scan budget is spent: ``(rows, next offset, key of the last row
    read, rows read, exhausted)``. Rows that slid under the cursor's offset
    are passed over (at most :data:`SCAN_BUDGET` of them)."""
    rows: list[dict[str, Any]] = []
    position = query.start
    last = (query.cursor.created_at, query.cursor.id) if query.cursor else None
    scanned = slid = 0
    # One row more than a page shows whether there is a next one.
    batch = _BATCH if query.scans else query.limit + 1
    budget = SCAN_BUDGET if query.scans else batch
    while True:
        found = await runtime.store.list_executions(
            **query.store_filters, limit=batch, offset=position
        )
        for record in found:
            if len(rows) == query.limit:
                return rows, position, last, scanned, False
            position += 1
            if query.cursor is not None and not query.cursor.after(record):
                slid += 1  # shown on an earlier page already
                continue
            scanned += 1
            last = (record.created_at, record.id)
            if query.keeps(record):
                rows.append(_row(record, Cursor(position, *last)))
        if len(found) < batch:
            return rows, position, last, scanned, True
        if scanned >= budget or slid >= SCAN_BUDGET:
            return rows, position, last, scanned, False


def _row(record: ExecutionRecord, cursor: Cursor | None) -> dict[str, Any]:
    row = summary(record)
    row["cursor"] = cursor.encode() if cursor else None
    return row


def _matches(record: ExecutionRecord, query: _Query) -> bool:
    """Whether an execution found by its id passes the other filters."""
    f = query.store_filters
    checks: list[Callable[[], bool]] = [
        lambda: f["status"] is None or record.status in f["status"],
        lambda: f["workflow_id"] is None or record.workflow_id == f["workflow_id"],
        lambda: f["caller"] is None or record.caller == f["caller"],
        lambda: f["context_id"] is None or record.context_id == f["context_id"],
        lambda: f["updated_after"] is None or record.updated_at >= f["updated_after"],
        lambda: query.until is None or record.created_at <= query.until,
    ]
    return all(check() for check in checks)

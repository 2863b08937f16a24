"""``GET /ops/executions``: a page of a node's executions, newest first.

Filters the store applies itself, each on an index: ``status`` (repeated or
comma-separated), ``workflow`` (or ``skill``, when the node says which
workflow each skill runs), ``caller``, ``context``, ``since`` (changed at or
after, epoch seconds) and ``until`` (created at or before: where the
newest-first walk starts). One more, ``q``: an execution id, or the start
of one, or its end. An id is looked up at once; a start of one is a filter
of the store (``id_prefix``, on an index). The end of one (what the UI
shows of an id: new ids start with their time, so the ids of one minute
start alike) is looked for when no id starts with ``q``, in the rows the
other filters give, at most :data:`SCAN_BUDGET` of them a request — a page
not full by then ends early with a cursor, and ``scanned`` says how far it
looked. So no request reads every execution.

Paging is by keyset: a cursor names the ``(created_at, id)`` of the last
row shown, and the next page is the rows after it (the store's ``before``),
an index seek however deep — and no row shows twice when newer executions
come in between two pages. ``next`` is the page's cursor; every row also
carries the cursor that continues right after it, so a view merging
several nodes resumes each where it stopped. ``offset`` still works for
callers of before. ``count=1`` adds the total (``count_executions``).
Every page names the store it comes from (``store``:
:func:`~.ops_store.store_identity`): nodes of one store list the same
executions, and a viewer of several shows them once.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, get_args

from starlette.datastructures import QueryParams

from agent_node.runtime import Runtime
from agent_node.store import ExecutionRecord, ExecutionStatus, Store

from .ops_edge import Refused, boolean, integer, number, summary, text
from .ops_store import store_identity

__all__ = ["MAX_PAGE", "SCAN_BUDGET", "Cursor", "list_executions"]

MAX_PAGE = 500
#: Rows one request may read looking for the start of an id (``q``).
SCAN_BUDGET = 5000
_STATUSES = frozenset(get_args(ExecutionStatus))
#: Rows read per store call while looking.
_BATCH = 500


@dataclass(frozen=True)
class Cursor:
    """The last row shown: the next page starts after its ``(created_at, id)``."""

    created_at: float
    id: str

    @property
    def key(self) -> tuple[float, str]:
        return (self.created_at, self.id)

    def encode(self) -> str:
        raw = json.dumps([self.created_at, self.id], separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            created_at, last_id = json.loads(raw)
        except (binascii.Error, ValueError, TypeError):
            raise Refused(400, "cursor is not one this API gave out") from None
        number = isinstance(created_at, int | float) and not isinstance(created_at, bool)
        if not number or not math.isfinite(created_at) or not isinstance(last_id, str):
            raise Refused(400, "cursor is not one this API gave out")
        if "\x00" in last_id:  # no id holds one (PostgreSQL cannot bind it)
            raise Refused(400, "cursor is not one this API gave out")
        return cls(float(created_at), last_id)


@dataclass(frozen=True)
class _Query:
    store_filters: dict[str, Any]
    q: str | None
    limit: int
    offset: int
    #: Where the walk starts: rows before this ``(created_at, id)`` only.
    before: tuple[float, str] | None
    count: bool


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
    starts = [Cursor.decode(token).key] if token else []
    if until is not None:
        # Created at or before ``until``: before (the float after it, ""), as
        # no id sorts below "".
        starts.append((math.nextafter(until, math.inf), ""))
    query = _Query(
        store_filters={
            "status": sorted(set(statuses)) or None,
            "workflow_id": workflow,
            "caller": text(params.get("caller"), "caller"),
            "context_id": text(params.get("context"), "context"),
            "updated_after": since,
        },
        q=text(params.get("q"), "q"),
        limit=integer(params.get("limit"), "limit", 1, MAX_PAGE, 50),
        offset=integer(offset, "offset", 0, 10**9, 0),
        before=min(starts) if starts else None,
        count=boolean(params.get("count"), "count"),
    )
    if query.count and (query.q is not None or until is not None):
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
    page = await _found(runtime, parse(params, skills))
    return {**page, "store": await store_identity(runtime.store)}


async def _found(runtime: Runtime, query: _Query) -> dict[str, Any]:
    store = runtime.store
    if query.q is None:
        page = _page(await _listed(store, query), query.limit)
    else:
        exact = await store.get(query.q) if query.before is None and not query.offset else None
        if exact is not None and _matches(exact, query):
            return {"executions": [_row(exact)], "next": None, "exact": True}
        started = await _listed(store, query, id_prefix=query.q)
        page = _page(started, query.limit) if started else await _search(runtime, query, query.q)
    if query.count:
        page["count"] = await store.count_executions(**query.store_filters)
    return page


async def _listed(store: Store, query: _Query, **more: Any) -> list[ExecutionRecord]:
    """The page's rows, and one more if there are more."""
    return await store.list_executions(
        **query.store_filters,
        **more,
        limit=query.limit + 1,
        offset=query.offset,
        before=query.before,
        state=False,  # a list shows none
    )


def _page(found: list[ExecutionRecord], limit: int) -> dict[str, Any]:
    rows = [_row(record) for record in found[:limit]]
    return {"executions": rows, "next": rows[-1]["cursor"] if len(found) > limit else None}


async def _search(runtime: Runtime, query: _Query, end: str) -> dict[str, Any]:
    """The executions whose id ends with ``end``, among at most
    :data:`SCAN_BUDGET` rows the other filters give."""
    rows: list[dict[str, Any]] = []
    before, offset, scanned = query.before, query.offset, 0
    while scanned < SCAN_BUDGET:
        found = await runtime.store.list_executions(
            **query.store_filters, limit=_BATCH, offset=offset, before=before, state=False
        )
        offset = 0  # an offset counts once, from where the search began
        for record in found:
            scanned += 1
            before = (record.created_at, record.id)
            if record.id.endswith(end):
                rows.append(_row(record))
                if len(rows) == query.limit:
                    return {"executions": rows, "next": rows[-1]["cursor"], "scanned": scanned}
        if len(found) < _BATCH:
            return {"executions": rows, "next": None, "scanned": scanned}
    next_at = Cursor(*before).encode() if before else None
    return {"executions": rows, "next": next_at, "scanned": scanned}


def _row(record: ExecutionRecord) -> dict[str, Any]:
    return {**summary(record), "cursor": Cursor(record.created_at, record.id).encode()}


def _matches(record: ExecutionRecord, query: _Query) -> bool:
    """Whether an execution found by its id passes the other filters."""
    f = query.store_filters
    checks: list[Callable[[], bool]] = [
        lambda: f["status"] is None or record.status in f["status"],
        lambda: f["workflow_id"] is None or record.workflow_id == f["workflow_id"],
        lambda: f["caller"] is None or record.caller == f["caller"],
        lambda: f["context_id"] is None or record.context_id == f["context_id"],
        lambda: f["updated_after"] is None or record.updated_at >= f["updated_after"],
    ]
    return all(check() for check in checks)

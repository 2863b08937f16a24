"""Listing and counting executions on the SQL stores: the same cost with a
million finished executions as with none.

Both SQL stores build their pages and counts here (``?`` placeholders; the
PostgreSQL store numbers them) and run them through a ``fetch`` of their own.

* **A page** is a keyset read, newest first, on the index its filters name.
* **A count** by caller, workflow and status comes from the kept counts
  of finished executions (:mod:`.counts`) and the live rows; by a context
  or what a waiting execution asks, from the rows, on their own index
  (what they match, not the store).
* **The last change** (``updated_after``: A2A's ``statusTimestampAfter``,
  the operator API's ``since``) has no index of its own: every step
  changes ``updated_at``, and an index on it would cost every step (and
  PostgreSQL its in-place updates). A finished execution changes no more,
  so its ``finished_at`` — ``updated_at`` while it is finished, NULL before
  (written by the store where it sets a status; on PostgreSQL a trigger,
  :data:`.finished.FINISHED_DDL`, keeps it so for every writer) — is indexed, and a
  change since ``T`` is ``finished_at >= T`` or a live execution
  (``pending``, ``running``, ``waiting``: bounded by the work in hand)
  with ``updated_at >= T``. When fewer than :data:`PROBE` finished
  executions match, a page merges those two sets; otherwise a page walks
  the newest first as without the filter (enough of them match). A count
  past :data:`PROBE` subtracts the finished ones changed before ``T``
  from the kept total, when those are fewer; a ``T`` in the middle of a
  huge store is the one case left that counts its rows.
* **A start of an id** (``id_prefix``: the operator API's search) is a
  range of ids in code point order: SQLite's primary key, PostgreSQL's
  index of the ids in "C" order (the key's own follows the database's
  collation). A page reads that range and sorts it when it holds fewer
  than :data:`SORTED` (the ids of one moment start alike: a start may be a
  minute a month ago), else walks the newest first.
* **The index** is PostgreSQL's to choose, each statement planned for its
  parameters (the store asks it to: :meth:`.PostgresStore._listing`).
  SQLite keeps no statistics of what an index holds, so the store chooses
  for it when filters meet (or a last change is asked): each filter's rows
  are counted on its own index, up to :data:`PROBE`, and the listing reads
  those of the fewest (:func:`_driver`); the live executions are read on the
  status index (as many as the work in hand).
* **A NUL character** (U+0000) is in no id, context, caller or workflow
  stored (PostgreSQL's text cannot hold one, nor bind one: an internal
  error; the edges refuse ids that hold one): a filter that holds one
  matches nothing, without a statement, and a page's position ``(t,
  "e\\0…")`` (a forged cursor) is the rows up to ``(t, "e")``, as the memory
  store reads it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

from agent_node.store.id_starts import BY_ID, PG_ID, SORTED, id_key, id_range
from agent_node.store.records import TERMINAL, Asking
from agent_node.store.sql import (
    ASKING,
    EXECUTION_COLUMNS,
    LIVE,
    LIVE_IN,
    STATELESS_COLUMNS,
    TERMINAL_IN,
)

__all__ = [
    "COUNTED",
    "PROBE",
    "Fetch",
    "Filters",
    "count",
    "page",
]

#: Runs one statement; its rows.
Fetch = Callable[[str, Sequence[Any]], Awaitable[Sequence[Sequence[Any]]]]

#: How many finished executions a probe counts at most.
PROBE = 1000
#: SQLite: how many rows a count asks each filter's index for at most, when
#: each holds more than :data:`PROBE`, to read the fewest (a count by a
#: context and a common status read the status's million: 0.5 s).
COUNTED = 100_000

_DONE, _LIVE = TERMINAL_IN, LIVE_IN
_NUL = "\x00"
_ORDER = " ORDER BY created_at DESC, id DESC"


@dataclass(frozen=True, slots=True)
class Filters:
    """``list_executions``' and ``count_executions``' filters."""

    status: Collection[str] | None = None
    workflow_id: str | None = None
    context_id: str | None = None
    asking: Asking | None = None
    caller: str | None = None
    updated_after: float | None = None
    id_prefix: str | None = None

    def clauses(self, id_key: str = "id") -> tuple[list[str], list[Any]]:
        """Every filter but ``updated_after``, as conditions and parameters
        (``id_key``: how the id is compared in code point order, :func:`.id_starts.id_key`)."""
        clauses: list[str] = []
        params: list[Any] = []
        if self.id_prefix:
            condition, values = id_range(self.id_prefix, id_key)
            clauses.append(condition)
            params.extend(values)
        if self.status is not None:
            values = list(self.status)
            clauses.append(_status_in(values) if values else "0 = 1")
            params.extend(values)
        for column in _INDEXES:
            value = getattr(self, column)
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if self.asking is not None:
            clauses.append(ASKING[self.asking])
        return clauses, params

    def indexed(self) -> list[tuple[str, str, list[Any]]]:
        """Each filter that has an index of its own, alone: the index, the
        condition and its parameters (``updated_after``: the finished ones')."""
        found: list[tuple[str, str, list[Any]]] = []
        if self.status:
            values = list(self.status)
            found.append(("ix_executions_status", _status_in(values), values))
        for column, index in _INDEXES.items():
            value = getattr(self, column)
            if value is not None:
                found.append((index, f"{column} = ?", [value]))
        if self.updated_after is not None:
            found.append((_FINISHED, "finished_at >= ?", [self.updated_after]))
        if self.id_prefix:
            found.append((BY_ID, *id_range(self.id_prefix, "id")))
        return found

    def unmatched(self) -> bool:
        """Whether a filter holds a NUL character: then no execution matches."""
        texts = (self.workflow_id, self.context_id, self.caller, self.id_prefix)
        return any(_NUL in text for text in texts if text)

    @property
    def probed(self) -> bool:
        """Whether SQLite is to be told which index to read even for one
        filter: it knows no better for these (:func:`_driver`)."""
        return self.updated_after is not None or bool(self.id_prefix)


#: The index of each filter by one value (all but ``status``').
_INDEXES = {
    "workflow_id": "ix_executions_workflow",
    "context_id": "ix_executions_context",
    "caller": "ix_executions_caller",
}
_FINISHED = "ix_executions_finished"


def _status_in(values: Sequence[str]) -> str:
    return f"status IN ({', '.join('?' * len(values))})"


async def _driver(
    fetch: Fetch, filters: Filters, *, counted: bool = False
) -> tuple[str, str, list[Any]] | None:
    """SQLite: the filter whose index holds the fewest rows, when it holds
    fewer than :data:`PROBE` (None: each holds more, or there is one filter
    and it is not ``updated_after``'s). SQLite keeps no statistics of the
    values in an index: given a status no execution has and a workflow every
    one runs, or a last change and a common status, it may walk the index
    that matches a million rows to find none (0.7-1.7 s). Counting each
    filter's rows, up to PROBE, on its own index reads at most PROBE
    entries of each; the listing then reads the fewest. A count (``counted``),
    which reads every row its index gives, asks again up to ten times as
    many, then :data:`COUNTED`, when each holds more than PROBE. No index is
    read past the fewest rows another gave."""
    indexed = filters.indexed()
    if len(indexed) < 2 and not filters.probed:
        return None  # one filter: SQLite reads its own index
    bounds = (PROBE, 10 * PROBE, COUNTED) if counted else (PROBE,)
    for bound in bounds:
        best: tuple[int, tuple[str, str, list[Any]]] | None = None
        for index, condition, params in indexed:
            limit = max(bound, SORTED) if index == BY_ID else bound
            if best is not None:
                limit = min(limit, best[0])  # more than the fewest yet: not it
            found = await _bounded(fetch, condition, params, index=index, bound=limit)
            if found < limit:
                best = (found, (index, condition, params))
        if best is not None:
            return best[1]
    return None


async def page(
    fetch: Fetch,
    filters: Filters,
    *,
    limit: int,
    offset: int,
    before: tuple[float, str] | None,
    sqlite: bool,
    state: bool = True,
) -> Sequence[Sequence[Any]]:
    """The rows of one page, newest first (their state "" when not ``state``)."""
    if filters.unmatched():
        return []
    columns = EXECUTION_COLUMNS if state else STATELESS_COLUMNS
    driver = await _driver(fetch, filters) if sqlite else None
    clauses, params = filters.clauses(id_key(sqlite, driver))
    if before is not None:
        clause, values = _before(before)
        clauses.append(clause)
        params.extend(values)
    since = filters.updated_after
    if sqlite:
        chosen = driver is not None and driver[0] != _FINISHED
        few = driver is not None and not chosen
    else:
        chosen = bool(filters.id_prefix) and await _few_ids(fetch, filters.id_prefix or "")
        few = (
            not chosen
            and since is not None
            and await _bounded(fetch, "finished_at >= ?", [since], clauses, params) < PROBE
        )
    if chosen:  # few rows of one filter: those, sorted
        if since is not None:
            clauses.append("updated_at >= ?")
            params.append(since)
        if driver is not None:
            source = f"executions INDEXED BY {driver[0]}{_where(clauses)}"
        else:  # behind OFFSET 0, which no ORDER BY or LIMIT outside passes
            source = f"(SELECT {columns} FROM executions{_where(clauses)} OFFSET 0) s"
        sql = f"SELECT {columns} FROM {source}{_ORDER} LIMIT ? OFFSET ?"
        return await fetch(sql, [*params, limit, offset])
    if not few:
        if since is not None:  # enough finished ones match: newest first finds them
            clauses.append("updated_at >= ?")
            params.append(since)
        sql = f"SELECT {columns} FROM executions{_where(clauses)}{_ORDER} LIMIT ? OFFSET ?"
        return await fetch(sql, [*params, limit, offset])
    # Few finished ones changed since: those, and the live ones changed
    # since, merged. The finished ones are read in the order of finished_at's
    # index, which only that index gives: ordered newest first, a plan made
    # for any ``since`` (PostgreSQL's generic plan, which a prepared statement
    # gets after a few runs) assumes that a third of the rows match, and walks
    # the newest-first index through every row to find the few (0.3 s with a
    # million). They are fewer than PROBE; up to twice as many are read, for
    # those finishing between the probe and this read.
    hint = " INDEXED BY ix_executions_finished" if sqlite else ""
    first = limit + offset
    done = (
        f"SELECT * FROM (SELECT {columns} FROM executions{hint}"
        f"{_where(['finished_at >= ?', *clauses])} ORDER BY finished_at DESC"
        f" LIMIT {2 * PROBE}) f{_ORDER} LIMIT {first}"
    )
    live = (
        f"SELECT {columns} FROM executions{_live_hint(sqlite)}"
        f"{_where([f'status IN {_LIVE}', 'updated_at >= ?', *clauses])}{_ORDER} LIMIT {first}"
    )
    sql = f"SELECT * FROM ({done}) d UNION ALL SELECT * FROM ({live}) l{_ORDER} LIMIT ? OFFSET ?"
    return await fetch(sql, [since, *params, since, *params, limit, offset])


def _before(position: tuple[float, str]) -> tuple[str, list[Any]]:
    """The condition of the rows before ``position``. Its id cut at a NUL
    (none is stored): those before ``(t, "e\\0…")`` are those up to ``(t, "e")``."""
    at, last = position
    head, nul, _ = last.partition(_NUL)
    return f"(created_at, id) {'<=' if nul else '<'} (?, ?)", [at, head]


async def _few_ids(fetch: Fetch, prefix: str) -> bool:
    """PostgreSQL: whether fewer than :data:`SORTED` ids start with
    ``prefix``, to be read on their index and sorted. Asked to order the
    newest first, PostgreSQL walks the newest-first index to the first that
    match (it does not know that ids that start alike were made at one
    time): past every newer execution when they are old (190,000 rows, 32
    ms, to find 10,000 of 200,000)."""
    return await _bounded(fetch, *id_range(prefix, PG_ID), bound=SORTED) < SORTED


def _live_hint(sqlite: bool) -> str:
    """The live executions are read on the status index (they are as many as
    the work in hand); SQLite, knowing no better, may read those of a caller
    or a workflow on theirs, finished ones and all (70-700 ms a count)."""
    return " INDEXED BY ix_executions_status" if sqlite else ""


def _kept(
    status: Collection[str] | None,
    workflow_id: str | None,
    caller: str | None,
    sqlite: bool,
) -> tuple[str, list[Any]]:
    """A count by ``status``, ``workflow_id`` and ``caller``: the kept counts
    of the finished statuses asked for (:mod:`.counts`), plus the rows of the
    live ones. (``status IN`` on the counts also makes PostgreSQL read their
    few rows through the key's index, never the heap's pages whole: a burst
    under a long snapshot leaves thousands of them empty, 9 ms to scan.)"""
    statuses = LIVE | TERMINAL if status is None else set(status)
    parts: list[str] = []
    params: list[Any] = []
    if done := sorted(statuses & TERMINAL):
        clauses, more = Filters(status=done, workflow_id=workflow_id).clauses()
        if caller is not None:  # the counts' key: '' (none) or '.' + caller
            clauses.append("caller_key = ?")
            more.append("." + caller)
        parts.append(f"(SELECT COALESCE(SUM(n), 0) FROM execution_counts{_where(clauses)})")
        params.extend(more)
    if live := sorted(statuses - TERMINAL):
        clauses, more = Filters(status=live, workflow_id=workflow_id, caller=caller).clauses()
        parts.append(f"(SELECT COUNT(*) FROM executions{_live_hint(sqlite)}{_where(clauses)})")
        params.extend(more)
    return "SELECT " + (" + ".join(parts) or "0"), params


async def count(fetch: Fetch, filters: Filters, *, sqlite: bool) -> int:
    """How many executions ``filters`` match."""
    if filters.unmatched():
        return 0
    kept = filters.context_id is None and filters.asking is None and not filters.id_prefix
    # A count reads no order: a start of ids is a range of the key's index.
    clauses, params = filters.clauses("id" if sqlite else PG_ID)
    if filters.updated_after is None:
        if kept:
            sql, params = _kept(filters.status, filters.workflow_id, filters.caller, sqlite)
        else:
            driver = await _driver(fetch, filters, counted=True) if sqlite else None
            hint = f" INDEXED BY {driver[0]}" if driver is not None else ""
            sql = f"SELECT COUNT(*) FROM executions{hint}{_where(clauses)}"
        return int((await fetch(sql, params))[0][0] or 0)
    since = filters.updated_after
    live_sql = (
        f"SELECT COUNT(*) FROM executions{_live_hint(sqlite)}"
        f"{_where([f'status IN {_LIVE}', 'updated_at >= ?', *clauses])}"
    )
    live = int((await fetch(live_sql, [since, *params]))[0][0])
    driver = await _driver(fetch, filters) if sqlite else None
    if driver is not None:  # one filter's few rows, counted on its index
        sql = (
            f"SELECT COUNT(*) FROM executions INDEXED BY {driver[0]}"
            f"{_where(['finished_at >= ?', *clauses])}"
        )
        return live + int((await fetch(sql, [since, *params]))[0][0])
    done = await _bounded(fetch, "finished_at >= ?", [since], clauses, params)
    if done >= PROBE and kept:
        earlier = await _earlier(fetch, since, clauses, params, sqlite)
        if earlier < PROBE:
            statuses = TERMINAL if filters.status is None else set(filters.status) & TERMINAL
            sql, kept_params = _kept(statuses, filters.workflow_id, filters.caller, sqlite)
            return live + int((await fetch(sql, kept_params))[0][0] or 0) - earlier
    if done >= PROBE:
        sql = f"SELECT COUNT(*) FROM executions{_where(['finished_at >= ?', *clauses])}"
        done = int((await fetch(sql, [since, *params]))[0][0])
    return live + done


async def _earlier(
    fetch: Fetch, since: float, clauses: list[str], params: list[Any], sqlite: bool
) -> int:
    """How many finished executions that match changed before ``since``,
    counted up to :data:`PROBE`. SQLite: exactly, on the index of finished
    times, when fewer than PROBE finished before ``since`` at all (else
    PROBE): on another index it may walk every row of a caller or a status."""
    if not sqlite:
        return await _bounded(fetch, "finished_at < ?", [since], clauses, params)
    if await _bounded(fetch, "finished_at < ?", [since], index=_FINISHED) >= PROBE:
        return PROBE
    sql = (
        f"SELECT COUNT(*) FROM executions INDEXED BY {_FINISHED}"
        f"{_where(['finished_at < ?', *clauses])}"
    )
    return int((await fetch(sql, [since, *params]))[0][0])


async def _bounded(
    fetch: Fetch,
    condition: str,
    values: list[Any],
    clauses: Sequence[str] = (),
    params: Sequence[Any] = (),
    *,
    index: str | None = None,
    bound: int = PROBE,
) -> int:
    """How many executions match, counted up to ``bound`` (SQLite: on
    ``index``)."""
    hint = f" INDEXED BY {index}" if index else ""
    sql = (
        f"SELECT COUNT(*) FROM (SELECT 1 FROM executions{hint}"
        f"{_where([condition, *clauses])} LIMIT {bound}) p"
    )
    return int((await fetch(sql, [*values, *params]))[0][0])


def _where(clauses: list[str]) -> str:
    return " WHERE " + " AND ".join(clauses) if clauses else ""

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
  :data:`FINISHED_DDL`, keeps it so for every writer) — is indexed, and a
  change since ``T`` is ``finished_at >= T`` or a live execution
  (``pending``, ``running``, ``waiting``: bounded by the work in hand)
  with ``updated_at >= T``. When fewer than :data:`PROBE` finished
  executions match, a page merges those two sets; otherwise a page walks
  the newest first as without the filter (enough of them match). A count
  past :data:`PROBE` subtracts the finished ones changed before ``T``
  from the kept total, when those are fewer; a ``T`` in the middle of a
  huge store is the one case left that counts its rows.
* **The index** is PostgreSQL's to choose, each statement planned for its
  parameters (the store asks it to: :meth:`.PostgresStore._listing`).
  SQLite keeps no statistics of what an index holds, so the store chooses
  for it when filters meet (or a last change is asked): each filter's rows
  are counted on its own index, up to :data:`PROBE`, and the listing reads
  those of the fewest (:func:`_driver`); the live executions are read on the
  status index (as many as the work in hand).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

from agent_node.store.records import TERMINAL, Asking
from agent_node.store.sql import ASKING, EXECUTION_COLUMNS, LIVE, LIVE_IN, TERMINAL_IN

__all__ = ["FINISHED_BACKFILL", "FINISHED_DDL", "PROBE", "Fetch", "Filters", "count", "page"]

#: Runs one statement; its rows.
Fetch = Callable[[str, Sequence[Any]], Awaitable[Sequence[Sequence[Any]]]]

#: How many finished executions a probe counts at most.
PROBE = 1000

_DONE, _LIVE = TERMINAL_IN, LIVE_IN
_ORDER = " ORDER BY created_at DESC, id DESC"

#: ``finished_at`` of the rows already there (the upgrade to version 8).
FINISHED_BACKFILL = f"UPDATE executions SET finished_at = updated_at WHERE status IN {_DONE}"


def FINISHED_DDL(dialect: str) -> list[str]:
    """Triggers that keep ``finished_at`` = ``updated_at`` on finished rows,
    NULL on live ones (idempotent): PostgreSQL's, before the row is written."""
    if dialect == "sqlite":
        # None: the store writes finished_at itself, in the statements that
        # set a status (store/sql.py). SQLite runs a trigger as a program
        # for every row a watched statement touches, whatever its WHEN: 7 %
        # of a concurrent step's instructions. SQL written by hand beside
        # the store must set it too.
        return []
    wrong = (
        f"(NEW.status IN {_DONE} AND NEW.finished_at IS DISTINCT FROM NEW.updated_at)"
        f" OR (NEW.status NOT IN {_DONE} AND NEW.finished_at IS NOT NULL)"
    )
    return [
        "CREATE OR REPLACE FUNCTION agent_node_finished() RETURNS trigger LANGUAGE plpgsql AS $$"
        f" BEGIN NEW.finished_at := CASE WHEN NEW.status IN {_DONE} THEN NEW.updated_at END;"
        " RETURN NEW; END $$",
        "DROP TRIGGER IF EXISTS executions_finished ON executions",
        # BEFORE: the row is written once, with its finished_at (a WHEN that
        # is false costs no call).
        "CREATE TRIGGER executions_finished"
        " BEFORE INSERT OR UPDATE OF status, finished_at ON executions"
        f" FOR EACH ROW WHEN ({wrong}) EXECUTE FUNCTION agent_node_finished()",
    ]


@dataclass(frozen=True, slots=True)
class Filters:
    """``list_executions``' and ``count_executions``' filters."""

    status: Collection[str] | None = None
    workflow_id: str | None = None
    context_id: str | None = None
    asking: Asking | None = None
    caller: str | None = None
    updated_after: float | None = None

    def clauses(self) -> tuple[list[str], list[Any]]:
        """Every filter but ``updated_after``, as conditions and parameters."""
        clauses: list[str] = []
        params: list[Any] = []
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
        return found


#: The index of each filter by one value (all but ``status``').
_INDEXES = {
    "workflow_id": "ix_executions_workflow",
    "context_id": "ix_executions_context",
    "caller": "ix_executions_caller",
}
_FINISHED = "ix_executions_finished"


def _status_in(values: Sequence[str]) -> str:
    return f"status IN ({', '.join('?' * len(values))})"


async def _driver(fetch: Fetch, filters: Filters) -> tuple[str, str, list[Any]] | None:
    """SQLite: the filter whose index holds the fewest rows, when it holds
    fewer than :data:`PROBE` (None: each holds more, or there is one filter
    and it is not ``updated_after``'s). SQLite keeps no statistics of the
    values in an index: given a status no execution has and a workflow every
    one runs, or a last change and a common status, it may walk the index
    that matches a million rows to find none (0.7-1.7 s). Counting each
    filter's rows, up to PROBE, on its own index reads at most PROBE
    entries of each; the listing then reads the fewest."""
    indexed = filters.indexed()
    if len(indexed) < 2 and filters.updated_after is None:
        return None  # one filter: SQLite reads its own index
    best: tuple[int, tuple[str, str, list[Any]]] | None = None
    for index, condition, params in indexed:
        found = await _bounded(fetch, condition, params, index=index)
        if found < PROBE and (best is None or found < best[0]):
            best = (found, (index, condition, params))
    return None if best is None else best[1]


async def page(
    fetch: Fetch,
    filters: Filters,
    *,
    limit: int,
    offset: int,
    before: tuple[float, str] | None,
    sqlite: bool,
) -> Sequence[Sequence[Any]]:
    """The rows of one page, newest first."""
    clauses, params = filters.clauses()
    if before is not None:
        clauses.append("(created_at, id) < (?, ?)")
        params.extend(before)
    since = filters.updated_after
    if sqlite:
        driver = await _driver(fetch, filters)
        if driver is not None and driver[0] != _FINISHED:  # few rows of one filter: those
            if since is not None:
                clauses.append("updated_at >= ?")
                params.append(since)
            sql = (
                f"SELECT {EXECUTION_COLUMNS} FROM executions INDEXED BY {driver[0]}"
                f"{_where(clauses)}{_ORDER} LIMIT ? OFFSET ?"
            )
            return await fetch(sql, [*params, limit, offset])
        few = driver is not None
    else:
        few = since is not None and (
            await _bounded(fetch, "finished_at >= ?", [since], clauses, params) < PROBE
        )
    if not few:
        if since is not None:  # enough finished ones match: newest first finds them
            clauses.append("updated_at >= ?")
            params.append(since)
        sql = (
            f"SELECT {EXECUTION_COLUMNS} FROM executions{_where(clauses)}{_ORDER} LIMIT ? OFFSET ?"
        )
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
        f"SELECT * FROM (SELECT {EXECUTION_COLUMNS} FROM executions{hint}"
        f"{_where(['finished_at >= ?', *clauses])} ORDER BY finished_at DESC"
        f" LIMIT {2 * PROBE}) f{_ORDER} LIMIT {first}"
    )
    live = (
        f"SELECT {EXECUTION_COLUMNS} FROM executions{_live_hint(sqlite)}"
        f"{_where([f'status IN {_LIVE}', 'updated_at >= ?', *clauses])}{_ORDER} LIMIT {first}"
    )
    sql = f"SELECT * FROM ({done}) d UNION ALL SELECT * FROM ({live}) l{_ORDER} LIMIT ? OFFSET ?"
    return await fetch(sql, [since, *params, since, *params, limit, offset])


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
    kept = filters.context_id is None and filters.asking is None
    if filters.updated_after is None:
        if kept:
            sql, params = _kept(filters.status, filters.workflow_id, filters.caller, sqlite)
        else:
            clauses, params = filters.clauses()
            sql = f"SELECT COUNT(*) FROM executions{_where(clauses)}"
        return int((await fetch(sql, params))[0][0] or 0)
    since = filters.updated_after
    clauses, params = filters.clauses()
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
) -> int:
    """How many executions match, counted up to :data:`PROBE` (SQLite: on
    ``index``)."""
    hint = f" INDEXED BY {index}" if index else ""
    sql = (
        f"SELECT COUNT(*) FROM (SELECT 1 FROM executions{hint}"
        f"{_where([condition, *clauses])} LIMIT {PROBE}) p"
    )
    return int((await fetch(sql, [*values, *params]))[0][0])


def _where(clauses: list[str]) -> str:
    return " WHERE " + " AND ".join(clauses) if clauses else ""

"""Running a batch of the SQLite writer's jobs in one transaction
(:class:`~.sqlite_writer.Writer`): each job's outcome is its own.

A job that raises must leave nothing behind while the others commit. The
general way is a savepoint around each job (:func:`run_guarded`): two
statements more per job, ~2 to 3 µs, about 4 % of the CPU of a step of 200
short workflows run at once (``SAVEPOINT``, ``RELEASE``).

A batch of *replayable* jobs (a node's commit, a new execution: jobs that
can be run again from the start after their transaction rolled back, as
their plans are pure functions of what they read) runs without them
(:func:`run_unguarded`). A job that raises before it changed a row (a lost
fence, an execution gone: the common failures, found by the first
statement that would write) needs no undo: the connection's count of
changed rows says whether it wrote. Only one that raises after it wrote
needs one: the transaction is then rolled back and the batch run again,
guarded — rare (a bug, a full disk), and correct, as every job in it can
run again.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["Outcome", "Ran", "run_alone", "run_guarded", "run_unguarded"]

#: A job's outcome: (True, its result) or (False, the error it raised).
Outcome = tuple[bool, Any]
#: A batch's outcomes (one per job, in order) and the notices of those that committed.
Ran = tuple[list[Outcome], list[Any]]
Job = Callable[[sqlite3.Connection], tuple[Any, list[Any]]]
Error = Callable[[BaseException], BaseException]


def run_alone(conn: sqlite3.Connection, job: Job, error: Error) -> Ran:
    """A batch of one job (a sequential workflow's every step): a job that
    raises rolls the whole transaction back, which is what its savepoint
    would have done — two statements fewer per commit."""
    try:
        result, notices = job(conn)
    except BaseException as exc:
        if conn.in_transaction:  # else SQLite rolled it back itself (a full disk)
            conn.execute("ROLLBACK")
        return [(False, error(exc))], []
    return [(True, result)], notices


def run_guarded(conn: sqlite3.Connection, jobs: Sequence[Job], error: Error) -> Ran:
    """Each job in a savepoint of its own: one that raises rolls back alone."""
    outcomes: list[Outcome] = []
    notices: list[Any] = []
    for job in jobs:
        conn.execute("SAVEPOINT job")
        try:
            result, job_notices = job(conn)
        except BaseException as exc:
            if not conn.in_transaction:  # SQLite rolled it all back
                return [(False, error(exc))] * len(jobs), []
            conn.execute("ROLLBACK TO job")
            conn.execute("RELEASE job")
            outcomes.append((False, error(exc)))
        else:
            conn.execute("RELEASE job")
            outcomes.append((True, result))
            notices.extend(job_notices)
    return outcomes, notices


def run_unguarded(conn: sqlite3.Connection, jobs: Sequence[Job], error: Error) -> Ran | None:
    """Replayable jobs with no savepoints; None when one raised after it
    changed a row (the caller rolls back and runs them all again, guarded).
    ``total_changes`` counts the rows that statements which completed
    changed: a statement that fails undoes itself (SQLite's statement
    journal), so an unchanged count means the job left nothing."""
    outcomes: list[Outcome] = []
    notices: list[Any] = []
    for job in jobs:
        before = conn.total_changes
        try:
            result, job_notices = job(conn)
        except BaseException as exc:
            if not conn.in_transaction:  # SQLite rolled it all back
                return [(False, error(exc))] * len(jobs), []
            if conn.total_changes != before:
                return None
            outcomes.append((False, error(exc)))
        else:
            outcomes.append((True, result))
            notices.extend(job_notices)
    return outcomes, notices

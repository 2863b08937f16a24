"""Records as rows and rows as records, for the SQLite and PostgreSQL
stores: each record's columns in the order :mod:`.sql`'s column lists name
them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agent_node.store.records import (
    DelegationRecord,
    EventRecord,
    ExecutionRecord,
    PushClaim,
    PushConfigRecord,
    WaitRecord,
    WorkItem,
)

__all__ = [
    "delegation_from_row",
    "delegation_row",
    "delegation_update_row",
    "event_from_row",
    "event_row",
    "execution_from_row",
    "execution_row",
    "push_claim_from_row",
    "push_from_row",
    "push_row",
    "release_row",
    "wait_from_row",
    "wait_row",
    "work_from_row",
    "work_row",
]


def execution_row(r: ExecutionRecord) -> tuple[Any, ...]:
    return (
        r.id,
        r.workflow_id,
        r.workflow_version,
        r.workflow_ref,
        r.status,
        r.state,
        r.cursor,
        r.last_seq,
        r.error,
        r.context_id,
        r.metadata,
        r.created_at,
        r.updated_at,
        r.state_seq,
        r.snapshot_seq,
        r.patch_room,
        r.caller,
    )


def event_row(e: EventRecord) -> tuple[Any, ...]:
    return (e.execution_id, e.seq, e.kind, e.node, e.visit, e.attempt, e.at, e.data)


def work_row(w: WorkItem) -> tuple[Any, ...]:
    return (
        w.execution_id,
        w.node,
        w.visit,
        w.attempt,
        w.available_at,
        w.lease_owner,
        w.lease_expires_at,
        w.fence,
    )


def wait_row(w: WaitRecord) -> tuple[Any, ...]:
    return (w.execution_id, w.node, w.visit, w.kind, w.event, w.deadline)


def delegation_row(d: DelegationRecord) -> tuple[Any, ...]:
    return (d.execution_id, d.node, d.visit, *_delegation_content(d), d.claimed_at)


def _delegation_content(d: DelegationRecord) -> tuple[Any, ...]:
    return (
        d.peer,
        d.remote_task_id,
        d.endpoint,
        d.version,
        d.identity,
        d.sent_at,
        d.next_poll_at,
        d.polls,
        d.relay,
        d.state,
        d.turn,
        d.request,
        d.question,
        d.last_error,
    )


def delegation_update_row(d: DelegationRecord, expected: tuple[str, int]) -> tuple[Any, ...]:
    """Parameters of ``update_delegation``: ``d`` where the row is still in
    the ``(state, turn)`` the transaction read."""
    return (*_delegation_content(d), d.execution_id, d.node, d.visit, *expected)


def delegation_from_row(row: Sequence[Any]) -> DelegationRecord:
    return DelegationRecord(*row)


def push_row(c: PushConfigRecord) -> tuple[Any, ...]:
    return (
        c.task_id,
        c.id,
        c.config,
        c.version,
        c.caller,
        c.created_at,
        c.pushed_seq,
        int(c.settled),
        c.attempts,
        c.next_attempt_at,
        c.last_error,
        c.lease_owner,
        c.lease_expires_at,
    )


def release_row(owner: str, c: PushConfigRecord) -> tuple[Any, ...]:
    """The parameters of ``Statements.release_push``."""
    return (
        c.pushed_seq,
        int(c.settled),
        c.attempts,
        c.next_attempt_at,
        c.last_error,
        c.task_id,
        c.id,
        owner,
    )


def push_from_row(row: Sequence[Any]) -> PushConfigRecord:
    record = PushConfigRecord(*row[:13])
    record.settled = bool(record.settled)
    return record


def push_claim_from_row(row: Sequence[Any]) -> PushClaim:
    """A row of ``PUSH_COLUMNS`` then the task's ``last_seq`` and ``status``."""
    return PushClaim(push_from_row(row), row[13], row[14])


def execution_from_row(row: Sequence[Any]) -> ExecutionRecord:
    return ExecutionRecord(*row)


def event_from_row(row: Sequence[Any]) -> EventRecord:
    return EventRecord(*row)


def work_from_row(row: Sequence[Any]) -> WorkItem:
    return WorkItem(*row)


def wait_from_row(row: Sequence[Any]) -> WaitRecord:
    return WaitRecord(*row)

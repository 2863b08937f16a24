"""``ListTasks``: what a request asks the store for, and its page tokens.

Every filter of the request is the store's: ``contextId``, ``status`` (a
task state is an execution's status and, for a waiting one, what it asks
of its caller: :data:`STATUS_FILTER`), ``statusTimestampAfter`` (the
status timestamp is the execution's last change: at or after it), and the
caller's own tasks only. A page token names the last task of the page
before, ``(created_at, id)`` in the newest-first order, so the store seeks
to it on an index (keyset paging: page 1,000 costs what page 1 does), and
the ``totalSize`` counted for the first page: the pages after it are not
counted again (counting a million tasks is the one cost of a listing that
grows with the store). The tokens are ours alone (:func:`page_of`). Offsets
and tokens without a count, those of earlier releases, are still read. ``historyLength`` and
``includeArtifacts`` shape each task, not the list.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agent_node.a2a.protocol.errors import InvalidParams
from agent_node.a2a.protocol.models import ListTasksRequest
from agent_node.store.records import Asking

__all__ = ["DEFAULT_PAGE", "STATUS_FILTER", "ListQuery", "page_of", "token_of"]

#: The page size when the request names none.
DEFAULT_PAGE = 50
#: An offset token (earlier releases) is base64 of at most 12 digits.
_MAX_OFFSET_DIGITS = 12
#: A keyset token: base64 of ``<created_at>|<id>``; task ids are at most this long.
_MAX_ID = 1024
_MAX_TOKEN = 4 * (_MAX_ID + 40) // 3 + 4

#: A2A task state -> (execution statuses, what it asks) for ListTasks.
STATUS_FILTER: dict[str, tuple[list[str], Asking | None]] = {
    "TASK_STATE_SUBMITTED": (["pending"], None),
    "TASK_STATE_WORKING": (["running", "waiting"], "none"),
    "TASK_STATE_INPUT_REQUIRED": (["waiting"], "input"),
    "TASK_STATE_AUTH_REQUIRED": (["waiting"], "auth"),
    "TASK_STATE_COMPLETED": (["completed"], None),
    "TASK_STATE_FAILED": (["failed"], None),
    "TASK_STATE_CANCELED": (["canceled"], None),
}


@dataclass(frozen=True, slots=True)
class ListQuery:
    """A ``ListTasks`` request as the store's filters and one page."""

    filters: Mapping[str, Any]
    offset: int
    size: int
    #: The last task of the page before: ``(created_at, id)``.
    before: tuple[float, str] | None = None
    #: The ``totalSize`` of the listing, counted for its first page.
    total: int | None = None

    @classmethod
    def of(cls, request: ListTasksRequest, caller: str | None) -> ListQuery:
        """``caller``: only that caller's tasks (None: everyone's, for an operator)."""
        status, asking = STATUS_FILTER.get(str(request.status), (None, None))
        after = request.status_timestamp_after
        filters = {
            "status": status,
            "context_id": request.context_id,
            "asking": asking,
            "caller": caller,
            "updated_after": _epoch(after) if after is not None else None,
        }
        offset, before, total = page_of(request.page_token)
        return cls(filters, offset, request.page_size or DEFAULT_PAGE, before, total)


def page_of(token: str | None) -> tuple[int, tuple[float, str] | None, int | None]:
    """Where a ``nextPageToken`` of ours starts — ``(0, (created_at, id),
    total)``, or an offset (an earlier release's token) — and the listing's
    count when the token carries it. Anything else — too long, not base64,
    not a position (a huge offset overflowed the store's integers: an
    internal error) — is the caller's mistake."""
    if not token:
        return 0, None, None
    refused = InvalidParams(
        "pageToken is not one this agent issued: pass the nextPageToken of the previous page"
    )
    if len(token) > _MAX_TOKEN:
        raise refused
    try:
        text = base64.b64decode(token, altchars=b"-_", validate=True).decode("ascii")
    except ValueError:  # binascii.Error and UnicodeDecodeError among them
        raise refused from None
    if text.isdigit() and len(text) <= _MAX_OFFSET_DIGITS:
        return int(text), None, None
    created, bar, task_id = text.partition("|")
    total: int | None = None
    counted, colon, created = created.rpartition(":")  # "<total>:" (no float has one)
    if colon:
        if not counted.isdigit() or len(counted) > _MAX_OFFSET_DIGITS:
            raise refused
        total = int(counted)
    try:
        at = float(created)
    except ValueError:
        raise refused from None
    if not bar or not task_id or len(task_id) > _MAX_ID or at != at or abs(at) > 1e12:
        raise refused
    if "\x00" in task_id:  # no task id holds one (PostgreSQL cannot bind it)
        raise refused
    return 0, (at, task_id), total


def token_of(created_at: float, task_id: str, total: int) -> str:
    """The ``nextPageToken`` of the page after the task ``(created_at,
    task_id)``, in a listing of ``total`` tasks."""
    return base64.urlsafe_b64encode(f"{total}:{created_at!r}|{task_id}".encode()).decode()


def _epoch(timestamp: str) -> float:
    """Epoch seconds of an RFC 3339 timestamp (validated already; UTC when it
    has no zone), less half a microsecond: a status timestamp is shown
    rounded to the microsecond, and a client that gives one back must find
    that task again."""
    moment = dt.datetime.fromisoformat(timestamp)
    return (moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)).timestamp() - 5e-7

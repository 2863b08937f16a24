"""``GET /ops/inbox``: everything parked on a person on this node.

Three kinds, in this order: executions asking their caller for input
(A2A INPUT_REQUIRED) and for authorization (AUTH_REQUIRED), each with its
question; then waits for a named event (``agent-node signal``), each with
the event's name and deadline. Every kind is read a page at a time from
the store's own filters (``list_executions(asking=…)``; waiting executions
that ask nothing, whose ``event`` waits are kept), newest first, so a
request reads a page worth of rows, never every execution. The cursor
(``next``) holds the kind reached and the last execution listed of it
(keyset: the next page is an index seek). The page names its store
(``store``, as ``/ops/executions`` does).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from typing import Any

from starlette.datastructures import QueryParams

from agent_node.results import to_event
from agent_node.runtime import Runtime
from agent_node.store import ExecutionRecord, WaitRecord

from .ops_edge import Refused, integer, summary
from .ops_store import store_identity
from .ops_views import question_of

__all__ = ["inbox"]

MAX_PAGE = 200
#: The store's filters of each kind, in the order the inbox lists them.
_KINDS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("input", {"asking": "input"}),
    ("auth", {"asking": "auth"}),
    ("event", {"status": ["waiting"], "asking": "none"}),
)
#: Events read back from the end of a log to find a question (else all of it).
_TAIL = 32


async def inbox(runtime: Runtime, params: QueryParams) -> dict[str, Any]:
    limit = integer(params.get("limit"), "limit", 1, MAX_PAGE, 50)
    phase, before = _decode(params.get("cursor"))
    items: list[dict[str, Any]] = []
    while phase < len(_KINDS) and len(items) < limit:
        kind, filters = _KINDS[phase]
        want = limit - len(items)
        records = await runtime.store.list_executions(
            **filters, limit=want + 1, before=before, state=False
        )
        for record in records[:want]:
            items += await _items(runtime, kind, record)
        if len(records) > want:
            last = records[want - 1]
            before = (last.created_at, last.id)
            break
        phase, before = phase + 1, None
    more = phase < len(_KINDS)
    next_page = _encode(phase, before) if more else None
    return {"items": items, "next": next_page, "store": await store_identity(runtime.store)}


async def _items(runtime: Runtime, kind: str, record: ExecutionRecord) -> list[dict[str, Any]]:
    store = runtime.store
    waits = [w for w in await store.waits(record.id) if w.kind == kind]
    if not waits:
        return []  # moved on since it was listed
    if kind == "event":
        return [_item(kind, record, wait, None) for wait in waits]
    told = [to_event(e) for e in await store.events(record.id, max(0, record.last_seq - _TAIL))]
    question = question_of(told, waits)
    if question is not None and "asked_at" not in question:  # asked long ago: read it all
        told = [to_event(e) for e in await store.events(record.id)]
        question = question_of(told, waits)
    if question is not None and question.get("asked_by"):  # a peer asked: where it is
        question = question_of(told, waits, await store.delegations(record.id))
    return [_item(kind, record, waits[0], question)]


def _item(
    kind: str, record: ExecutionRecord, wait: WaitRecord, question: dict[str, Any] | None
) -> dict[str, Any]:
    return {
        "kind": kind,
        "node": wait.node,
        "visit": wait.visit,
        "event": wait.event,
        "deadline": wait.deadline,
        "question": question,
        "execution": summary(record),
    }


def _encode(phase: int, before: tuple[float, str] | None) -> str:
    raw = json.dumps([phase, *(before or ())], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode(token: str | None) -> tuple[int, tuple[float, str] | None]:
    """The kind reached, and the last execution listed of it (None: its first)."""
    if not token:
        return 0, None
    try:
        raw = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError):
        raise Refused(400, "cursor is not one this API gave out") from None
    if not isinstance(raw, list) or len(raw) not in (1, 3):
        raise Refused(400, "cursor is not one this API gave out")
    phase = raw[0]
    if not isinstance(phase, int) or isinstance(phase, bool) or not 0 <= phase < len(_KINDS):
        raise Refused(400, "cursor is not one this API gave out")
    if len(raw) == 1:
        return phase, None
    at, last = raw[1], raw[2]
    number = isinstance(at, int | float) and not isinstance(at, bool) and math.isfinite(at)
    if not number or not isinstance(last, str):
        raise Refused(400, "cursor is not one this API gave out")
    return phase, (float(at), last)

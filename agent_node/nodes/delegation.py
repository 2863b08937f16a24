"""The state machine of one delegation: how news moves its row (pure).

A delegation row (:class:`~agent_node.store.records.DelegationRecord`)
moves ``sending → sent → (asked ⇄ answered)* →`` settled, or to
``canceling`` once its wait is gone. This module decides each move from
news about the visit, inside the transaction that holds the row as it is
now (:meth:`~agent_node.engine.control.Control.inform`), so a decision can
never rest on a copy read earlier. News comes from the watchdog (a send
answered, a poll, a stream, a relay sent, a send refused for good) and from
pushes, in any order and any number of times:

``accepted``  the peer answered our send: its task (or a message).
``task``      the peer's task as a push, a stream or a poll saw it.
``relayed``   our caller's answer of turn ``turn`` reached the peer's task.
``failed``    the send was refused for good (``error``): the request itself
              is wrong or forbidden.

A peer's task that asks for input or for authorization (INPUT_REQUIRED,
AUTH_REQUIRED: :data:`ASKING`) is a question: the node routes it, or asks
our caller the same — as a wait of kind ``input`` or ``auth``, so our own
task shows the peer's state — and relays the answer down.

Turns. After our caller's answer, a peer still asking may be
asking again or may be stale news of the question answered (a late push, a
poll that crossed the relay, a peer that re-publishes the task at each
turn). It is a new question only if its status is newer than the last
question's: a later status timestamp, or at the same time another status
message id; with neither to compare, only once the peer was seen working on
the answer. So an answer is never asked twice, and never lost.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import replace
from typing import Any, Literal

from agent_node.engine.executor import (
    Advance,
    Finish,
    Keep,
    Park,
    Reaction,
    ResumeContext,
)
from agent_node.store.records import DelegationRecord
from agent_node.workflow.ir import INPUT_EVENT

__all__ = [
    "ASKED_POLL",
    "ASKING",
    "SETTLED",
    "TERMINAL_STATES",
    "matters",
    "react",
    "relay_row",
    "scrub",
    "task_state",
]

#: A2A task states a delegation resumes on (the rest: it goes on waiting).
TERMINAL_STATES = frozenset(
    {"TASK_STATE_COMPLETED", "TASK_STATE_FAILED", "TASK_STATE_CANCELED", "TASK_STATE_REJECTED"}
)
#: A2A task states that ask the delegation's side something -> the kind of
#: wait that asks our caller the same.
ASKING: dict[str, Literal["input", "auth"]] = {
    "TASK_STATE_INPUT_REQUIRED": "input",
    "TASK_STATE_AUTH_REQUIRED": "auth",
}
SETTLED = TERMINAL_STATES | set(ASKING)
#: Seconds between safety polls of a peer whose question our caller has.
ASKED_POLL = 60.0
#: Seconds before the first poll after an answer was relayed.
AFTER_RELAY = 1.0

#: Maps a settled task to the visit's outcome: ``(peer, task, rtt)``.
Settle = Callable[[str, Mapping[str, Any], float], Advance | Finish]
NO_EVENTS: tuple[tuple[str, Mapping[str, Any]], ...] = ()


_URL = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://\S+")


def scrub(text: str) -> str:
    """``text`` without URLs: a peer's words reach our caller, its internal
    hosts (or its own peers') must not."""
    return _URL.sub("<url>", text)


def task_state(task: Mapping[str, Any]) -> str:
    """The ``status.state`` of an A2A task (or status update) as JSON."""
    status = task.get("status")
    return str(status.get("state", "")) if isinstance(status, Mapping) else ""


def react(
    ctx: ResumeContext,
    news: Mapping[str, Any],
    settle: Settle,
    routes_questions: Collection[str],
    fail: Callable[[str], Advance | Finish],
    first_poll: float,
) -> Reaction:
    """The move ``news`` makes (see the module doc). ``settle`` maps a settled
    task to the visit's outcome; ``routes_questions``: the asking states the
    node routes itself (``on_input_required``, ``on_auth_required``) instead
    of asking our caller; ``fail`` maps a refusal for good to the visit's outcome;
    ``first_poll``: seconds until a sent task with no news is polled."""
    row = ctx.delegation
    if row is None:  # settled already: late or duplicate news
        return Keep(), NO_EVENTS
    kind = news.get("kind")
    if kind == "relayed":
        return _relayed(row, ctx, news), NO_EVENTS
    if kind == "failed":
        if row.state == "canceling" or ctx.wait is None:
            return Keep(), NO_EVENTS
        return fail(str(news.get("error") or "the peer refused the task")), NO_EVENTS
    task = news.get("task")
    if kind not in ("accepted", "task") or not isinstance(task, Mapping):
        return Keep(), NO_EVENTS
    row, events = _learned(row, ctx, news, task, first_poll)
    if row.state == "canceling" or ctx.wait is None:
        return Keep(row if row != ctx.delegation else None), events
    state = task_state(task)
    if state in TERMINAL_STATES or not task.get("id"):
        return settle(row.peer, task, ctx.now - row.sent_at), events
    if state in ASKING:
        if state in routes_questions:
            return settle(row.peer, task, ctx.now - row.sent_at), events
        question = _question(task)
        if row.state in ("sending", "sent") or (
            row.state == "answered" and _newer(question, row.question)
        ):
            return _ask(row, ASKING[state], question, ctx.now), events
    elif row.state == "answered" and row.relay is None:
        row = _moved(row)  # working on the answer: a next question is new
    return Keep(row if row != ctx.delegation else None), events


def matters(row: DelegationRecord, task: Mapping[str, Any]) -> bool:
    """Whether news that ``task`` is as it is could move ``row`` (a cheap
    look before a transaction: news that cannot is acknowledged and dropped)."""
    state = task_state(task)
    if row.state == "sent":
        return state in SETTLED
    if row.state == "asked":
        return state in TERMINAL_STATES
    return True  # sending, canceling: its task id; answered: the next turn


def relay_row(row: DelegationRecord, answer: Any, now: float) -> DelegationRecord:
    """Our caller's answer to the peer's question, kept on the row for the
    watchdog to relay (turn ``turn + 1``)."""
    if isinstance(answer, Mapping) and isinstance(answer.get("parts"), list):
        message = {"parts": answer["parts"]}
    elif isinstance(answer, str):
        message = {"parts": [{"text": answer}]}
    else:
        data = answer if isinstance(answer, Mapping) else {"answer": answer}
        message = {"parts": [{"data": data}]}
    return replace(
        row,
        state="answered",
        turn=row.turn + 1,
        relay=json.dumps(message),
        next_poll_at=now,
        polls=0,
        last_error=None,
    )


def _learned(
    row: DelegationRecord,
    ctx: ResumeContext,
    news: Mapping[str, Any],
    task: Mapping[str, Any],
    first_poll: float,
) -> tuple[DelegationRecord, tuple[tuple[str, Mapping[str, Any]], ...]]:
    """What the news tells of the peer's task that the row did not know yet:
    its id (the send is done: ``sending → sent``, logged as
    ``delegation_sent``), and where it was reached."""
    task_id = str(task.get("id") or "")
    changes: dict[str, Any] = {}
    for field in ("peer", "endpoint", "version", "identity"):
        value = news.get(field)
        if value and not getattr(row, field):
            changes[field] = value
    if task_id and not row.remote_task_id:
        changes["remote_task_id"] = task_id
    events: tuple[tuple[str, Mapping[str, Any]], ...] = NO_EVENTS
    if row.state == "sending":
        follow = bool(news.get("follow"))
        changes.update(
            state="sent",
            polls=0,
            last_error=None,
            next_poll_at=ctx.now if follow else ctx.now + first_poll,
        )
    elif row.state == "canceling" and "remote_task_id" in changes:
        changes["next_poll_at"] = ctx.now  # now its task can be canceled
    if not changes:
        return row, events
    learned = replace(row, **changes)
    if row.state == "sending":
        sent = {
            "peer": learned.peer,
            "task_id": learned.remote_task_id,
            "endpoint": learned.endpoint,
            "version": learned.version,
            "identity": learned.identity,
            "via": str(news.get("via") or "send"),
        }
        if news.get("auth"):  # the scheme presented besides our certificate
            sent["auth"] = str(news["auth"])
        events = (("delegation_sent", sent),)
    return learned, events


def _relayed(row: DelegationRecord, ctx: ResumeContext, news: Mapping[str, Any]) -> Keep:
    if row.state != "answered" or row.turn != news.get("turn") or row.relay is None:
        return Keep()  # a relay of an earlier turn, or one recorded already
    return Keep(replace(row, relay=None, polls=0, next_poll_at=ctx.now + AFTER_RELAY))


def _ask(
    row: DelegationRecord, kind: Literal["input", "auth"], question: dict[str, Any], now: float
) -> Park:
    """The peer asks for input or authorization: ask our caller the same (the row stays)."""
    asked = replace(
        row,
        state="asked",
        question=json.dumps(question),
        relay=None,
        polls=0,
        next_poll_at=now + ASKED_POLL,
    )
    asks = "authorization" if kind == "auth" else "input"
    prompt = question["text"] or f"{row.peer} asks for {asks}."
    info = {"prompt": prompt, "asked_by": {"peer": row.peer, "task_id": row.remote_task_id}}
    return Park(kind, event=INPUT_EVENT, info=info, delegation=asked)


def _question(task: Mapping[str, Any]) -> dict[str, Any]:
    """The question of an asking task: its status message's id, the status
    timestamp, the message's text."""
    status = _mapping(task.get("status"))
    message = _mapping(status.get("message"))
    parts = message.get("parts")
    parts = parts if isinstance(parts, list) else []
    texts = [p["text"] for p in parts if isinstance(p, Mapping) and isinstance(p.get("text"), str)]
    return {
        "id": message.get("messageId") or None,
        "at": status.get("timestamp") or None,
        "text": "\n".join(texts),
    }


def _newer(question: Mapping[str, Any], recorded: str | None) -> bool:
    """Whether ``question`` is asked after the one recorded (see the module doc)."""
    if recorded is None:
        return True
    last = json.loads(recorded)
    at, last_at = _instant(question.get("at")), _instant(last.get("at"))
    if at is not None and last_at is not None and at != last_at:
        return at > last_at
    if question.get("id") and last.get("id"):
        return bool(question["id"] != last["id"])
    if at is not None and last_at is not None:  # same instant, no ids
        return False
    return bool(last.get("moved"))


def _moved(row: DelegationRecord) -> DelegationRecord:
    """The peer was seen working after our answer reached it."""
    last = json.loads(row.question) if row.question else {}
    if last.get("moved"):
        return row
    return replace(row, question=json.dumps({**last, "moved": True}))


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _instant(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        instant = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return instant if instant.tzinfo else instant.replace(tzinfo=dt.UTC)

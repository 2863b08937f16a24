"""What an execution's log says besides its steps: its errors, and its notes.

``errors`` are failures only: an attempt that failed (``node_failed``,
with its error, type, traceback and whether a retry follows) and the
execution's own end in failure (``execution_failed``). Everything else a
person may want to read of the log is a note, never an error: the messages
the caller sent (``message_received``), a budget set for the execution, a
visit that waited for a model's slot, and a visit a service asked to come
back later (an HTTP 429: ``node_failed`` marked ``throttled`` — the visit
is parked on a timer and uses no attempt; nothing failed).

Each note is ``{kind, node, visit, at, text}``; the event log holds the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from agent_node.nodes.model_budget import BUDGET_EVENT
from agent_node.results import Event

from .taskview import MESSAGE_EVENT

__all__ = ["errors_of", "notes_of"]

#: The longest text a note shows of a message.
_TEXT = 300


def errors_of(events: Sequence[Event]) -> list[dict[str, Any]]:
    found = []
    for event in events:
        data = event.data or {}
        if event.kind == "node_failed" and not data.get("throttled"):
            found.append(
                {
                    "node": event.node,
                    "visit": event.visit,
                    "attempt": event.attempt,
                    "at": event.at,
                    "error": data.get("error"),
                    "type": data.get("type"),
                    "retry_at": data.get("retry_at"),
                    "traceback": data.get("traceback"),
                }
            )
        elif event.kind == "execution_failed":
            found.append({"node": None, "at": event.at, "error": data.get("error")})
    return found


def notes_of(events: Sequence[Event]) -> list[dict[str, Any]]:
    found = []
    for event in events:
        data = event.data or {}
        say = _NOTES.get(event.kind)
        text = say(data) if say is not None else None
        if text is not None:
            found.append(
                {
                    "kind": _KIND.get(event.kind, event.kind),
                    "node": event.node,
                    "visit": event.visit,
                    "at": event.at,
                    "text": text,
                }
            )
    return found


def _message(data: dict[str, Any]) -> str:
    given = data.get("parts")
    parts: list[Any] = given if isinstance(given, list) else []
    texts = [p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str)]
    others = len(parts) - len(texts)
    said = " ".join(texts) or "(no text)"
    said = said if len(said) <= _TEXT else said[: _TEXT - 1] + "…"
    return said + (f" (+{others} other part{'s' * (others > 1)})" if others else "")


def _throttled(data: dict[str, Any]) -> str | None:
    if not data.get("throttled"):
        return None
    return f"asked to come back in {data.get('wait')} s: {data.get('error')}"


def _budget(data: dict[str, Any]) -> str:
    limits = ", ".join(f"{key} {value}" for key, value in data.items() if value is not None)
    return f"budget: {limits or 'none'}"


def _queued(data: dict[str, Any]) -> str:
    across = ", across the store's processes" if data.get("shared") else ""
    return f"waits for a slot of {data.get('backend')} ({data.get('limit')} at once{across})"


_NOTES: dict[str, Callable[[dict[str, Any]], str | None]] = {
    MESSAGE_EVENT: _message,
    "node_failed": _throttled,
    BUDGET_EVENT: _budget,
    "node_queued": _queued,
}
#: A note's kind where it is not the event's.
_KIND = {MESSAGE_EVENT: "message", "node_failed": "throttled", BUDGET_EVENT: "budget"}

"""An A2A task is an execution: how one is shown as the other, and back.

Status: pending → SUBMITTED; running, or parked on anything but its caller
→ WORKING; parked on human input → INPUT_REQUIRED, on an authorization →
AUTH_REQUIRED (first when it asks both), with the prompt as the status
message; completed → COMPLETED; failed → FAILED (the error as the status
message); canceled → CANCELED.

History comes from the log: every ``message_received`` event (the caller's
messages, as received) and every prompt (the agent's messages).

The answer: a completed execution's output (the ``end`` node's output,
else the final state) is one artifact named ``result``: a ``data`` part
holding it, preceded by a ``text`` part when it has a string ``reply``. An
output can also say exactly what the caller gets:

* ``artifacts`` — a list of A2A artifacts (``{parts: [...], name?, ...}``),
  sent as they are instead of ``result`` (an invalid one falls back to
  ``result`` and is logged);
* ``status_message`` — the text of the final status message;
* ``respond_with: "message"`` — answer ``SendMessage`` with a Message
  holding ``reply``, not with the task.

These three are instructions, never echoed in the ``result`` artifact.
Parts in a mode the client does not accept are left out
(:mod:`agent_node.a2a.server.output_modes`).

Input: a message fills the state fields named ``text`` (its text parts,
joined), ``data`` (its data parts, merged), ``message`` (the whole message:
how file parts reach a workflow), and any field named like a key of its
data parts (every part in a mode the skill takes:
:mod:`agent_node.a2a.server.input_modes`); ``context`` gets the
conversation (:mod:`agent_node.a2a.server.task_context`). A follow-up message
answers a wait for input with its text, else its data — or with the whole
message when the wait's ``output`` field is named ``message``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ValidationError

from agent_node.a2a.protocol.errors import InvalidParams
from agent_node.a2a.protocol.models import (
    Artifact,
    Message,
    Part,
    Role,
    Task,
    TaskState,
    TaskStatus,
)
from agent_node.a2a.server.output_modes import METADATA_KEY, shown
from agent_node.results import Event
from agent_node.store.records import ExecutionRecord, WaitRecord, asking_of

__all__ = [
    "MESSAGE_EVENT",
    "TASK_EVENTS",
    "answer_from_message",
    "output_of",
    "render_task",
    "reply_message",
    "state_from_message",
]

log = logging.getLogger(__name__)

#: Output keys that instruct the A2A layer; they are not part of the answer.
CONTROL_KEYS = frozenset({"artifacts", "status_message", "respond_with"})

#: The event kind that logs a message received from the caller.
MESSAGE_EVENT = "message_received"
#: The only event kinds a task is rendered from: the rest of a log can be
#: left unparsed (``execution_completed`` is always an execution's last event).
TASK_EVENTS = frozenset({MESSAGE_EVENT, "wait_started", "execution_completed"})

_ASKING_STATE = {"auth": TaskState.AUTH_REQUIRED, "input": TaskState.INPUT_REQUIRED}
_SIMPLE_STATUS = {
    "pending": TaskState.SUBMITTED,
    "running": TaskState.WORKING,
    "completed": TaskState.COMPLETED,
    "failed": TaskState.FAILED,
    "canceled": TaskState.CANCELED,
}


def render_task(
    record: ExecutionRecord,
    events: list[Event],
    waits: list[WaitRecord],
    *,
    history_length: int | None = None,
    include_artifacts: bool = True,
) -> Task:
    """The task of ``record``; ``events``: its log, or just its :data:`TASK_EVENTS`."""
    context_id = record.context_id or record.id
    history = _history(record.id, context_id, events)
    if history_length is not None:
        history = history[-history_length:] if history_length > 0 else []
    metadata = json.loads(record.metadata) if record.metadata else None
    accepted = (metadata or {}).get(METADATA_KEY)
    status = _status(record, events, waits, context_id)
    artifacts = _artifacts(record, events) if include_artifacts or accepted else []
    if accepted:
        artifacts, dropped = shown(artifacts, accepted)
        if dropped and not artifacts:
            status = _unacceptable(record.id, context_id, status, dropped, accepted)
    return Task(
        id=record.id,
        context_id=context_id,
        status=status,
        artifacts=(artifacts or None) if include_artifacts else None,
        history=history or None,
        metadata=metadata,
    )


def _unacceptable(
    task_id: str, context_id: str, status: TaskStatus, modes: list[str], accepted: list[str]
) -> TaskStatus:
    """A completed task whose output the client accepts none of: FAILED, saying why."""
    why = (
        f"the task's output is in {', '.join(modes)}; none of it is in an accepted"
        f" output mode ({', '.join(accepted)})"
    )
    message = _agent_message(task_id, context_id, "error", why)
    return TaskStatus(state=TaskState.FAILED, message=message, timestamp=status.timestamp)


def _status(
    record: ExecutionRecord, events: list[Event], waits: list[WaitRecord], context_id: str
) -> TaskStatus:
    stamp = datetime.fromtimestamp(record.updated_at, UTC).isoformat().replace("+00:00", "Z")
    if record.status == "waiting":
        asking = asking_of(record.status, {w.kind for w in waits})
        if asking == "none":
            return TaskStatus(state=TaskState.WORKING, timestamp=stamp)
        wait = next(w for w in waits if w.kind == asking)
        suffix, prompt = _prompt_of(events, wait)
        message = _agent_message(record.id, context_id, suffix, prompt)
        return TaskStatus(state=_ASKING_STATE[asking], message=message, timestamp=stamp)
    state = _SIMPLE_STATUS[record.status]
    said: Message | None = None
    if record.status == "failed" and record.error:
        said = _agent_message(record.id, context_id, "error", record.error)
    elif record.status == "completed":
        output = output_of(record, events)
        if isinstance(output, Mapping) and isinstance(output.get("status_message"), str):
            said = _agent_message(record.id, context_id, "status", output["status_message"])
    return TaskStatus(state=state, message=said, timestamp=stamp)


def reply_message(record: ExecutionRecord, events: list[Event]) -> Message | None:
    """The Message to answer with, when a completed task's output asks for one."""
    output = output_of(record, events) if record.status == "completed" else None
    if not isinstance(output, Mapping) or output.get("respond_with") != "message":
        return None
    text = output.get("reply")
    context_id = record.context_id or record.id
    return _agent_message(record.id, context_id, "reply", text if isinstance(text, str) else "")


def _prompt_of(events: list[Event], wait: WaitRecord) -> tuple[str, str]:
    """The question of ``wait``: its message id's suffix and its text. The id is
    the one the question has in the history (``prompt-<seq>`` of its
    ``wait_started``), so a client sees one message, and each ask a new id."""
    default = "Authorization required." if wait.kind == "auth" else "Input required."
    for event in reversed(events):
        if event.kind == "wait_started" and (event.node, event.visit) == (wait.node, wait.visit):
            prompt = (event.data or {}).get("prompt")
            return f"prompt-{event.seq}", str(prompt or default)
    return f"prompt-{wait.node}", default


def _history(task_id: str, context_id: str, events: list[Event]) -> list[Message]:
    history: list[Message] = []
    for event in events:
        if event.kind == MESSAGE_EVENT and event.data:
            history.append(Message.model_validate(event.data))
        elif event.kind == "wait_started" and event.data and event.data.get("prompt"):
            history.append(
                _agent_message(task_id, context_id, f"prompt-{event.seq}", event.data["prompt"])
            )
    return history


def output_of(record: ExecutionRecord, events: list[Event]) -> Any:
    """A completed execution's output: the end node's, else the final state."""
    last = events[-1] if events else None
    output = (
        (last.data or {}).get("output") if last and last.kind == "execution_completed" else None
    )
    return json.loads(record.state) if output is None else output


def _artifacts(record: ExecutionRecord, events: list[Event]) -> list[Artifact]:
    if record.status != "completed":
        return []
    output = output_of(record, events)
    explicit = output.get("artifacts") if isinstance(output, Mapping) else None
    if isinstance(explicit, list):
        try:
            return [
                Artifact.model_validate({"artifactId": f"{record.id}-{i}", **artifact})
                for i, artifact in enumerate(explicit)
            ]
        except (TypeError, ValidationError) as exc:
            log.warning("task %s: its output's artifacts are not A2A artifacts: %s", record.id, exc)
    parts: list[Part] = []
    if isinstance(output, Mapping):
        if isinstance(output.get("reply"), str):
            parts.append(Part(text=output["reply"]))
        output = {key: value for key, value in output.items() if key not in CONTROL_KEYS}
    parts.append(Part(data=output))
    return [Artifact(artifact_id=f"{record.id}-result", name="result", parts=parts)]


def _agent_message(task_id: str, context_id: str, suffix: str, text: str) -> Message:
    return Message(
        message_id=f"{task_id}-{suffix}",
        role=Role.AGENT,
        parts=[Part(text=text)],
        task_id=task_id,
        context_id=context_id,
    )


def _text_and_data(message: Message) -> tuple[str | None, dict[str, Any]]:
    texts = [p.text for p in message.parts if p.text is not None]
    data: dict[str, Any] = {}
    for part in message.parts:
        if isinstance(part.data, Mapping):
            data.update(part.data)
    return ("\n".join(texts) if texts else None), data


def state_from_message(
    model: type[BaseModel], message: Message, extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The input state for a new task (see the module docstring); ``extra``:
    fields the node fills itself (its conversation's ``context``)."""
    text, data = _text_and_data(message)
    fields = model.model_fields
    state: dict[str, Any] = {key: value for key, value in data.items() if key in fields}
    state.update(extra or {})
    if "text" in fields and text is not None:
        state["text"] = text
    if "data" in fields and data:
        state["data"] = data
    if "message" in fields:
        state["message"] = message.to_json()
    try:
        return model.model_validate(state).model_dump(mode="json")
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(state)'}: {e['msg']}" for e in exc.errors()
        )
        hint = _data_hint(exc) if text is not None and "text" not in fields else ""
        raise InvalidParams(
            f"the message does not fit the skill's input: {problems}{hint}"
        ) from None


def _data_hint(exc: ValidationError) -> str:
    """For text sent to a skill that reads none: how to send what it lacks."""
    missing = [str(e["loc"][0]) for e in exc.errors() if e["type"] == "missing" and e["loc"]]
    if not missing:
        return ""
    fields = ", ".join(f'"{name}": …' for name in missing)
    return f' (this skill reads no text: send its fields as a data part, {{"data": {{{fields}}}}})'


def answer_from_message(message: Message) -> Any:
    """What a follow-up message answers an input wait with: its text, else its data."""
    text, data = _text_and_data(message)
    return text if text is not None else data

"""The conformance agent: answers the A2A TCK's scenarios, chosen by messageId prefix.

Built with the SDK like any agent; every answer goes through the output
contract of the A2A layer (``reply``, ``status_message``, ``artifacts``,
``respond_with``), ``tck-input-required`` parks on a real wait for input
whose answer (the whole follow-up message) loops back to ``route``, and
``tck-auth-required`` on a wait for authorization (AUTH_REQUIRED): whatever
follow-up answers it is taken as the authorization, and routed in turn
(a ``tck-auth-required`` one then completes the task).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from agent_node import Workflow

wf = Workflow(
    "conformance",
    version="1",
    description="Answers the A2A TCK's scenarios, chosen by the message id's prefix.",
)


@wf.state
class Turn(BaseModel):
    message: dict[str, Any] = {}
    reply: str | None = None
    status_message: str | None = None
    respond_with: str | None = None
    artifacts: list[dict[str, Any]] | None = None
    authorized: bool = False


def _file(**where: str) -> dict[str, Any]:
    return {"parts": [{**where, "filename": "output.txt", "mediaType": "text/plain"}]}


#: Longer prefixes first: the first that matches wins.
ANSWERS: list[tuple[str, dict[str, Any]]] = [
    ("tck-message-response", {"reply": "Direct message response", "respond_with": "message"}),
    ("tck-artifact-text", {"artifacts": [{"parts": [{"text": "Generated text content"}]}]}),
    ("tck-artifact-file-url", {"artifacts": [_file(url="https://example.com/output.txt")]}),
    ("tck-artifact-file", {"artifacts": [_file(raw="dGNr")]}),
    ("tck-artifact-data", {"artifacts": [{"parts": [{"data": {"key": "value", "count": 42}}]}]}),
    ("tck-stream-artifact-text", {"artifacts": [{"parts": [{"text": "Streamed text content"}]}]}),
    ("tck-stream-001", {"artifacts": [{"parts": [{"text": "Stream hello from TCK"}]}]}),
    ("tck-stream-003", {"artifacts": [{"parts": [{"text": "Stream task lifecycle"}]}]}),
    ("tck-stream-ordering-001", {"artifacts": [{"parts": [{"text": "Ordered output"}]}]}),
    ("tck-complete-task", {"status_message": "Hello from TCK"}),
    ("tck-auth-required", {"status_message": "Authorized"}),
]


def message_id(turn: Turn) -> str:
    return str(turn.message.get("messageId", ""))


def where(turn: Turn) -> str:
    """``ask`` for input, ``authorize`` (once), or ``done``."""
    mid = message_id(turn)
    if mid.startswith("tck-input-required"):
        return "ask"
    return "authorize" if mid.startswith("tck-auth-required") and not turn.authorized else "done"


@wf.step(next=where, routes=["ask", "authorize", "done"])
async def route(turn: Turn) -> dict[str, Any]:
    if where(turn) != "done":
        return {}
    mid = message_id(turn)
    for prefix, answer in ANSWERS:
        if mid.startswith(prefix):
            return answer
    return {"status_message": f"Unhandled messageId prefix: {mid}"}


wf.wait(
    "ask", input="Input required: send tck-complete-task to finish.", output="message", next="route"
)
wf.wait(
    "authorize",
    auth="Authorization required: send any message on this task to grant it.",
    output="message",
    next="granted",
)


@wf.step(next="route")
async def granted(turn: Turn) -> dict[str, Any]:
    return {"authorized": True}


wf.end("done", output=["reply", "status_message", "respond_with", "artifacts"])

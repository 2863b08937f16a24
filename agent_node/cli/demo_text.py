"""The agents' text in ``agent-node demo``'s live view, as it is written.

The demo subscribes to the coordinator's task (``SubscribeToTask``, the
same A2A stream any client may read). The coordinator relays the text its
peers' models write — the researcher's notes, the writer's draft — as
``artifactUpdate`` chunks of one artifact per model node visit (their ids
``<coordinator visit>/<peer visit>``, :mod:`agent_node.a2a.peers.chunk_relay`),
and what its own model nodes write (not its judge's grades: those stay in
the node);
:class:`LiveText` keeps each artifact's text and shows the one written last,
under the table of steps. Seeing the text is a nicety: a stream that cannot
be read leaves the steps and the answer as they are.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from rich.panel import Panel

from .render import plain

__all__ = ["LiveText", "read_text"]

#: Characters of the text shown (its end: what is being written).
SHOWN = 600


@dataclass
class _Written:
    #: The coordinator's node that delegated it, and the peer's node writing it.
    via: str
    node: str
    text: str = ""
    done: bool = False


@dataclass
class LiveText:
    """The text of each artifact being written, from a task's stream."""

    #: The coordinator's delegate node → the agent it asks (``research`` → researcher).
    agents: dict[str, str] = field(default_factory=dict)
    #: Whose task it is: text written there, not relayed, is this agent's.
    root: str = "coordinator"
    streams: dict[str, _Written] = field(default_factory=dict)
    last: str | None = None
    #: When the first piece of text came (``time.perf_counter``).
    first_at: float | None = None

    def take(self, update: dict[str, Any]) -> None:
        """One ``artifactUpdate`` of the stream."""
        artifact = update.get("artifact") or {}
        stream = str(artifact.get("artifactId") or "")
        if update.get("lastChunk") and not update.get("append"):
            return  # a whole artifact (the answer), not text being written
        parts = artifact.get("parts") or []
        text = "".join(part["text"] for part in parts if isinstance(part.get("text"), str))
        written = self.streams.get(stream)
        if written is None or not update.get("append"):
            visit = stream.split("/", 1)[0].rsplit("-", 2)
            via = visit[-2] if len(visit) == 3 else "?"
            if "/" not in stream:  # the coordinator's own
                via = self.root
            written = self.streams[stream] = _Written(via, str(artifact.get("name") or "?"))
        written.text += text
        written.done = bool(update.get("lastChunk"))
        self.last = stream
        if text and self.first_at is None:
            self.first_at = time.perf_counter()

    def panel(self) -> Panel | None:
        """The text written last, its end shown (None before any)."""
        written = self.streams.get(self.last or "")
        if written is None:
            return None
        shown = written.text if len(written.text) <= SHOWN else "…" + written.text[-SHOWN:]
        state = "wrote" if written.done else "is writing"
        title = f"{self.agents.get(written.via, written.via)} {state} ({written.node})"
        return Panel(plain(shown, lines=True), title=plain(title), title_align="left", expand=True)


async def read_text(http: httpx.AsyncClient, url: str, task_id: str, text: LiveText) -> None:
    """Feed ``text`` from ``SubscribeToTask`` on ``url`` until the stream ends."""
    body = {"jsonrpc": "2.0", "id": 1, "method": "SubscribeToTask", "params": {"id": task_id}}
    headers = {"A2A-Version": "1.0", "Accept": "text/event-stream"}
    with contextlib.suppress(httpx.HTTPError, ValueError):
        async with http.stream(
            "POST", f"{url}/a2a", json=body, headers=headers, timeout=None
        ) as answer:
            if answer.status_code != 200:
                return
            async for line in answer.aiter_lines():
                if not line.startswith("data:"):
                    continue
                event = json.loads(line[5:]).get("result") or {}
                if isinstance(event.get("artifactUpdate"), dict):
                    text.take(event["artifactUpdate"])

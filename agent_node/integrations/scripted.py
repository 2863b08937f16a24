"""The offline scripted model: canned answers for the demo, no model at all.

``scripted/<anything>`` names it wherever a model string goes (a node's
``model``, ``models.default``). It plays the three parts of the demo network
(``examples/network/``) by looking at what it is asked, never at the
network: a *researcher* (the system prompt mentions research) answers with
notes, a *writer* (it mentions writing) with a paragraph built from the
notes, and a *judge* (the answer's schema has a ``score``) grades a text:
low when it has no conclusion, high when it has one. Anything else is
answered with what was asked, marked as the scripted model's. So the demo's first
draft is sent back for one revision, and the revision passes — the path the
demo exists to show, on any machine.

It is announced as what it is wherever it is used: the demo says so, and
every answer is marked as scripted in its usage (``model: scripted/…``, no
tokens are counted as a model's). ``$AGENT_NODE_SCRIPTED_DELAY`` (seconds)
paces each answer, so a live view can be followed.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from agent_node.nodes.model_client import Completion

__all__ = ["PREFIX", "complete"]

PREFIX = "scripted/"
CONCLUSION = "In short"
_QUESTION = re.compile(r"^\s*(?:Question|Q)\s*:\s*(?P<q>.+)$", re.IGNORECASE | re.MULTILINE)
_BULLET = re.compile(r"^\s*[-*•]\s+(?P<item>.+)$", re.MULTILINE)

#: Notes for the demo's default question (any other question gets honest filler).
_KNOWN: dict[str, tuple[list[str], str]] = {
    "durable": (
        [
            "A delegation can take minutes or hours: the calling agent must not hold a"
            " process, a thread or memory while it waits.",
            "Either agent can crash or be redeployed mid-task; without a durable record"
            " the work is lost or, worse, done twice.",
            "Idempotency keys on every message let a retried send find the task the"
            " first one created instead of starting another.",
            "Push notifications resume the caller at once; polling by a watchdog"
            " covers the pushes that never arrive.",
        ],
        "durable workflows turn a fragile chain of calls between agents into work"
        " that finishes exactly once, whatever crashes in between.",
    ),
}


async def complete(
    model: str,
    messages: Sequence[Mapping[str, Any]],
    response_format: Mapping[str, Any] | None = None,
    on_text: Callable[[str], None] | None = None,
) -> Completion:
    """Answer like :meth:`LlmClient.complete` would, from the script: with
    ``on_text``, word by word (``AGENT_NODE_SCRIPTED_DELAY`` spread over
    the words, as a model's time goes into its tokens)."""
    started = time.perf_counter()
    delay = float(os.environ.get("AGENT_NODE_SCRIPTED_DELAY") or 0)
    if delay > 0 and on_text is None:
        await asyncio.sleep(delay)
    text = _answer(messages, response_format)
    if on_text is not None:
        words = re.findall(r"\s*\S+", text) or [text]
        for word in words:
            if delay > 0:
                await asyncio.sleep(delay / len(words))
            on_text(word)
    return Completion(model=model, text=text, latency_s=time.perf_counter() - started)


def _answer(
    messages: Sequence[Mapping[str, Any]], response_format: Mapping[str, Any] | None
) -> str:
    system = " ".join(str(m.get("content") or "") for m in messages if m.get("role") == "system")
    asked = next(
        (str(m.get("content") or "") for m in reversed(messages) if m.get("role") == "user"), ""
    )
    if _is_judge(response_format):
        text = _judge(asked)
    elif "research" in system.lower():
        text = _notes(asked)
    elif "writ" in system.lower():
        text = _draft(asked)
    else:
        text = _echo(asked)
    return text


def _is_judge(response_format: Mapping[str, Any] | None) -> bool:
    schema = ((response_format or {}).get("json_schema") or {}).get("schema") or {}
    return "score" in (schema.get("properties") or {})


def _question(asked: str) -> str:
    found = _QUESTION.search(asked)
    return (found.group("q") if found else asked).strip()


def _known(question: str) -> tuple[list[str], str] | None:
    lowered = question.lower()
    return next((notes for key, notes in _KNOWN.items() if key in lowered), None)


def _notes(asked: str) -> str:
    question = _question(asked)
    known = _known(question)
    if known is not None:
        return "\n".join(f"- {note}" for note in known[0])
    return "\n".join(
        [
            f"- The question asked: {question}",
            "- These notes are canned: the offline scripted model knows nothing about it.",
            "- For a real answer, start Ollama (`ollama serve`, `ollama pull llama3.2:1b`)"
            " and run the demo again.",
        ]
    )


def _draft(asked: str) -> str:
    question = _question(asked)
    # The notes only: the editor's feedback, after them, is bulleted too.
    section = asked.partition("Notes:")[2] or asked
    section = re.split(r"\n\s*An editor\b", section, maxsplit=1)[0]
    notes = [m.group("item").strip() for m in _BULLET.finditer(section)]
    body = " ".join(note if note.endswith((".", "?", "!")) else note + "." for note in notes[:5])
    if not body:
        body = f"This is the scripted writer's answer to: {question}."
    revising = "feedback" in asked.lower() or "revise" in asked.lower()
    if not revising:
        return body
    known = _known(question)
    conclusion = known[1] if known else "this answer is canned; run with Ollama for a real one."
    return f"{body} {CONCLUSION}, {conclusion}"


def _echo(asked: str) -> str:
    said = asked if len(asked) <= 200 else asked[:199] + "…"
    return (
        f"[offline scripted model] I cannot think; you asked: {said!r}. Name a real model"
        " (models.default) for a real answer."
    )


def _judge(asked: str) -> str:
    submission = asked.partition("Submission:")[2] or asked
    if CONCLUSION.lower() in submission.lower():
        verdict = {"score": 5, "reason": "It answers the question and ends with a conclusion."}
    else:
        verdict = {
            "score": 2,
            "reason": "It lists the facts but never answers the question directly:"
            " end with a one-sentence conclusion.",
        }
    return json.dumps(verdict)

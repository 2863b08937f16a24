"""What litellm answers, read: a streamed answer assembled (its text given
on as it comes), a whole one, into a :class:`~agent_node.nodes.model_client.Completion`
— its text, tool calls, the token counts and the cost litellm gives.

A stream that ends without the provider saying why it stopped (no finish
reason: closed mid-answer) fails the call (:class:`ModelUnavailable`, as a
dropped connection does); litellm would make up a ``stop`` for it.

Each tool call a streamed answer opens is given an id when it came without
one, before litellm's ``stream_chunk_builder`` assembles the answer: it
drops a call that has none, silently, and litellm gives an Ollama call one
only when its arguments are not empty (a call of a tool that takes no
arguments was lost, the node ending with no text and no call made); some
OpenAI-compatible servers send none at all. Ollama's pieces each carry
whole calls, which litellm numbers from 0 in every piece: they are
numbered across the answer, or the builder would merge two calls that came
in two pieces into one. A call's arguments are JSON text: none (``""``, as
some servers send for a tool without parameters) is ``{}``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import Any

from agent_node.errors import NodeFailed
from agent_node.nodes.model_client import Completion, ModelUnavailable, ToolCall

__all__ = ["completion", "streamed"]


async def streamed(
    litellm: ModuleType,
    model: str,
    messages: Sequence[Mapping[str, Any]],
    options: Any,
    on_text: Callable[[str], None] | None,
) -> Any:
    """``model``'s answer, streamed and assembled as litellm's whole answer."""
    stream = await litellm.acompletion(
        model=model,
        messages=list(messages),
        stream=True,
        stream_options={"include_usage": True},
        **options,
    )
    chunks = []
    calls = _Calls(whole=model.startswith(("ollama_chat/", "ollama/")))
    async for chunk in stream:
        calls.mark(chunk)
        chunks.append(chunk)
        if on_text is not None and (text := _delta_text(chunk)):
            on_text(text)
    if _unended(stream):
        came = sum(len(_delta_text(chunk) or "") for chunk in chunks)
        raise ModelUnavailable(
            f"model {model!r}: the answer's stream ended before the answer did"
            f" (no finish reason; {came} characters had come)"
        )
    built = litellm.stream_chunk_builder(chunks, messages=list(messages))
    if built is None:
        raise NodeFailed(f"model {model!r}: the stream ended without an answer")
    return built


class _Calls:
    """The tool calls of a streamed answer, marked as they come so that
    litellm's ``stream_chunk_builder`` keeps each (see the module doc).

    ``whole``: each piece's calls are whole calls (Ollama's), not fragments
    of calls an ``index`` ties together (OpenAI's)."""

    def __init__(self, *, whole: bool) -> None:
        self.whole = whole
        #: The (choice, call) indexes of the calls opened so far.
        self.opened: set[tuple[int, int]] = set()

    def mark(self, chunk: Any) -> None:
        for choice in getattr(chunk, "choices", None) or ():
            delta = getattr(choice, "delta", None)
            for call in getattr(delta, "tool_calls", None) or ():
                if self.whole:
                    call.index = len(self.opened)
                key = (int(getattr(choice, "index", 0) or 0), int(call.index or 0))
                named = getattr(getattr(call, "function", None), "name", None)
                if not call.id and named and key not in self.opened:
                    call.id = f"call_{uuid.uuid4().hex}"
                if call.id or self.whole:
                    self.opened.add(key)


def _unended(stream: Any) -> bool:
    """Whether litellm's stream ended without the provider saying why (a
    finish reason): a stream closed mid-answer, which litellm finishes with
    a made-up ``stop`` of its own."""
    if not hasattr(stream, "received_finish_reason"):
        return False  # a litellm that keeps no such record: nothing to tell by
    said = (stream.received_finish_reason, getattr(stream, "intermittent_finish_reason", None))
    return all(reason is None for reason in said)


def _delta_text(chunk: Any) -> str | None:
    """The text a streamed chunk adds, if any."""
    choices = getattr(chunk, "choices", None)
    if not choices:
        return None
    delta = getattr(choices[0], "delta", None)
    text = getattr(delta, "content", None)
    return text if isinstance(text, str) else None


def completion(litellm: ModuleType, model: str, response: Any, latency: float) -> Completion:
    """The answer ``response`` of ``model`` as a Completion (``latency``: its seconds)."""
    choices = getattr(response, "choices", None) or []
    if not choices:
        raise NodeFailed(f"model {model!r}: the answer has no choices")
    message = choices[0].message
    calls = tuple(
        ToolCall(
            id=str(call.id or f"call_{index}"),
            name=str(call.function.name or ""),
            arguments=_arguments(call.function.arguments),
        )
        for index, call in enumerate(getattr(message, "tool_calls", None) or [])
    )
    return Completion(
        model=model,
        text=message.content or "",
        tool_calls=calls,
        usage=_usage(getattr(response, "usage", None)),
        cost=_cost(litellm, response),
        latency_s=latency,
        finish_reason=_said(getattr(choices[0], "finish_reason", None)),
    )


def _said(reason: object) -> str | None:
    return str(reason) if reason else None


def _arguments(raw: object) -> str:
    """The call's arguments as JSON text; none (a server's ``""``) is ``{}``."""
    if isinstance(raw, str):
        return raw if raw.strip() else "{}"
    return json.dumps(raw if raw is not None else {})


def _usage(usage: Any) -> dict[str, int]:
    prompt = int(getattr(usage, "prompt_tokens", 0) or 0)
    completion = int(getattr(usage, "completion_tokens", 0) or 0)
    total = int(getattr(usage, "total_tokens", 0) or 0) or prompt + completion
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": total}


def _cost(litellm: ModuleType, response: Any) -> float | None:
    hidden = getattr(response, "_hidden_params", None) or {}
    cost = hidden.get("response_cost")
    if cost is None:
        try:
            cost = litellm.completion_cost(completion_response=response)
        except Exception:  # an unpriced model: no cost, not a failure
            return None
    return float(cost) if isinstance(cost, int | float) else None

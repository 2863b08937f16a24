"""A fake OpenAI-compatible server (llama.cpp's ``llama-server``, LM Studio,
vLLM speak this): real HTTP on a loopback port, scripted answers.

``POST /v1/chat/completions`` answers one ``chat.completion`` object, or —
with ``"stream": true`` — server-sent events of ``chat.completion.chunk``
objects (``delta.content`` pieces, a ``finish_reason``, the usage when
``stream_options.include_usage`` asks, then ``data: [DONE]``), as those
servers do. Scripted ``tool_calls`` come after the text, each as OpenAI
streams one: a delta with its ``id`` (when the call has one), ``name`` and
``arguments: ""``, then its arguments (when there are any) in a delta of
their own. ``GET /v1/models`` lists the model. Every chat request is
recorded. It runs uvicorn in a thread of its own, like the fake Ollama.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from support.fake_ollama import in_thread

MODEL = "local-model"


@dataclass
class FakeOpenAI:
    url: str
    #: What the model says to every chat request.
    answer: str = "Hello from an OpenAI-compatible server."
    #: How many pieces a streamed answer is cut into (at most).
    pieces: int = 4
    #: Why the model stopped (``finish_reason``: ``stop``, ``length`` …).
    finish_reason: str = "stop"
    #: Whether answers give their usage (a server that counts nothing: False).
    counted: bool = True
    #: How many streamed answers, from the next, end cleanly after
    #: ``closed_after`` pieces with neither a finish reason nor ``[DONE]``
    #: (a server or proxy that gives up mid-answer).
    unended: int = 0
    closed_after: int = 1
    #: A whole (not streamed) answer's body, sent as it is with a 200 in
    #: place of the answer (a server that answers what is not JSON).
    whole_body: bytes | None = None
    #: Tool calls the model makes, as OpenAI's whole answer has them:
    #: ``{"id", "function": {"name", "arguments": "<JSON text>"}}`` (no ``id``:
    #: a server that sends none); the finish reason is then ``tool_calls``.
    tool_calls: tuple[dict[str, Any], ...] = ()
    chats: list[dict[str, Any]] = field(default_factory=list)

    def reset(self) -> None:
        """As new: the default answer and behaviour, no chats recorded."""
        fresh = FakeOpenAI(self.url)
        kept = ("answer", "pieces", "finish_reason", "counted", "unended", "closed_after")
        for name in (*kept, "whole_body", "tool_calls"):
            setattr(self, name, getattr(fresh, name))
        self.chats.clear()

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/models", self._models),
            ]
        )

    async def _models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": MODEL, "object": "model"}]})

    async def _chat(self, request: Request) -> Response:
        body = await request.json()
        self.chats.append(body)
        prompt = sum(len(str(m.get("content") or "")) for m in body.get("messages", [])) // 4
        usage = {
            "prompt_tokens": max(1, prompt),
            "completion_tokens": max(1, len(self.answer) // 4),
            "total_tokens": max(1, prompt) + max(1, len(self.answer) // 4),
        }
        base = {"id": "chatcmpl-1", "created": int(time.time()), "model": body.get("model", MODEL)}
        if not body.get("stream") and self.whole_body is not None:
            return Response(self.whole_body, media_type="application/json")
        if not body.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": self.answer}
            if self.tool_calls:
                message["tool_calls"] = [{"type": "function", **c} for c in self.tool_calls]
            choice = {"index": 0, "message": message, "finish_reason": self._finish_reason()}
            whole = {**base, "object": "chat.completion", "choices": [choice]}
            return JSONResponse({**whole, "usage": usage} if self.counted else whole)
        with_usage = self.counted and bool((body.get("stream_options") or {}).get("include_usage"))
        closed_after = None
        if self.unended > 0:
            self.unended -= 1
            closed_after = self.closed_after
        return StreamingResponse(
            self._events(base, usage if with_usage else None, closed_after),
            media_type="text/event-stream",
        )

    async def _events(
        self, base: dict[str, Any], usage: dict[str, Any] | None, closed_after: int | None
    ) -> AsyncIterator[bytes]:
        chunk = {**base, "object": "chat.completion.chunk"}
        size = max(1, -(-len(self.answer) // max(1, self.pieces)))
        first = {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
        yield _event({**chunk, "choices": [first]})
        for index, start in enumerate(range(0, len(self.answer), size)):
            if index == closed_after:
                return
            piece = self.answer[start : start + size]
            choice = {"index": 0, "delta": {"content": piece}, "finish_reason": None}
            yield _event({**chunk, "choices": [choice]})
        for delta in self._call_deltas():
            yield _event(
                {**chunk, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
            )
        last = {"index": 0, "delta": {}, "finish_reason": self._finish_reason()}
        yield _event({**chunk, "choices": [last]})
        if usage is not None:
            yield _event({**chunk, "choices": [], "usage": usage})
        yield b"data: [DONE]\n\n"

    def _finish_reason(self) -> str:
        return "tool_calls" if self.tool_calls else self.finish_reason

    def _call_deltas(self) -> Iterator[dict[str, Any]]:
        """The deltas that stream ``tool_calls``, as OpenAI sends them."""
        for index, call in enumerate(self.tool_calls):
            function = call["function"]
            opened: dict[str, Any] = {"index": index, "type": "function"}
            opened["function"] = {"name": function["name"], "arguments": ""}
            if "id" in call:
                opened["id"] = call["id"]
            yield {"tool_calls": [opened]}
            if function["arguments"]:
                piece = {"index": index, "function": {"arguments": function["arguments"]}}
                yield {"tool_calls": [piece]}


def _event(data: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(data)}\n\n".encode()


@contextmanager
def serving() -> Iterator[FakeOpenAI]:
    """A fake OpenAI-compatible server on ``127.0.0.1`` (a free port)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    fake = FakeOpenAI(f"http://127.0.0.1:{sock.getsockname()[1]}/v1")
    with in_thread(fake.app(), sock, "the fake OpenAI-compatible server"):
        yield fake

"""A fake Ollama server: real HTTP on a loopback port, scripted replies.

litellm cannot tell it from Ollama: it answers ``POST /api/chat`` (one JSON
object, or NDJSON chunks when the request says ``"stream": true``),
``POST /api/show``, ``GET /api/tags`` and ``GET /api/version`` the way
Ollama does, token counts included (roughly: four characters a token).

Each test scripts what the "model" says, in order::

    with serving() as ollama:
        ollama.script(text("hello"), tool_call("search", query="x"), json_reply({...}))
        ...
        assert [r.body["messages"][-1] for r in ollama.chats()] == ...

A chat request takes the next scripted reply; with none left it gets
``default`` (when set) or an Ollama-style error. Every request is recorded.

The server runs uvicorn in a thread of its own, not in the test's event
loop: litellm asks ``/api/show`` with a *synchronous* HTTP client from inside
``acompletion``, which would deadlock a server sharing that loop.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

__all__ = [
    "FakeOllama",
    "Recorded",
    "Reply",
    "error",
    "json_reply",
    "serving",
    "text",
    "tool_call",
]

MODEL = "llama3.2:1b"
VERSION = "0.12.6"
#: What ``/api/show`` says of every model: a template that mentions tools
#: (litellm reads function-calling support from it) and a context length.
_SHOW = {
    "license": "fake",
    "modelfile": f"FROM {MODEL}",
    "parameters": "stop <|eot_id|>",
    "template": "{{ if .System }}{{ .System }}{{ end }}{{ if .Tools }}{{ .Tools }}{{ end }}",
    "details": {
        "parent_model": "",
        "format": "gguf",
        "family": "llama",
        "families": ["llama"],
        "parameter_size": "1.2B",
        "quantization_level": "Q8_0",
    },
    "model_info": {"general.architecture": "llama", "llama.context_length": 131072},
    "capabilities": ["completion", "tools"],
}


@dataclass(frozen=True)
class Reply:
    """One scripted answer of the model."""

    content: str = ""
    #: Tool calls as Ollama sends them: ``{"function": {"name", "arguments"}}``.
    tool_calls: tuple[dict[str, Any], ...] = ()
    #: Not 200: answer ``{"error": message}`` with this status instead.
    status: int = 200
    message: str = ""
    #: Seconds to wait before answering.
    delay: float = 0.0
    #: Headers of an error answer (``Retry-After``).
    headers: tuple[tuple[str, str], ...] = ()
    #: Streamed: drop the connection after this many pieces (a server that dies).
    cut_after: int | None = None
    #: Streamed: end the stream cleanly after this many pieces, without its
    #: ``done`` line (a server or proxy that gives up mid-answer).
    closed_after: int | None = None
    #: Streamed: send nothing more after this many pieces, the connection
    #: held open (a model server stuck mid-answer).
    stall_after: int | None = None
    #: Why the model stopped (``done_reason``: ``stop``, ``length`` …).
    done_reason: str = "stop"
    #: Whether the answer gives its token counts (an old server gives none).
    counted: bool = True
    #: Streamed: each tool call in a piece of its own (Ollama may send them so).
    calls_apart: bool = False


def text(content: str, *, delay: float = 0.0) -> Reply:
    return Reply(content=content, delay=delay)


def json_reply(value: Any) -> Reply:
    return Reply(content=json.dumps(value))


def tool_call(name: str, **arguments: Any) -> Reply:
    return Reply(tool_calls=({"function": {"name": name, "arguments": arguments}},))


def error(status: int, message: str, **headers: str) -> Reply:
    """An error answer; ``headers`` by name, ``_`` for ``-`` (``Retry_After="2"``)."""
    sent = tuple((name.replace("_", "-"), value) for name, value in headers.items())
    return Reply(status=status, message=message, headers=sent)


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    body: Any
    #: When it came (epoch seconds).
    at: float = field(default_factory=time.time)


@dataclass
class FakeOllama:
    url: str
    #: Answer chat requests with this once the script is used up (None: an error).
    default: Reply | None = None
    #: How many chunks a streamed text reply is cut into (at most).
    stream_chunks: int = 4
    #: Seconds between two chunks of a streamed reply (a model writing).
    chunk_delay: float = 0.0
    #: Chat requests being answered now, and the most there ever were at once.
    in_flight: int = 0
    max_in_flight: int = 0
    #: Record requests (off for long benchmark runs).
    keep_requests: bool = True
    requests: list[Recorded] = field(default_factory=list)
    _script: list[Reply] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def script(self, *replies: Reply) -> None:
        """Queue replies, answered in order by the next chat requests."""
        with self._lock:
            self._script.extend(replies)

    def chats(self) -> list[Recorded]:
        """The ``/api/chat`` requests, in the order they came."""
        return [r for r in self.requests if r.path == "/api/chat"]

    @property
    def pending(self) -> int:
        """Scripted replies not yet asked for."""
        return len(self._script)

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self._script.clear()
        self.stream_chunks, self.chunk_delay = 4, 0.0
        self.in_flight = self.max_in_flight = 0

    def _next(self) -> Reply:
        with self._lock:
            if self._script:
                return self._script.pop(0)
        return self.default or error(500, "fake ollama: no scripted reply left")

    def _record(self, request: Request, body: Any) -> None:
        if not self.keep_requests:
            return
        with self._lock:
            self.requests.append(Recorded(request.method, request.url.path, body))

    async def _chat(self, request: Request) -> Response:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        response: Response | None = None
        try:
            response = await self._answer(request)
            return response
        finally:
            if isinstance(response, StreamingResponse):  # in flight until its last chunk
                body = response.body_iterator

                async def counted() -> AsyncIterator[Any]:
                    try:
                        async for part in body:
                            yield part
                    finally:
                        self._done()

                response.body_iterator = counted()
            else:
                self._done()

    def _done(self) -> None:
        with self._lock:
            self.in_flight -= 1

    async def _answer(self, request: Request) -> Response:
        body = await request.json()
        self._record(request, body)
        reply = self._next()
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.status != 200:
            headers = dict(reply.headers)
            return JSONResponse({"error": reply.message}, status_code=reply.status, headers=headers)
        model = str(body.get("model", MODEL))
        prompt_tokens = _tokens(json.dumps(body.get("messages", [])))
        if body.get("stream", True):
            chunks = _stream(model, reply, prompt_tokens, self.stream_chunks, self.chunk_delay)
            return StreamingResponse(chunks, media_type="application/x-ndjson")
        message: dict[str, Any] = {"role": "assistant", "content": reply.content}
        if reply.tool_calls:
            message["tool_calls"] = list(reply.tool_calls)
        return JSONResponse({**_chunk(model, message, done=True), **_counts(prompt_tokens, reply)})

    async def _show(self, request: Request) -> Response:
        body = await request.json()
        self._record(request, body)
        return JSONResponse(_SHOW)

    async def _tags(self, request: Request) -> Response:
        self._record(request, None)
        model = {"name": MODEL, "model": MODEL, "size": 1_321_098_329, "details": _SHOW["details"]}
        return JSONResponse({"models": [model]})

    async def _version(self, request: Request) -> Response:
        self._record(request, None)
        return JSONResponse({"version": VERSION})

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/api/chat", self._chat, methods=["POST"]),
                Route("/api/show", self._show, methods=["POST"]),
                Route("/api/tags", self._tags, methods=["GET"]),
                Route("/api/version", self._version, methods=["GET"]),
            ]
        )


def _tokens(content: str) -> int:
    return max(1, (len(content) + 3) // 4)


def _counts(prompt_tokens: int, reply: Reply) -> dict[str, Any]:
    if not reply.counted:
        return {"done_reason": reply.done_reason}
    said = reply.content + json.dumps(list(reply.tool_calls)) if reply.tool_calls else reply.content
    return {
        "done_reason": reply.done_reason,
        "total_duration": 1_000_000,
        "load_duration": 10_000,
        "prompt_eval_count": prompt_tokens,
        "prompt_eval_duration": 100_000,
        "eval_count": _tokens(said),
        "eval_duration": 800_000,
    }


def _chunk(model: str, message: dict[str, Any], *, done: bool) -> dict[str, Any]:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
    return {"model": model, "created_at": stamp, "message": message, "done": done}


async def _stream(
    model: str, reply: Reply, prompt_tokens: int, pieces: int, delay: float = 0.0
) -> AsyncIterator[bytes]:
    size = max(1, -(-len(reply.content) // max(1, pieces)))
    for index, start in enumerate(range(0, len(reply.content), size)):
        if delay and start:
            await asyncio.sleep(delay)
        if index == reply.cut_after:
            raise ConnectionAbortedError("fake ollama: cut mid-answer")  # uvicorn drops it
        if index == reply.closed_after:
            return
        if index == reply.stall_after:
            await asyncio.Event().wait()  # until the client gives up
        piece = {"role": "assistant", "content": reply.content[start : start + size]}
        yield _line(_chunk(model, piece, done=False))
    whole = list(reply.tool_calls)
    for sent in filter(None, [[call] for call in whole] if reply.calls_apart else [whole]):
        calls = {"role": "assistant", "content": "", "tool_calls": sent}
        yield _line(_chunk(model, calls, done=False))
    last = _chunk(model, {"role": "assistant", "content": ""}, done=True)
    yield _line({**last, **_counts(prompt_tokens, reply)})


def _line(obj: dict[str, Any]) -> bytes:
    return (json.dumps(obj) + "\n").encode()


def _listen(port: int) -> socket.socket:
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted connections only
    # then; without it every answer (headers, then body) waits ~40 ms for an ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", port))
    return sock


@contextmanager
def serving(default: Reply | None = None) -> Iterator[FakeOllama]:
    """A fake Ollama on ``127.0.0.1`` (a free port), stopped on exit."""
    sock = _listen(0)
    fake = FakeOllama(f"http://127.0.0.1:{sock.getsockname()[1]}", default=default)
    with in_thread(fake.app(), sock, "the fake Ollama"):
        yield fake


@contextmanager
def in_thread(app: Any, sock: socket.socket, what: str) -> Iterator[None]:
    """``app`` served by uvicorn on ``sock`` in a thread of its own (a blocking
    client in the test's loop cannot deadlock it), stopped and closed on exit."""
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=what, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start")
        time.sleep(0.005)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def main() -> None:
    """Serve a fake Ollama that answers every chat with ``--reply`` (for
    benchmarks and trying things by hand); prints its URL, stops on SIGTERM."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--reply", default="Hello from the fake Ollama.")
    args = parser.parse_args()
    sock = _listen(args.port)
    fake = FakeOllama(f"http://127.0.0.1:{sock.getsockname()[1]}", default=text(args.reply))
    fake.keep_requests = False
    print(fake.url, flush=True)
    uvicorn.Server(uvicorn.Config(fake.app(), log_level="warning", lifespan="off")).run(
        sockets=[sock]
    )


if __name__ == "__main__":
    main()

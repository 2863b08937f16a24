"""One read deadline a connection, moved lazily (agent_node.read_deadline):
a body in hundreds of parts, and the requests after it on the same
kept-alive connection, cost the loop one timer (before: a timer made and
one cancelled per part), and a body that stops after moving its deadline
many times is still answered 408 ``read_timeout`` after its last part. The
node's transport (uvicorn) on a real event loop that counts the timers
the deadline asks it for; a raw socket as the client."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from contextvars import Context
from typing import Any, TypeVarTuple, Unpack

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from support.served import served

from agent_node import read_deadline
from agent_node.config import Limits

PARTS = 300
Ts = TypeVarTuple("Ts")


class CountingLoop(asyncio.SelectorEventLoop):
    """asyncio's loop, counting the timers :mod:`agent_node.read_deadline` sets."""

    def __init__(self) -> None:
        super().__init__()
        self.deadline_timers = 0

    def call_at(
        self,
        when: float,
        callback: Callable[[Unpack[Ts]], object],
        *args: *Ts,
        context: Context | None = None,
    ) -> asyncio.TimerHandle:
        if getattr(callback, "__module__", None) == read_deadline.__name__:
            self.deadline_timers += 1
        return super().call_at(when, callback, *args, context=context)


def run(test: Callable[[CountingLoop], Coroutine[Any, Any, None]]) -> None:
    with asyncio.Runner(loop_factory=CountingLoop) as runner:
        loop = runner.get_loop()
        assert isinstance(loop, CountingLoop)
        runner.run(test(loop))


async def upload(request: Request) -> JSONResponse:
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
    return JSONResponse({"size": size})


APP = Starlette(routes=[Route("/upload", upload, methods=["POST"])])
HEAD = b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"


async def send_parts(writer: asyncio.StreamWriter, parts: int, pause: float) -> None:
    """``parts`` chunks of 10 bytes, each its own segment (it waits ``pause`` between)."""
    writer.write(HEAD)
    for _ in range(parts):
        writer.write(b"a\r\n0123456789\r\n")
        await writer.drain()
        await asyncio.sleep(pause)


async def answer(reader: asyncio.StreamReader) -> bytes:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return head.split(b" ", 2)[1] + b" " + await reader.readexactly(length)


def test_a_body_of_many_parts_and_the_next_requests_cost_one_timer() -> None:
    async def test(loop: CountingLoop) -> None:
        async with served(APP, None, limits=Limits(read_timeout=20)) as url:
            port = int(url.rsplit(":", 1)[1])
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            for parts in (PARTS, 50, 1):  # one kept-alive connection
                await send_parts(writer, parts, 0.001)
                writer.write(b"0\r\n\r\n")
                assert await answer(reader) == b'200 {"size":%d}' % (10 * parts)
            writer.close()
        # One for the connection: the head and every part moved its deadline.
        assert loop.deadline_timers == 1, loop.deadline_timers

    run(test)


def test_a_body_that_stops_after_moving_its_deadline_is_answered_408_in_time() -> None:
    timeout = 0.4

    async def test(loop: CountingLoop) -> None:
        async with served(APP, None, limits=Limits(read_timeout=timeout)) as url:
            port = int(url.rsplit(":", 1)[1])
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            await send_parts(writer, 30, timeout / 10)  # 3 read timeouts long
            stopped = time.monotonic()
            said = await answer(reader)
            late = time.monotonic() - stopped
            assert await reader.read() == b""  # then closed
            writer.close()
        assert said.startswith(b"408 Request Timeout"), said
        assert timeout * 0.9 <= late <= timeout + 1.0, late
        # The timer rang about once a read timeout and waited on.
        assert 2 <= loop.deadline_timers <= 10, loop.deadline_timers

    run(test)

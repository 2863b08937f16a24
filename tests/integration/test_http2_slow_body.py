"""A request body that stops coming over HTTP/2: its stream is answered 408
after ``read_timeout`` and the app is told the caller is gone, empty DATA
frames or not; one that keeps coming, however slowly, is read whole."""

from __future__ import annotations

import asyncio
import struct
from typing import Any

from support.h2_client import Raw
from support.h2_plain import plain_http2

READ_TIMEOUT = 0.5


class Reader:
    """Reads each request's body; answers its size, or notes the caller gone."""

    def __init__(self) -> None:
        self.gone = asyncio.Event()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.gone.set()
                return
            size += len(message["body"])
            if not message["more_body"]:
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(size).encode()})


def start(raw: Raw) -> int:
    sid: int = raw.h2.get_next_available_stream_id()
    fields = {":method": "POST", ":scheme": "http", ":path": "/", ":authority": "t"}
    raw.h2.send_headers(sid, list(fields.items()), end_stream=False)
    raw.flush()
    return sid


async def test_a_body_that_stops_is_answered_408_and_the_app_told() -> None:
    app = Reader()
    async with plain_http2(app, read_timeout=READ_TIMEOUT) as server:
        raw = await Raw.open(server.port)
        sid = start(raw)
        raw.h2.send_data(sid, b"part of it", end_stream=False)
        raw.flush()
        assert (await raw.answer(sid))[":status"] == "408"
        await asyncio.wait_for(app.gone.wait(), 5)
        await raw.close()


async def test_a_slow_body_that_keeps_coming_is_read_whole() -> None:
    async with plain_http2(Reader(), read_timeout=READ_TIMEOUT) as server:
        raw = await Raw.open(server.port)
        sid = start(raw)
        for last in [False] * 5 + [True]:  # 1.8 s in all: past several read timeouts
            await asyncio.sleep(READ_TIMEOUT * 0.6)
            raw.h2.send_data(sid, b"x" * 100, end_stream=last)
            raw.flush()
        answer = await raw.answer(sid)
        assert answer[":status"] == "200"
        data = b"".join(e.data for e in raw.events if getattr(e, "data", None))
        assert data == b"600"
        await raw.close()


async def test_empty_data_frames_do_not_keep_a_body_waiting() -> None:
    """An empty DATA frame is no part of the body: a client that sends one
    every fifth of ``read_timeout`` is answered 408 all the same."""
    app = Reader()
    async with plain_http2(app, read_timeout=READ_TIMEOUT) as server:
        raw = await Raw.open(server.port)
        sid = start(raw)

        async def trickle() -> None:
            while True:
                raw.writer.write(struct.pack(">HBBBL", 0, 0, 0, 0, sid))  # DATA, empty
                await asyncio.sleep(READ_TIMEOUT / 5)

        trickling = asyncio.create_task(trickle())
        try:
            assert (await raw.answer(sid))[":status"] == "408"
        finally:
            trickling.cancel()
        await asyncio.wait_for(app.gone.wait(), 5)
        await raw.close()

"""How much of a node's answer the UI reads, and for how long
(agent_node/ui/answers.py, agent_node/ui/calls.py), against hostile nodes
served by real uvicorn: an answer past :data:`MAX_ANSWER_BYTES` (a walk's
400 MB page grew the UI to 500 MB), a stream line past it, and an answer
that comes a byte at a time (it held the merged list — and the page —
for as long as the node liked) make the node down, listed under
``errors``, while the other nodes still show."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from support.served import served

from agent_node.ui.answers import MAX_ANSWER_BYTES
from agent_node.ui.calls import Calls, NodeDown
from agent_node.ui.server import create_app
from agent_node.ui.targets import build_network

STORE = {"store": "sqlite:good"}
ROW = {"id": "e1", "workflow": "w", "status": "completed", "created_at": 1.0, "cursor": "c"}
MIB = b" " * (1024 * 1024)


async def huge() -> AsyncIterator[bytes]:
    """A page with more than the cap of blanks inside it, sent as it goes
    (no Content-Length to refuse it by)."""
    yield b'{"store": "sqlite:huge", "executions": ['
    for _ in range(MAX_ANSWER_BYTES // len(MIB) + 1):
        yield MIB
    yield b"]}"


async def endless_line() -> AsyncIterator[bytes]:
    yield b"event: hello\n"
    for _ in range(MAX_ANSWER_BYTES // len(MIB) + 1):
        yield MIB
    yield b"\n\n"


async def dripping() -> AsyncIterator[bytes]:
    yield b'{"store": "sqlite:slow", "executions": ['
    while True:
        await asyncio.sleep(0.1)
        yield b" "


def node(name: str) -> Starlette:
    """A node that answers as ``name`` says: ``huge``, ``slow``, or well."""

    async def answer(request: Request) -> Response:
        where = request.url.path
        if (name, where) == ("huge", "/ops/executions"):
            return StreamingResponse(huge(), media_type="application/json")
        if (name, where) == ("huge", "/ops/stream"):
            return StreamingResponse(endless_line(), media_type="text/event-stream")
        if (name, where) == ("slow", "/ops/executions"):
            return StreamingResponse(dripping(), media_type="application/json")
        return JSONResponse({"executions": [ROW], **STORE})

    return Starlette(routes=[Route("/{where:path}", answer)])


@pytest.fixture
async def nodes() -> AsyncIterator[Calls]:
    """The UI's calls toward the nodes ``good``, ``huge`` and ``slow``."""
    async with AsyncExitStack() as stack:
        peers = []
        for name in ("good", "huge", "slow"):
            url = await stack.enter_async_context(served(node(name), None))
            peers.append(f"{name}={url}")
        calls = Calls(build_network([], peers, None))
        stack.push_async_callback(calls.aclose)
        yield calls


async def test_an_answer_past_the_cap_is_a_node_down_and_the_others_show(nodes: Calls) -> None:
    app = create_app(nodes)
    app.port = 8480
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8480") as http:
        page = (await http.get("/api/executions", params={"node": "good,huge"})).json()
    assert [(row["node"], row["id"]) for row in page["executions"]] == [("good", "e1")]
    assert [(e["node"], e["status"]) for e in page["errors"]] == [("huge", "down")]
    assert f"more than {MAX_ANSWER_BYTES} bytes" in page["errors"][0]["message"]


async def test_a_stream_line_past_the_cap_is_a_node_down(nodes: Calls) -> None:
    target = nodes.network.targets["huge"]
    with pytest.raises(NodeDown, match=f"a line of more than {MAX_ANSWER_BYTES} bytes"):
        async with nodes.stream(target, "/ops/stream", fall_over=False) as stream:
            async for _ in stream.lines:
                pass


async def test_an_answer_that_comes_a_byte_at_a_time_ends_at_the_call_s_time(
    nodes: Calls,
) -> None:
    target = nodes.network.targets["slow"]
    began = asyncio.get_running_loop().time()
    with pytest.raises(NodeDown, match=r"^slow: no answer in time$"):
        await asyncio.wait_for(nodes.get(target, "/ops/executions", timeout=1.0), 10)
    assert asyncio.get_running_loop().time() - began < 3

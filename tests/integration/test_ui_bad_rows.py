"""Rows of a node's page that do not fit (agent_node/ui/listing.py,
agent_node/ui/stores.py): one bad row of any node (a creation time that is
text or an object, a row that is no object, a cursor that is a number, a
list that is no list, NaN) made the merged page a 500 for every node. Now
the rows that fit are merged, the others left out, and their node named in
``errors``; the other nodes still show."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from support.served import served

from agent_node.ui.calls import Calls
from agent_node.ui.server import create_app
from agent_node.ui.targets import build_network


def row(execution_id: str, created_at: Any, **more: Any) -> dict[str, Any]:
    return {"id": execution_id, "status": "completed", "created_at": created_at, **more}


BAD_ROWS = [
    "not an object",
    row("x1", "2026-12-08T09:00:00Z"),
    row("x2", {"a": 1}),
    row("x3", 3.0, cursor=5),
    row("x4", True),
    {"created_at": 3.0},
    row("fits", 4.0, cursor="c4"),
]
PAGES: dict[str, bytes | dict[str, Any]] = {
    "good": {"executions": [row("g1", 1.0, cursor="c1")], "count": 1, "items": []},
    "bad": {"executions": BAD_ROWS, "count": 7, "items": ["no item", {"id": "i1"}]},
    "nolist": {"executions": {"not": "a list"}, "count": 0, "items": 5},
    "nan": b'{"executions": [{"id": "n1", "created_at": NaN}], "count": 1, "items": []}',
}


def node(name: str) -> Starlette:
    async def answer(request: Request) -> Response:
        page = PAGES[name]
        if isinstance(page, bytes):
            return Response(page, media_type="application/json")
        return JSONResponse({**page, "store": f"sqlite:{name}"})

    return Starlette(routes=[Route("/{where:path}", answer)])


@pytest.fixture
async def ui() -> AsyncIterator[httpx.AsyncClient]:
    async with AsyncExitStack() as stack:
        peers = []
        for name in PAGES:
            url = await stack.enter_async_context(served(node(name), None))
            peers.append(f"{name}={url}")
        calls = Calls(build_network([], peers, None))
        stack.push_async_callback(calls.aclose)
        app = create_app(calls)
        app.port = 8480
        transport = httpx.ASGITransport(app=app)
        yield await stack.enter_async_context(
            httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8480")
        )


async def test_rows_that_do_not_fit_are_left_out_and_their_node_named(
    ui: httpx.AsyncClient,
) -> None:
    answered = await ui.get("/api/executions")
    assert answered.status_code == 200, answered.text
    page = answered.json()
    assert [(r["node"], r["id"]) for r in page["executions"]] == [("bad", "fits"), ("good", "g1")]
    errors = {e["node"]: e["message"] for e in page["errors"]}
    assert errors["bad"] == "6 rows of its answer could not be read: left out"
    assert errors["nolist"] == "1 row of its answer could not be read: left out"
    assert errors["nan"] == "nan: answered HTTP 200, not JSON"
    assert (page["count"], page["uncounted"]) == (8, ["nan"])


async def test_inbox_items_that_do_not_fit_are_left_out_and_their_node_named(
    ui: httpx.AsyncClient,
) -> None:
    answered = await ui.get("/api/inbox")
    assert answered.status_code == 200, answered.text
    page = answered.json()
    assert [(item["node"], item["id"]) for item in page["items"]] == [("bad", "i1")]
    assert {e["node"] for e in page["errors"]} == {"bad", "nolist", "nan"}

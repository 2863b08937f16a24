"""The UI when the replica it talked to goes down: ``r1`` and ``r2``, two
processes' worth of one node on one store (SQLite; PostgreSQL too for
pages and views), served by real uvicorn over mutual TLS, ``r1`` speaking
for the store until it stops. Then the next page of executions comes from
``r2`` with ``r1``'s cursor; an execution opens there (its view, events,
tree, live text) and the changes of ``r1``'s store still come; an action
whose connection was refused is done once, by ``r2``; one that may have
reached a hung ``r1`` is not sent again. A node the UI never heard name
its store stands in for no other."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from integration.test_ui_server import D, Setup, holding, sse, ui_of
from starlette.applications import Starlette
from starlette.types import ASGIApp, Receive, Scope, Send
from support.certs import make_certs
from support.history import fill
from support.served import served

from agent_node import Runtime
from agent_node.a2a.server.ops import NodeAbout, ops_routes
from agent_node.config import PolicySettings
from agent_node.security.authz import Policy
from agent_node.security.tls import server_context
from agent_node.store.live import LiveWriter


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_certs(tmp_path_factory.mktemp("ui-replicas") / "certs", "n1", "ui")


class Front:
    """A replica's app, keeping the method and path of each request reaching
    it; while ``hung``, it takes each request and answers none (until its
    caller hangs up)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.seen: list[tuple[str, str]] = []
        self.hung = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.seen.append((scope["method"], scope["path"]))
        if scope["type"] == "http" and self.hung:
            while (await receive())["type"] != "http.disconnect":
                pass
            return
        await self.app(scope, receive, send)

    def posts(self) -> list[str]:
        return [where for method, where in self.seen if method == "POST"]


@dataclass
class Replica:
    runtime: Runtime
    url: str
    app: Front
    life: AsyncExitStack = field(repr=False)

    async def stop(self) -> None:
        """Down: its server and its runtime gone, its port refusing."""
        await self.life.aclose()


async def replica(stack: AsyncExitStack, certs: Path, store: str) -> Replica:
    life = AsyncExitStack()
    stack.push_async_callback(life.aclose)
    runtime = await life.enter_async_context(Runtime(store, scope="all", poll_interval=0.05))
    runtime.workflows.add(holding().compile())  # replicas serve the same workflows
    policy = Policy.of(PolicySettings(operators=[f"{D}/ui"]))
    app = Front(Starlette(routes=ops_routes(runtime, policy, NodeAbout("n1"))))
    tls = server_context(certs / "n1.pem", certs / "n1-key.pem", [certs / "ca.pem"])
    url = await life.enter_async_context(served(app, tls))
    return Replica(runtime, url, app, life)


async def start(stack: AsyncExitStack, certs: Path, store: str) -> tuple[Setup, Replica, Replica]:
    """The UI in front of ``r1`` and ``r2`` on ``store``, given in that order."""
    r1, r2 = [await replica(stack, certs, store) for _ in range(2)]
    peers = [f"r1={r1.url}", f"r2={r2.url}"]
    setup = await ui_of(stack, certs, "ui", peers, {"r1": r1.runtime, "r2": r2.runtime})
    return setup, r1, r2


async def until(check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def status_after(runtime: Runtime, execution_id: str, expected: str) -> str | None:
    """The execution's status once it is ``expected`` (or after 10 s)."""
    for _ in range(500):
        record = await runtime.store.get(execution_id)
        if record is not None and record.status == expected:
            break
        await asyncio.sleep(0.02)
    return record.status if record is not None else None


async def test_the_next_page_comes_from_a_replica_with_the_same_cursor(
    certs: Path, durable_url: str
) -> None:
    async with AsyncExitStack() as stack:
        setup, r1, _ = await start(stack, certs, durable_url)
        ids = await fill(r1.runtime.store, 12, start=1_000.0)
        params: dict[str, Any] = {"limit": 5}
        async with setup.client() as http:
            first = (await http.get("/api/executions", params=params)).json()
            await r1.stop()
            pages = []
            params["cursor"] = first["next"]
            while params["cursor"]:
                page = (await http.get("/api/executions", params=params)).json()
                pages.append(page)
                params["cursor"] = page["next"]
    assert {row["node"] for row in first["executions"]} == {"r1"}
    seen = [row["id"] for page in [first, *pages] for row in page["executions"]]
    assert seen == ids[::-1]
    assert [len(page["executions"]) for page in pages] == [5, 2]
    assert [page["errors"] for page in pages] == [[], []]
    # r2 answered for r1 with r1's cursor, and from then on speaks for the store.
    assert pages[0]["notes"] == [{"node": "r1", "message": "r2 answered for it"}]
    assert pages[1]["notes"] == []
    assert {row["node"] for page in pages for row in page["executions"]} == {"r2"}


async def test_an_execution_opens_on_a_replica_when_its_node_is_down(
    certs: Path, durable_url: str
) -> None:
    async with AsyncExitStack() as stack:
        setup, r1, r2 = await start(stack, certs, durable_url)
        await r1.runtime.run(holding().compile(), {}, execution_id="h1")
        one = "/api/nodes/r1/executions/h1"
        async with setup.client() as http:
            row = (await http.get("/api/executions")).json()["executions"][0]
            assert (row["node"], row["id"]) == ("r1", "h1")
            await r1.stop()
            shown = await http.get(one)
            events = await http.get(one + "/events")
            tree = await http.get(one + "/tree")
    assert shown.status_code == 200 and shown.json()["status"] == "waiting"
    assert events.status_code == 200 and events.json()["events"]
    assert tree.status_code == 200
    assert (tree.json()["id"], tree.json()["reach"]) == ("h1", "ok")
    assert {where for _, where in r2.app.seen} >= {
        "/ops/executions/h1",
        "/ops/executions/h1/events",
    }


async def test_streams_open_on_a_replica_when_the_node_is_down(certs: Path, tmp_path: Path) -> None:
    async with AsyncExitStack() as stack:
        setup, r1, r2 = await start(stack, certs, f"sqlite:///{tmp_path}/store.db")
        await r1.runtime.run(holding().compile(), {}, execution_id="h1")
        async with setup.client() as http:
            assert (await http.get("/api/nodes")).status_code == 200  # r1 names its store
            await r1.stop()
            live: list[tuple[str, Any]] = []
            async with http.stream("GET", "/api/nodes/r1/executions/h1/live") as response:

                async def read_live() -> None:
                    async for name, data in sse(response):
                        live.append((name, data))
                        if name in ("end", "error"):
                            return

                reading = asyncio.create_task(read_live())
                await until(lambda: r2.runtime.store.live.watched("h1") or reading.done(), "r2")
                writer = LiveWriter(r2.runtime.store.live, "h1", "hold", 1)
                writer.write("Still here.")
                writer.end()
                await r2.runtime.engine.control.cancel("h1", "enough")
                await asyncio.wait_for(reading, 10)
            changed: list[str] = []
            async with http.stream("GET", "/api/stream?node=r1") as response:

                async def read_changes() -> None:
                    async for name, data in sse(response):
                        if name == "node" and data["up"]:
                            opened.set()
                        if name == "changes":
                            changed.extend(row["id"] for row in data["executions"])
                        if "w2" in changed:
                            return

                opened = asyncio.Event()
                reading = asyncio.create_task(read_changes())
                await asyncio.wait_for(opened.wait(), 10)
                await r2.runtime.run(holding().compile(), {}, execution_id="w2")
                await asyncio.wait_for(reading, 10)
    assert "".join(data["text"] for name, data in live if name == "chunk") == "Still here."
    assert live[-1] == ("end", {"status": "canceled"})
    assert "w2" in changed


async def test_an_action_refused_at_the_connection_is_done_once_by_a_replica(
    certs: Path, tmp_path: Path
) -> None:
    async with AsyncExitStack() as stack:
        setup, r1, r2 = await start(stack, certs, f"sqlite:///{tmp_path}/store.db")
        await r1.runtime.run(holding().compile(), {}, execution_id="h1")
        # A second UI, that never heard r1 name its store: r1's rows go nowhere else.
        peers = [f"r1={r1.url}", f"r2={r2.url}"]
        blind = await ui_of(stack, certs, "ui", peers, setup.runtimes)
        signal = {"event": "approved"}
        async with setup.client() as http, blind.client() as unknowing:
            assert (await http.get("/api/nodes")).status_code == 200
            await r1.stop()
            before = list(r2.app.seen)
            refused = await unknowing.post("/api/nodes/r1/executions/h1/signal", json=signal)
            assert (refused.status_code, r2.app.seen) == (502, before)
            done = await http.post("/api/nodes/r1/executions/h1/signal", json=signal)
        status = await status_after(r2.runtime, "h1", "completed")
    assert status == "completed"
    assert refused.json()["error"]["message"].startswith("the node is down: r1:")
    assert done.status_code == 200 and done.json() == {"id": "h1", "signaled": "approved"}
    assert r2.app.posts() == ["/ops/executions/h1/signal"]


async def test_an_action_that_may_have_reached_a_hung_node_is_not_sent_again(
    certs: Path, tmp_path: Path
) -> None:
    async with AsyncExitStack() as stack:
        setup, r1, r2 = await start(stack, certs, f"sqlite:///{tmp_path}/store.db")
        await r1.runtime.run(holding().compile(), {}, execution_id="h1")
        async with setup.client() as http:
            assert (await http.get("/api/nodes")).status_code == 200
            r1.app.hung = True
            # Both wait out the UI's time for an answer; r1 took both.
            shown, canceled = await asyncio.gather(
                http.get("/api/nodes/r1/executions/h1"),
                http.post("/api/nodes/r1/executions/h1/cancel", json={}),
            )
        record = await r2.runtime.store.get("h1")
    assert shown.status_code == 200 and shown.json()["id"] == "h1"  # a read: r2 answered
    assert canceled.status_code == 502
    assert canceled.json()["error"]["message"] == "the node is down: r1: no answer in time"
    assert r1.app.posts() == ["/ops/executions/h1/cancel"]
    assert r2.app.posts() == []
    assert record is not None and record.status == "waiting"

"""The UI server (``agent-node ui``'s app) against real nodes over mutual TLS:
what it passes on and merges, how it shows a node that is down, and what
it refuses — other hosts, other sites, changes without the page's Origin
or a JSON body, unknown nodes — so that no other page can use its
operator identity."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import BaseModel
from starlette.applications import Starlette
from support.certs import make_certs
from support.history import fill
from support.served import served

from agent_node import Runtime, Workflow
from agent_node.a2a.server.ops import NodeAbout, ops_routes
from agent_node.config import PolicySettings, TlsSettings
from agent_node.security.authz import Policy
from agent_node.security.tls import server_context
from agent_node.store.live import LiveWriter
from agent_node.ui.calls import Calls
from agent_node.ui.server import create_app
from agent_node.ui.targets import build_network


async def sse(response: httpx.Response) -> AsyncIterator[tuple[str, Any]]:
    """The events of an event stream as they come: (name, data)."""
    name = ""
    async for line in response.aiter_lines():
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            yield name, json.loads(line[6:])


D = "spiffe://example.org/agent"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_certs(tmp_path_factory.mktemp("ui") / "certs", "n1", "n2", "ui", "bob")


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Setup:
    def __init__(self, ui: str, runtimes: dict[str, Runtime]) -> None:
        self.ui = ui
        self.runtimes = runtimes
        self.host = ui.removeprefix("http://").rstrip("/")

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.ui, timeout=15)


async def start(stack: AsyncExitStack, certs: Path, tmp: Path, identity: str = "ui") -> Setup:
    runtimes, peers = {}, []
    for name in ("n1", "n2"):
        runtime = await stack.enter_async_context(
            Runtime(f"sqlite:///{tmp}/{name}.db", scope="all", poll_interval=0.05)
        )
        policy = Policy.of(PolicySettings(operators=[f"{D}/ui"]))
        app = Starlette(routes=ops_routes(runtime, policy, NodeAbout(name)))
        tls = server_context(
            certs / f"{name}.pem",
            certs / f"{name}-key.pem",
            [certs / "ca.pem"],
            require_client_cert=False,
        )
        url = await stack.enter_async_context(served(app, tls))
        runtimes[name] = runtime
        peers.append(f"{name}={url}")
    peers.append(f"gone=https://127.0.0.1:{closed_port()}")
    return await ui_of(stack, certs, identity, peers, runtimes)


async def ui_of(
    stack: AsyncExitStack, certs: Path, identity: str, peers: list[str], runtimes: dict[str, Any]
) -> Setup:
    """The UI, as ``identity``, in front of ``peers`` (``key=url``)."""
    tls = TlsSettings(
        cert=str(certs / f"{identity}.pem"),
        key=str(certs / f"{identity}-key.pem"),
        trust=[str(certs / "ca.pem")],
    )
    calls = Calls(build_network([], peers, tls))
    stack.push_async_callback(calls.aclose)
    app = create_app(calls)
    ui = await stack.enter_async_context(served(app, None))
    app.port = int(ui.rsplit(":", 1)[1])
    return Setup(ui, runtimes)


@pytest.fixture
async def setup(certs: Path, tmp_path: Path) -> AsyncIterator[Setup]:
    async with AsyncExitStack() as stack:
        yield await start(stack, certs, tmp_path)


class Empty(BaseModel):
    reply: str = ""


def holding() -> Workflow:
    wf = Workflow("holding", version="1")
    wf.state(Empty)
    wf.wait("hold", event="approved")
    wf.end("done")
    return wf


# -- who may use it -----------------------------------------------------------------


async def test_another_host_name_is_refused(setup: Setup) -> None:
    async with setup.client() as http:
        rebound = await http.get("/api/nodes", headers={"Host": "evil.example:80"})
        mine = await http.get("/", headers={"Host": setup.host.replace("127.0.0.1", "localhost")})
    assert rebound.status_code == 421
    assert "127.0.0.1 only" in rebound.json()["error"]["message"]
    assert mine.status_code == 200 and "<title>agent-node</title>" in mine.text


async def test_other_sites_may_neither_read_nor_change(setup: Setup) -> None:
    parked = await setup.runtimes["n1"].run(holding().compile(), {}, execution_id="h1")
    assert parked.status == "waiting"
    cancel = "/api/nodes/n1/executions/h1/cancel"
    async with setup.client() as http:
        read = await http.get("/api/nodes", headers={"Sec-Fetch-Site": "cross-site"})
        forged = await http.post(cancel, json={}, headers={"Origin": "http://evil.example"})
        form = await http.post(
            cancel,
            content=b"reason=x",
            headers={
                "Origin": setup.ui.rstrip("/"),
                "Content-Type": "application/x-www-form-urlencoded",
            },
        )
        same_site = await http.post(cancel, json={}, headers={"Sec-Fetch-Site": "same-site"})
        assert (await setup.runtimes["n1"].store.get("h1")).status == "waiting"  # type: ignore[union-attr]
        own = await http.post(cancel, json={}, headers={"Origin": setup.ui.rstrip("/")})
    assert (read.status_code, forged.status_code, form.status_code) == (403, 403, 415)
    assert same_site.status_code == 403
    assert own.status_code == 200 and own.json() == {"id": "h1", "canceled": True}
    for answer in (read, forged, form, own):
        assert not [h for h in answer.headers if h.lower().startswith("access-control-")]
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
        assert answer.headers["x-frame-options"] == "DENY"


async def test_only_known_nodes_and_paths_are_reached(setup: Setup) -> None:
    async with setup.client() as http:
        unknown = await http.get("/api/nodes/elsewhere/executions/x")
        long_id = await http.get("/api/nodes/n1/executions/" + "x" * 300)
        escaped = await http.get("/api/nodes/n1/executions/..%2F..%2Fa2a")
        quoted = await http.get("/api/nodes/n1/executions/a%3Fstatus%3Dx%23y%25")
        other = await http.get("/api/anything")
    assert unknown.status_code == 404
    assert "no node 'elsewhere'" in unknown.json()["error"]["message"]
    assert long_id.status_code == 400
    assert escaped.status_code == 404  # no route takes a slash in an id
    # An id reaches the node whole, as one path segment: no such execution.
    assert quoted.status_code == 404
    assert quoted.json()["error"]["message"] == "no execution 'a?status=x#y%'"
    assert other.status_code == 404


async def test_a_ui_that_is_no_operator_is_told_so(certs: Path, tmp_path: Path) -> None:
    async with AsyncExitStack() as stack:
        setup = await start(stack, certs, tmp_path, identity="bob")
        async with setup.client() as http:
            nodes = (await http.get("/api/nodes")).json()["nodes"]
    n1 = next(n for n in nodes if n["key"] == "n1")
    assert n1["up"] is True and n1["node"] is None
    assert n1["error"] == f"{D}/bob is not an operator"


# -- what it shows -------------------------------------------------------------------


async def test_a_node_that_is_down_is_shown_down_and_the_rest_still_works(setup: Setup) -> None:
    await fill(setup.runtimes["n1"].store, 3, start=1_000.0)
    began = time.time()
    async with setup.client() as http:
        listed = (await http.get("/api/executions")).json()
        nodes = (await http.get("/api/nodes")).json()["nodes"]
        one = await http.get("/api/nodes/gone/executions/x")
    gone = next(n for n in nodes if n["key"] == "gone")
    assert gone["up"] is False and gone["health"] == "down" and gone["error"]
    # Since the UI server's first call that found it down (the list's), not since this look.
    assert began <= gone["since"] < time.time()
    assert all("since" not in n for n in nodes if n["up"])
    assert {n["key"]: n["up"] for n in nodes} == {"n1": True, "n2": True, "gone": False}
    assert len(listed["executions"]) == 3
    assert [e["node"] for e in listed["errors"]] == ["gone"]
    assert listed["errors"][0]["status"] == "down"
    assert one.status_code == 502 and "the node is down" in one.json()["error"]["message"]


async def test_pages_merge_the_nodes_newest_first_and_resume_each_where_it_stopped(
    setup: Setup,
) -> None:
    first = await fill(setup.runtimes["n1"].store, 30, start=1_000.0)
    second = await fill(setup.runtimes["n2"].store, 20, start=1_010.5)
    expected = sorted(
        [(1_000.0 + i, i_d) for i, i_d in enumerate(first)]
        + [(1_010.5 + i, i_d) for i, i_d in enumerate(second)],
        reverse=True,
    )
    seen: list[str] = []
    params: dict[str, Any] = {"limit": 7, "node": "n1,n2"}
    async with setup.client() as http:
        while True:
            page = (await http.get("/api/executions", params=params)).json()
            assert page["errors"] == []
            seen += [row["id"] for row in page["executions"]]
            if not page["next"]:
                break
            params["cursor"] = page["next"]
        bad = await http.get("/api/executions", params={"status": "bogus", "node": "n1,n2"})
        cursor = await http.get("/api/executions", params={"cursor": "!!"})
        node = await http.get("/api/executions", params={"node": "nowhere"})
    assert seen == [i for _, i in expected]
    assert bad.status_code == 400 and "status must be among" in bad.json()["error"]["message"]
    assert cursor.status_code == 400 and node.status_code == 400


async def test_the_first_page_counts_every_store_and_names_the_nodes_left_out(
    setup: Setup,
) -> None:
    await fill(setup.runtimes["n1"].store, 30, start=1_000.0)
    await fill(setup.runtimes["n2"].store, 20, start=1_010.5)
    await setup.runtimes["n2"].run(holding().compile(), {}, execution_id="h1")
    async with setup.client() as http:
        first = (await http.get("/api/executions", params={"limit": 7})).json()
        second = (await http.get("/api/executions", params={"cursor": first["next"]})).json()
        waiting = (await http.get("/api/executions", params={"status": "waiting"})).json()
        both = (await http.get("/api/executions", params={"node": "n1,n2"})).json()
        searched = (await http.get("/api/executions", params={"q": "h1"})).json()
    assert (first["count"], first["uncounted"]) == (51, ["gone"])  # gone is down
    assert len(first["executions"]) == 7
    assert "count" not in second  # a next page: the first said it
    assert (waiting["count"], len(waiting["executions"])) == (1, 1)
    assert (both["count"], both["uncounted"]) == (51, [])
    # A search by id is no filter of the stores: nothing counted (the nodes would refuse).
    assert "count" not in searched and [r["id"] for r in searched["executions"]] == ["h1"]


async def test_changes_on_every_node_reach_one_stream(setup: Setup) -> None:
    async with setup.client() as http, http.stream("GET", "/api/stream?node=n1,n2") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        seen: dict[str, str] = {}
        up: set[str] = set()

        async def read() -> None:
            async for name, data in sse(response):
                if name == "node" and data["up"]:
                    up.add(data["node"])
                    if up == {"n1", "n2"}:
                        started.set()
                if name == "changes":
                    for row in data["executions"]:
                        seen[f"{data['node']}/{row['id']}"] = row["status"]
                if seen.get("n2/w2") == "waiting":
                    return

        started = asyncio.Event()
        reading = asyncio.create_task(read())
        await asyncio.wait_for(started.wait(), 10)
        await setup.runtimes["n2"].run(holding().compile(), {}, execution_id="w2")
        await asyncio.wait_for(reading, 10)
    assert seen["n2/w2"] == "waiting"


async def test_an_execution_s_text_is_relayed_as_it_is_written(setup: Setup) -> None:
    runtime = setup.runtimes["n1"]
    await runtime.run(holding().compile(), {}, execution_id="t1")
    writer = LiveWriter(runtime.store.live, "t1", "hold", 1)
    async with setup.client() as http:
        async with http.stream("GET", "/api/nodes/n1/executions/t1/live") as response:
            assert response.status_code == 200
            events: list[tuple[str, Any]] = []

            async def read() -> None:
                async for name, data in sse(response):
                    events.append((name, data))
                    if name == "end":
                        return

            reading = asyncio.create_task(read())
            while not runtime.store.live.watched("t1"):  # the UI has subscribed on n1
                await asyncio.sleep(0.02)
            for piece in ("Durable ", "text, ", "as it comes."):
                writer.write(piece)
                await asyncio.sleep(0.05)
            writer.end()
            await runtime.engine.control.cancel("t1", "enough")
            await asyncio.wait_for(reading, 10)
    chunks = [data for name, data in events if name == "chunk"]
    assert "".join(c["text"] for c in chunks) == "Durable text, as it comes."
    assert chunks[0]["append"] is False and chunks[-1]["last"] is True
    assert events[-1] == ("end", {"status": "canceled"})


# -- nodes that share a store ----------------------------------------------------------


async def start_replicas(stack: AsyncExitStack, certs: Path, tmp: Path, shared: str) -> Setup:
    """``r1`` and ``r2``: two processes' worth of one node (its certificate,
    its name) on the store ``shared``; ``n2`` on a store of its own."""
    runtimes, peers = {}, []
    nodes = [("r1", "n1", shared), ("r2", "n1", shared), ("n2", "n2", f"sqlite:///{tmp}/n2.db")]
    for key, name, store in nodes:
        runtime = await stack.enter_async_context(Runtime(store, scope="all", poll_interval=0.05))
        policy = Policy.of(PolicySettings(operators=[f"{D}/ui"]))
        app = Starlette(routes=ops_routes(runtime, policy, NodeAbout(name)))
        tls = server_context(certs / f"{name}.pem", certs / f"{name}-key.pem", [certs / "ca.pem"])
        url = await stack.enter_async_context(served(app, tls))
        runtimes[key] = runtime
        peers.append(f"{key}={url}")
    return await ui_of(stack, certs, "ui", peers, runtimes)


async def test_replicas_of_one_store_list_each_execution_once(
    certs: Path, tmp_path: Path, durable_url: str
) -> None:
    async with AsyncExitStack() as stack:
        setup = await start_replicas(stack, certs, tmp_path, durable_url)
        shared = await fill(setup.runtimes["r1"].store, 12, start=1_000.0)
        own = await fill(setup.runtimes["n2"].store, 5, start=1_003.5)
        held = await setup.runtimes["r2"].run(holding().compile(), {}, execution_id="h1")
        assert held.status == "waiting"
        seen: list[tuple[str, str]] = []
        params: dict[str, Any] = {"limit": 4}
        async with setup.client() as http:
            while True:
                page = (await http.get("/api/executions", params=params)).json()
                assert page["errors"] == []
                seen += [(row["node"], row["id"]) for row in page["executions"]]
                if "cursor" not in params:  # both replicas answered the first page
                    first = next(row for row in page["executions"] if row["node"] == "r1")
                    assert first["replicas"] == ["r2"] and first["store"]
                    # Each store counted once: 12 + 1 of r1's and r2's, 5 of n2's.
                    assert (page["count"], page["uncounted"]) == (18, [])
                if not page["next"]:
                    break
                params["cursor"] = page["next"]
            inbox = (await http.get("/api/inbox")).json()
            nodes = (await http.get("/api/nodes")).json()["nodes"]
    ids = [i for _, i in seen]
    assert sorted(ids) == sorted([*shared, *own, "h1"]) and len(ids) == len(set(ids))
    assert {n for n, i in seen if i in own} == {"n2"}
    assert {n for n, i in seen if i not in own} == {"r1"}
    assert [(item["node"], item["execution"]["id"]) for item in inbox["items"]] == [("r1", "h1")]
    shown = {n["key"]: n for n in nodes}
    assert shown["r1"]["shares_store_with"] == ["r2"]
    assert shown["r2"]["shares_store_with"] == ["r1"]
    assert "shares_store_with" not in shown["n2"]
    assert shown["r1"]["up"] and shown["r2"]["up"]  # each replica still shown
    assert shown["r1"]["node"]["store"] == shown["r2"]["node"]["store"]
    assert shown["r1"]["node"]["counts"] == shown["r2"]["node"]["counts"]
    # Who each node is, as its certificate said at the handshake.
    assert [shown[k]["identity"] for k in ("r1", "r2", "n2")] == [f"{D}/n1", f"{D}/n1", f"{D}/n2"]


async def test_replicas_tell_their_changes_as_one_store_s(
    certs: Path, tmp_path: Path, pg_url: str
) -> None:
    """Both replicas hear of a change (PostgreSQL's notices reach every
    process of the store) and say it is their store's: the page applies
    it to the one row it shows."""
    async with AsyncExitStack() as stack:
        setup = await start_replicas(stack, certs, tmp_path, pg_url)
        stores: dict[str, str] = {}
        async with setup.client() as http, http.stream("GET", "/api/stream") as response:
            up: set[str] = set()
            started = asyncio.Event()

            async def read() -> None:
                async for name, data in sse(response):
                    if name == "node" and data["up"]:
                        up.add(data["node"])
                        if up == {"r1", "r2", "n2"}:
                            started.set()
                    if name == "changes" and any(r["id"] == "w1" for r in data["executions"]):
                        stores[data["node"]] = data["store"]
                    if {"r1", "r2"} <= set(stores):
                        return

            reading = asyncio.create_task(read())
            await asyncio.wait_for(started.wait(), 10)
            await setup.runtimes["r1"].run(holding().compile(), {}, execution_id="w1")
            await asyncio.wait_for(reading, 10)
            rows = (await http.get("/api/executions")).json()["executions"]
    # The store as the page tells it apart: the one its row of w1 carries.
    assert stores["r1"] == stores["r2"] == next(r["store"] for r in rows if r["id"] == "w1")


async def test_a_search_s_note_is_no_error(setup: Setup) -> None:
    ids = await fill(setup.runtimes["n1"].store, 5, start=1_000.0)
    async with setup.client() as http:
        page = (await http.get("/api/executions", params={"q": ids[2][-8:]})).json()
    assert [row["id"] for row in page["executions"]] == [ids[2]]
    assert [e["node"] for e in page["errors"]] == ["gone"]  # down: an error
    assert [n["node"] for n in page["notes"]] == ["n1", "n2"]
    assert "looked through" in page["notes"][0]["message"]

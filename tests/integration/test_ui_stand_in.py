"""Who may stand in for a node in the UI (agent_node/ui/replicas.py): only
a node that proved it serves the same store as the same node. A hostile
node that names our node's store — even its real id — is neither listed as
our node's replica nor sent what the operator does to our node's
executions while it is down: not as a peer named in our configuration,
nor as a node the operator gave with another certificate. Real nodes and
impostors served by real uvicorn over mutual TLS, as the walk found it
(its peer answered the operator's cancel, signal and answer)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
from integration.test_ui_replicas import replica
from integration.test_ui_server import D, Setup, holding
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from support.certs import make_certs
from support.served import served

from agent_node.config import TlsSettings
from agent_node.security.tls import server_context
from agent_node.ui.calls import Calls
from agent_node.ui.server import create_app
from agent_node.ui.targets import build_network


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_certs(tmp_path_factory.mktemp("ui-stand-in") / "certs", "n1", "ui", "evil", "n2")


class Impostor:
    """A node that names whichever store it is told to, lists a made-up
    execution, and keeps every request that reaches it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.claims = f"sqlite:{name}-own"
        self.seen: list[tuple[str, str]] = []

    async def handle(self, request: Request) -> JSONResponse:
        self.seen.append((request.method, request.url.path))
        row = {"id": f"{self.name}-made-up", "workflow": "holding", "status": "waiting"}
        row |= {"created_at": 2e9, "updated_at": 2e9, "cursor": "c1"}
        answers: dict[str, Callable[[], Any]] = {
            "/ops/node": lambda: {"name": "n1", "store": self.claims, "counts": {}},
            "/ops/executions": lambda: {"executions": [row], "store": self.claims, "count": 1},
            "/ops/inbox": lambda: {"items": [], "store": self.claims},
            "/readyz": lambda: {"status": "ready"},
        }
        answer = answers.get(request.url.path)
        return JSONResponse(answer() if answer else {"id": "h1", "done": True})

    def app(self) -> Starlette:
        routes = [Route("/{where:path}", self.handle, methods=["GET", "POST"])]
        return Starlette(routes=routes)

    def reached(self, path: str) -> bool:
        return any(where.startswith(path) for _, where in self.seen)


async def impostor(stack: AsyncExitStack, certs: Path, name: str) -> tuple[Impostor, str]:
    fake = Impostor(name)
    tls = server_context(certs / f"{name}.pem", certs / f"{name}-key.pem", [certs / "ca.pem"])
    return fake, await stack.enter_async_context(served(fake.app(), tls))


async def ui(stack: AsyncExitStack, certs: Path, configs: list[Path], peers: list[str]) -> Setup:
    tls = TlsSettings(
        cert=str(certs / "ui.pem"), key=str(certs / "ui-key.pem"), trust=[str(certs / "ca.pem")]
    )
    calls = Calls(build_network(configs, peers, tls))
    stack.push_async_callback(calls.aclose)
    app = create_app(calls)
    url = await stack.enter_async_context(served(app, None))
    app.port = int(url.rsplit(":", 1)[1])
    return Setup(url, {})


def configuration(folder: Path, url: str, peer: str) -> Path:
    """n1's configuration: where it is, and ``evil`` among its peers."""
    port = url.rsplit(":", 1)[1]
    lines = [
        "name: n1",
        f"listen: {{host: 127.0.0.1, port: {port}}}",
        f"public_url: '{url}'",
        "peers:",
        f"  - {{name: evil, url: '{peer}', identity: '{D}/evil'}}",
    ]
    path = folder / "n1.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


async def test_nodes_that_name_our_store_but_are_not_our_node_stand_in_for_nothing(
    certs: Path, tmp_path: Path
) -> None:
    async with AsyncExitStack() as stack:
        n1 = await replica(stack, certs, f"sqlite:///{tmp_path}/store.db")
        await n1.runtime.run(holding().compile(), {}, execution_id="h1")
        evil, evil_url = await impostor(stack, certs, "evil")  # a peer of n1's
        other, other_url = await impostor(stack, certs, "n2")  # given, another certificate
        config = configuration(tmp_path, n1.url, evil_url)
        setup = await ui(stack, certs, [config], [f"other={other_url}"])
        one = "/api/nodes/n1/executions/h1"
        async with setup.client() as http:
            first = (await http.get("/api/nodes")).json()["nodes"]
            store = next(n for n in first if n["key"] == "n1")["node"]["store"]
            evil.claims = other.claims = store  # the worst case: they learned the real id
            nodes = (await http.get("/api/nodes")).json()["nodes"]
            up = (await http.get("/api/executions")).json()
            await n1.stop()
            down = (await http.get("/api/executions", params={"node": "n1"})).json()
            shown = await http.get(one)
            acts = [
                await http.post(one + "/cancel", json={}),
                await http.post(one + "/signal", json={"event": "approved"}),
                await http.post(one + "/answer", json={"text": "the launch code is 1234"}),
            ]
    assert [n["key"] for n in nodes] == ["n1", "evil", "other"]
    assert [n.get("shares_store_with") for n in nodes] == [None, None, None]
    listed = {row["id"]: row for row in up["executions"]}
    assert {i: r["node"] for i, r in listed.items()} == {
        "h1": "n1",
        "evil-made-up": "evil",
        "n2-made-up": "other",
    }
    assert all("replicas" not in row for row in listed.values())
    assert len({row["store"] for row in listed.values()}) == 3  # no row stands for another's
    assert (down["executions"], down["notes"]) == ([], [])
    assert [(e["node"], e["status"]) for e in down["errors"]] == [("n1", "down")]
    assert [shown.status_code, *(act.status_code for act in acts)] == [502, 502, 502, 502]
    for fake in (evil, other):
        assert not fake.reached("/ops/executions/h1") and not fake.reached("/a2a")

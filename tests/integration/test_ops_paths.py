"""The operator API's stream tells steps as they run, and every execution
id opens, whatever it holds ("/" too), while a path it lacks is a JSON 404."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from pydantic import BaseModel
from starlette.applications import Starlette
from support.certs import make_certs
from support.served import served
from support.tls import caller_context

from agent_node import Runtime, Workflow
from agent_node.a2a.server.ops import NodeAbout, ops_routes
from agent_node.config import PolicySettings
from agent_node.security.authz import Policy
from agent_node.security.tls import server_context
from agent_node.workflow.compiled import CompiledWorkflow

D = "spiffe://example.org/agent"
ODD = "walk/ü✈️ مرحبا 🧪 x"


class Note(BaseModel):
    text: str = ""
    n: int = 0


def slow() -> CompiledWorkflow:
    """Three steps, the second sleeping: a viewer sees the first done while it sleeps."""
    wf = Workflow("slow", version="1")
    wf.state(Note)

    @wf.step
    async def first(s: Note) -> dict[str, Any]:
        return {"n": 1}

    @wf.step
    async def second(s: Note) -> dict[str, Any]:
        await asyncio.sleep(2.5)
        return {"n": 2}

    @wf.step
    async def third(s: Note) -> dict[str, Any]:
        return {"n": 3}

    wf.end("done")
    return wf.compile()


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_certs(tmp_path_factory.mktemp("ops") / "certs", "node", "ops")


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[Runtime]:
    async with Runtime(f"sqlite:///{tmp_path}/s.db", scope="all", poll_interval=0.05) as made:
        yield made


@pytest.fixture
async def node(runtime: Runtime, certs: Path) -> AsyncIterator[str]:
    policy = Policy.of(PolicySettings(operators=[f"{D}/ops"]))
    app = Starlette(routes=ops_routes(runtime, policy, NodeAbout("tester")))
    tls = server_context(
        certs / "node.pem", certs / "node-key.pem", [certs / "ca.pem"], require_client_cert=False
    )
    async with served(app, tls) as url:
        yield url


def client(certs: Path) -> httpx.AsyncClient:
    return httpx.AsyncClient(verify=caller_context(certs, "ops"), timeout=15)


async def test_the_stream_tells_a_step_while_the_next_one_runs(
    runtime: Runtime, node: str, certs: Path
) -> None:
    seen: list[tuple[float, dict[str, Any]]] = []
    async with client(certs) as http, http.stream("GET", f"{node}/ops/stream") as response:
        lines = response.aiter_lines()
        assert await anext(lines) == "retry: 2000"
        began = asyncio.get_running_loop().time()
        running = asyncio.create_task(runtime.run(slow(), {}, execution_id="s1"))
        name = ""
        async for line in lines:
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: ") and name == "changes":
                now = asyncio.get_running_loop().time() - began
                seen += [(now, row) for row in json.loads(line[6:])["executions"]]
                if any(row["status"] == "completed" for _, row in seen):
                    break
        await running
    told = [at for at, row in seen if row["id"] == "s1" and row["status"] == "running"]
    # Created and started: told at once, while its second step sleeps 2.5 s.
    assert told and told[0] < 1.5, seen
    # A burst of commits (start, first step, second step begun) is one or two rows.
    assert len(told) <= 3, seen


async def test_an_id_with_a_slash_opens_and_acts(runtime: Runtime, node: str, certs: Path) -> None:
    done = await runtime.run(slow(), {}, execution_id=ODD)
    assert done.status == "completed"
    where = f"{node}/ops/executions/{quote(ODD, safe='')}"
    async with client(certs) as http:
        shown = await http.get(where)
        assert shown.status_code == 200, shown.text
        assert shown.json()["id"] == ODD
        logged = await http.get(f"{where}/events")
        assert logged.status_code == 200 and logged.json()["events"]
        retried = await http.post(f"{where}/retry", json={})
        assert retried.status_code == 409, retried.text  # found, and it did not fail


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/ops/executions/nope", 404),
        ("GET", "/ops/executions/nope/whatever", 404),
        ("GET", "/ops/executions/a/b/events", 404),
        ("GET", "/ops/executions/nope/retry", 405),
        ("GET", "/ops/nothing-here", 404),
    ],
)
async def test_every_path_it_lacks_is_a_json_error(
    node: str, certs: Path, method: str, path: str, status: int
) -> None:
    async with client(certs) as http:
        answer = await http.request(method, node + path)
    assert answer.status_code == status, answer.text
    assert answer.json()["error"]["message"]

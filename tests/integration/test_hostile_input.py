"""A client's bad input is the client's mistake: answered as invalid params
with a clear message, never an internal error with a traceback in our log."""

from __future__ import annotations

import asyncio
import base64
import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Route
from support.workflows import Greeting, greeter

from agent_node import Runtime, Workflow
from agent_node.a2a.server.jsonrpc import Limits, jsonrpc_endpoint
from agent_node.a2a.server.ops import ops_routes
from agent_node.a2a.server.tasks import TaskService
from agent_node.security.authz import Policy
from agent_node.transport import uvicorn_config, uvicorn_server


@pytest.fixture
async def client(durable_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with Runtime(durable_url, scope="all", poll_interval=0.05) as runtime:
        service = TaskService(runtime, {"greet": greeter().compile()}, default_skill="greet")
        caps = {"streaming": False, "pushNotifications": False}
        endpoint = jsonrpc_endpoint(service, capabilities=caps, limits=Limits())
        app = Starlette(routes=[Route("/a2a", endpoint, methods=["POST"])])
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://node") as client:
            yield client


async def list_tasks(client: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    body = {"jsonrpc": "2.0", "id": 1, "method": "ListTasks", "params": params}
    response = await client.post("/a2a", json=body, headers={"A2A-Version": "1.0"})
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


#: Page tokens this agent never issued, by what is wrong with them.
FOREIGN_TOKENS = {
    "30-digits": b64("9" * 30),  # overflowed the store's 64-bit integers: an internal error
    "2**63": b64(str(2**63)),
    "5000-digits": b64("9" * 5000),
    "100k-chars": "A" * 100_000,
    "negative": b64("-1"),
    "float": b64("1e3"),
    "arabic-digit": b64("\u0663"),
    "trailing-junk": "MTA=%%",
    "not-base64": "%%%",
    "keyset-nan": b64("nan|t1"),
    "keyset-infinite": b64("inf|t1"),
    "keyset-without-id": b64("1.5|"),
    "keyset-id-too-long": b64("1.5|" + "x" * 2000),
}


@pytest.mark.parametrize("token", FOREIGN_TOKENS.values(), ids=FOREIGN_TOKENS.keys())
async def test_a_page_token_we_did_not_issue_is_invalid_params(
    client: httpx.AsyncClient, token: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        answer = await list_tasks(client, pageToken=token)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    error = answer["error"]
    assert error["code"] == -32602, error
    assert error["message"] == (
        "pageToken is not one this agent issued: pass the nextPageToken of the previous page"
    )


async def test_the_page_tokens_we_issue_still_page(client: httpx.AsyncClient) -> None:
    for index in range(3):
        message = {"messageId": f"m{index}", "role": "ROLE_USER", "parts": [{"text": "hi"}]}
        body = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {"message": message}}
        sent = await client.post("/a2a", json=body, headers={"A2A-Version": "1.0"})
        assert "result" in sent.json(), sent.json()
    seen: list[str] = []
    page = (await list_tasks(client, pageSize=2))["result"]
    seen += [t["id"] for t in page["tasks"]]
    while page["nextPageToken"]:
        page = (await list_tasks(client, pageSize=2, pageToken=page["nextPageToken"]))["result"]
        seen += [t["id"] for t in page["tasks"]]
    assert len(seen) == len(set(seen)) == 3


# -- callers that go away mid-request --------------------------------------------------


@asynccontextmanager
async def node_server(app: Starlette, log: logging.Handler) -> AsyncIterator[int]:
    """``app`` behind the node's own uvicorn setup, on a free loopback port;
    what uvicorn logs (it does not propagate to the root logger) goes to ``log``."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn_server(uvicorn_config(app, None))  # (re)configures uvicorn's loggers
    uvicorn_log = logging.getLogger("uvicorn.error")
    uvicorn_log.addHandler(log)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        assert not task.done(), "the server did not start"
        await asyncio.sleep(0.01)
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        await task
        sock.close()
        uvicorn_log.removeHandler(log)


async def cut_off(port: int, path: str) -> None:
    """POST the start of a body to ``path``, then close the connection."""
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    head = f"POST {path} HTTP/1.1\r\nHost: node\r\nContent-Type: application/json\r\n"
    writer.write(f"{head}Content-Length: 500\r\n\r\n".encode() + b'{"reason": "wh')
    await writer.drain()
    await asyncio.sleep(0.2)
    writer.close()
    await writer.wait_closed()


async def test_a_caller_gone_mid_request_to_the_operator_api_is_one_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    wf = Workflow("approve", version="1")
    wf.state(Greeting)
    wf.wait("ask", event="approved", output="reply")
    async with Runtime("memory://", scope="all") as runtime:
        parked = await runtime.run(wf.compile(), {}, execution_id="x1")
        assert parked.status == "waiting"
        app = Starlette(routes=ops_routes(runtime, Policy.open()))
        with caplog.at_level(logging.DEBUG):
            async with node_server(app, caplog.handler) as port:
                await cut_off(port, "/ops/executions/x1/cancel")
                await cut_off(port, "/ops/executions/x1/signal")
                await asyncio.sleep(0.3)
        assert (await runtime.store.get("x1")).status == "waiting"  # type: ignore[union-attr]
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    assert loud == [], [r.getMessage() for r in loud]
    gone = [r.getMessage() for r in caplog.records if "went away" in r.getMessage()]
    assert gone == [
        "POST /ops/executions/x1/cancel: the caller went away mid-request",
        "POST /ops/executions/x1/signal: the caller went away mid-request",
    ]

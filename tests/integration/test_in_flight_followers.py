"""Calls that follow something for as long as it takes count as streams, not
requests in flight: a blocking SendMessage waiting for its task (JSON-RPC,
HTTP+JSON, gRPC) and the operator API's event streams. Served by the node's
own transport over mutual TLS, behind one Guard."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import BaseModel
from support.certs import make_certs
from support.fake_handler import FakeHandler
from support.grpc_calls import Caller, mtls_channel, refusal
from support.served import served
from support.tls import caller_context

from agent_node import Runtime, Workflow
from agent_node.a2a.protocol.models import SendMessageRequest, SendMessageResponse
from agent_node.a2a.server.app import Guard, create_app
from agent_node.a2a.server.card import CardDocument
from agent_node.a2a.server.grpc.server import bind, serve_service, stop
from agent_node.a2a.server.grpc.service import A2AService
from agent_node.a2a.server.handler import CallContext
from agent_node.a2a.server.jsonrpc import jsonrpc_endpoint
from agent_node.a2a.server.limits import Limits
from agent_node.a2a.server.ops import NodeAbout, ops_routes
from agent_node.a2a.server.rest import rest_endpoint
from agent_node.config import PolicySettings
from agent_node.security.authz import Policy
from agent_node.security.tls import server_context

grpc = pytest.importorskip("grpc")

D = "spiffe://example.org/agent"
ALICE = f"{D}/alice"
V10 = {"A2A-Version": "1.0"}
MESSAGE = {"messageId": "m", "role": "ROLE_USER", "parts": [{"text": "x"}]}
BLOCKING = {"message": MESSAGE}
AT_ONCE = {"message": MESSAGE, "configuration": {"returnImmediately": True}}


class Parking(FakeHandler):
    """A blocking send waits until :attr:`release` is set, as one whose task
    waits for a timer or a peer does; a send with ``returnImmediately`` does not."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.parked = 0

    async def send_message(
        self, request: SendMessageRequest, ctx: CallContext
    ) -> SendMessageResponse:
        response = await super().send_message(request, ctx)
        config = request.configuration
        if not (config and config.return_immediately):
            self.parked += 1
            await self.release.wait()
        return response


def rpc(method: str, params: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}


async def _until(condition: Any) -> None:
    async with asyncio.timeout(5):
        while not condition():
            await asyncio.sleep(0.01)


async def test_blocking_sends_waiting_for_their_tasks_count_as_streams_on_every_binding(
    tmp_path: Path,
) -> None:
    certs = make_certs(tmp_path / "certs", "node", "alice")
    handler = Parking()
    handler.tasks.update(Parking.with_working_task().tasks)
    guard = Guard(require_identity=True, max_concurrent_per_caller=2, max_streams_per_caller=3)
    app = create_app(
        CardDocument.of({"name": "t"}),
        jsonrpc_endpoint(handler, capabilities={}),
        rest=rest_endpoint(handler, capabilities={}),
        guard=guard,
    )
    tls = server_context(certs / "node.pem", certs / "node-key.pem", [certs / "ca.pem"])
    pem = (certs / "node.pem", certs / "node-key.pem", [certs / "ca.pem"])
    grpc_server, port = bind("127.0.0.1", 0, Limits(), pem)
    await serve_service(grpc_server, A2AService(handler, capabilities={}, guard=guard, secure=True))
    caller = Caller(mtls_channel(f"localhost:{port}", certs, "alice"))
    verify = caller_context(certs, "alice")
    try:
        async with (
            served(app, tls) as url,
            httpx.AsyncClient(base_url=url, verify=verify, timeout=10) as client,
        ):
            # More blocking sends than the cap of requests in flight, one per binding.
            waiting = [
                asyncio.create_task(
                    client.post("/a2a", json=rpc("SendMessage", BLOCKING), headers=V10)
                ),
                asyncio.create_task(client.post("/a2a/message:send", json=BLOCKING, headers=V10)),
                asyncio.create_task(caller.call("SendMessage", BLOCKING)),
            ]
            await _until(lambda: handler.parked == 3 or any(t.done() for t in waiting))
            assert not any(t.done() for t in waiting), [t.result() for t in waiting if t.done()]
            assert guard.in_flight.counts(ALICE) == (0, 3)
            # Their caller still gets and cancels tasks, and sends without waiting.
            got = await client.post("/a2a", json=rpc("GetTask", {"id": "t1"}), headers=V10)
            assert got.json()["result"]["id"] == "t1"
            assert (await caller.call("GetTask", {"id": "t1"}))["id"] == "t1"
            sent = await client.post("/a2a/message:send", json=AT_ONCE, headers=V10)
            assert sent.status_code == 200, sent.text
            canceled = await client.post("/a2a/tasks/t1:cancel", headers=V10)
            assert canceled.json()["status"]["state"] == "TASK_STATE_CANCELED"
            # One blocking send more is over the streams' cap: refused before the handler.
            calls = len(handler.calls)
            jsonrpc = await client.post("/a2a", json=rpc("SendMessage", BLOCKING), headers=V10)
            rest = await client.post("/a2a/message:send", json=BLOCKING, headers=V10)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await caller.call("SendMessage", BLOCKING)
            assert len(handler.calls) == calls
            error = jsonrpc.json()["error"]
            assert error["code"] == -32032 and "retry-after" not in jsonrpc.headers
            assert "a blocking SendMessage counts as one" in error["message"]
            assert rest.status_code == 429 and "retry-after" not in rest.headers
            on_grpc = refusal(caught.value)
            assert on_grpc.code == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert on_grpc.metadata == {"openStreams": "3", "limit": "3"}
            # Their tasks settle: each is answered, and nothing stays counted.
            handler.release.set()
            answers = await asyncio.gather(*waiting)
            assert answers[0].json()["result"]["task"]["status"]["state"] == "TASK_STATE_COMPLETED"
            assert answers[1].json()["task"]["status"]["state"] == "TASK_STATE_COMPLETED"
            assert answers[2]["task"]["status"]["state"] == "TASK_STATE_COMPLETED"
            await _until(lambda: guard.in_flight.counts(ALICE) == (0, 0))
    finally:
        await caller.channel.close()
        await stop(grpc_server, 0)


class Note(BaseModel):
    go: str = ""


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[Runtime]:
    async with Runtime(f"sqlite:///{tmp_path}/s.db", scope="all", poll_interval=0.05) as made:
        yield made


async def test_the_operator_apis_streams_count_as_streams_not_requests(
    tmp_path: Path, runtime: Runtime
) -> None:
    certs = make_certs(tmp_path / "certs", "node", "ops")
    wf = Workflow("parked", version="1")
    wf.state(Note)
    wf.wait("hold", event="go", output="go")
    wf.end("done")
    await runtime.start_execution(wf.compile(), {}, execution_id="e1")
    policy = Policy.of(PolicySettings(operators=[f"{D}/ops"]))
    guard = Guard(require_identity=True, max_concurrent_per_caller=2, max_streams_per_caller=3)
    app = create_app(
        CardDocument.of({"name": "t"}),
        routes=ops_routes(runtime, policy, NodeAbout("tester")),
        guard=guard,
    )
    tls = server_context(certs / "node.pem", certs / "node-key.pem", [certs / "ca.pem"])
    verify = caller_context(certs, "ops")
    async with (
        served(app, tls) as url,
        httpx.AsyncClient(base_url=url, verify=verify, timeout=10) as pages,
        httpx.AsyncClient(base_url=url, verify=verify, timeout=10) as api,
    ):
        # An operator UI's pages: more streams than the cap of requests in flight.
        held = [
            pages.stream("GET", "/ops/stream"),
            pages.stream("GET", "/ops/stream"),
            pages.stream("GET", "/ops/executions/e1/live"),
        ]
        opened = [await stream.__aenter__() for stream in held]
        try:
            assert [r.status_code for r in opened] == [200, 200, 200]
            assert guard.in_flight.counts(f"{D}/ops") == (0, 3)
            # The operator still uses its API.
            assert (await api.get("/ops/node")).status_code == 200
            assert (await api.get("/ops/executions/e1")).json()["status"] == "waiting"
            # One stream more is refused, saying why, without Retry-After.
            for path in ("/ops/stream", "/ops/executions/e1/live"):
                refused = await api.get(path)
                assert refused.status_code == 429 and "retry-after" not in refused.headers
                body = refused.json()["error"]
                assert body["status"] == "RESOURCE_EXHAUSTED"
                assert "3 event streams open" in body["message"]
                assert "closing one makes room" in body["message"]
        finally:
            for stream in held:
                await stream.__aexit__(None, None, None)
        await _until(lambda: guard.in_flight.counts(f"{D}/ops") == (0, 0))

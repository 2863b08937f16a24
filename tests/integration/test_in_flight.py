"""One caller's event streams and requests in flight, each under its own cap:
a node's app and gRPC service behind one Guard, served by its own transport
over mutual TLS (HTTP/1.1, HTTP/2, gRPC), in front of a handler whose
streams follow their task for ever."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.certs import make_certs
from support.fake_handler import FakeHandler
from support.grpc_calls import Caller, mtls_channel, refusal
from support.served import served
from support.tls import caller_context

from agent_node.a2a.protocol.models import StreamResponse, Task
from agent_node.a2a.server.app import Guard, create_app
from agent_node.a2a.server.card import CardDocument
from agent_node.a2a.server.grpc.server import bind, serve_service, stop
from agent_node.a2a.server.grpc.service import A2AService
from agent_node.a2a.server.in_flight import LOG_EVERY, InFlight
from agent_node.a2a.server.jsonrpc import jsonrpc_endpoint
from agent_node.a2a.server.limits import Limits
from agent_node.a2a.server.rest import rest_endpoint
from agent_node.security.tls import server_context

grpc = pytest.importorskip("grpc")

ALICE = "spiffe://example.org/agent/alice"
CAPS = {"streaming": True}
V10 = {"A2A-Version": "1.0"}


class Following(FakeHandler):
    """Streams that send their task, then follow it for ever."""

    async def subscribe_to_task(self, request: Any, ctx: Any) -> AsyncIterator[StreamResponse]:
        self.calls.append(("subscribe_to_task", request, ctx))
        return _follow(self._task(request.id))

    async def send_streaming_message(self, request: Any, ctx: Any) -> AsyncIterator[StreamResponse]:
        response = await self.send_message(request, ctx)
        assert response.task is not None
        return _follow(response.task)


async def _follow(task: Task) -> AsyncIterator[StreamResponse]:
    yield StreamResponse(task=task)
    await asyncio.Event().wait()


def rpc(method: str, params: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}


SUBSCRIBE = rpc("SubscribeToTask", {"id": "t1"})
SEND = {"message": {"messageId": "m", "role": "ROLE_USER", "parts": [{"text": "x"}]}}


async def test_open_streams_never_lock_their_caller_out_and_have_a_cap_of_their_own(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    certs = make_certs(tmp_path / "certs", "node", "alice")
    handler = Following.with_working_task()
    guard = Guard(require_identity=True, max_concurrent_per_caller=2, max_streams_per_caller=2)
    app = create_app(
        CardDocument.of({"name": "t"}),
        jsonrpc_endpoint(handler, capabilities=CAPS),
        rest=rest_endpoint(handler, capabilities=CAPS),
        guard=guard,
    )
    tls = server_context(certs / "node.pem", certs / "node-key.pem", [certs / "ca.pem"])
    grpc_server, port = bind(
        "127.0.0.1", 0, Limits(), (certs / "node.pem", certs / "node-key.pem", [certs / "ca.pem"])
    )
    await serve_service(
        grpc_server, A2AService(handler, capabilities=CAPS, guard=guard, secure=True)
    )
    verify = caller_context(certs, "alice")
    caller = Caller(mtls_channel(f"localhost:{port}", certs, "alice"))
    try:
        async with (
            served(app, tls) as url,
            httpx.AsyncClient(base_url=url, verify=verify, timeout=10) as h1,
            httpx.AsyncClient(base_url=url, verify=verify, http2=True, timeout=10) as h2,
        ):
            # As many streams as the cap of requests in flight, over HTTP/1.1 and HTTP/2.
            # (httpx sends no RST_STREAM for a stream closed early: the HTTP/2
            # one is closed with its connection, its own client's.)
            holder = httpx.AsyncClient(base_url=url, verify=verify, http2=True, timeout=10)
            held = [
                h1.stream("POST", "/a2a", json=SUBSCRIBE, headers=V10),
                holder.stream("POST", "/a2a/tasks/t1:subscribe", headers=V10),
            ]
            opened = [await stream.__aenter__() for stream in held]
            try:
                assert [r.status_code for r in opened] == [200, 200]
                assert guard.in_flight.counts(ALICE) == (0, 2)
                # Its other calls still pass, the card too: the streams are not requests.
                got = await h2.post("/a2a", json=rpc("GetTask", {"id": "t1"}), headers=V10)
                assert got.json()["result"]["id"] == "t1"
                assert (await h1.get("/.well-known/agent-card.json")).status_code == 200
                assert (await caller.call("GetTask", {"id": "t1"}))["id"] == "t1"
                # One stream more is refused on every binding, before the handler.
                sends = len(handler.calls)
                jsonrpc = await h2.post("/a2a", json=rpc("SendStreamingMessage", SEND), headers=V10)
                rest = await h1.post("/a2a/message:stream", json=SEND, headers=V10)
                on_grpc = await _refused(caller.stream("SubscribeToTask", {"id": "t1"}))
                assert len(handler.calls) == sends
                error = jsonrpc.json()["error"]
                assert error["code"] == -32032 and "retry-after" not in jsonrpc.headers
                told = f"{ALICE} has 2 event streams open, as many as this node allows one"
                assert told in error["message"] and "closing one makes room" in error["message"]
                assert rest.status_code == 429 and "retry-after" not in rest.headers
                assert told in rest.json()["error"]["message"]
                assert on_grpc.code == grpc.StatusCode.RESOURCE_EXHAUSTED
                assert on_grpc.metadata == {"openStreams": "2", "limit": "2"}
                canceled = await h1.post("/a2a", json=rpc("CancelTask", {"id": "t1"}), headers=V10)
                assert canceled.json()["result"]["status"]["state"] == "TASK_STATE_CANCELED"
            finally:
                for stream in held:
                    await stream.__aexit__(None, None, None)
                await holder.aclose()
            await _until(lambda: guard.in_flight.counts(ALICE) == (0, 0))
            # A stream closed makes room at once.
            async with h2.stream(
                "POST", "/a2a", json=rpc("SendStreamingMessage", SEND), headers=V10
            ) as again:
                assert again.status_code == 200
                assert guard.in_flight.counts(ALICE) == (0, 1)
    finally:
        await caller.channel.close()
        await stop(grpc_server, 0)
    lines = [r.getMessage() for r in caplog.records if "event streams open" in r.getMessage()]
    assert len(lines) == 1, lines  # three refusals, one line


async def _refused(call: Any) -> Any:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return refusal(caught.value)


async def _until(condition: Any) -> None:
    async with asyncio.timeout(5):
        while not condition():
            await asyncio.sleep(0.01)


def test_refusals_are_logged_once_per_caller_per_interval_with_their_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [1000.0]
    counter = InFlight(max_requests=1, clock=lambda: now[0])
    counter.enter("alice")
    counter.enter("bob")
    with caplog.at_level(logging.WARNING):
        for _ in range(5):
            assert counter.full("alice") is not None
        assert counter.full("bob") is not None
        now[0] += LOG_EVERY
        assert counter.full("alice") is not None
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "refused alice: 1 requests in flight (limits.max_concurrent_per_caller)",
        "refused bob: 1 requests in flight (limits.max_concurrent_per_caller)",
        "refused alice: 1 requests in flight (limits.max_concurrent_per_caller)"
        " (4 more refused since the last line)",
    ]

"""Our client of peers' gRPC interfaces (``agent_node.a2a.peers.grpc_calls``)
against a real grpc.aio server of ours on loopback, with real certificates:
answers as the 1.0 JSON the delegator reads, the identities on both sides,
and every way a call fails, judged as the HTTP bindings' failures are."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

grpc = pytest.importorskip("grpc")

from support.certs import make_certs  # noqa: E402
from support.fake_handler import FakeHandler  # noqa: E402
from support.ports import free_port  # noqa: E402

from agent_node.a2a.peers.discovery import PeerCard  # noqa: E402
from agent_node.a2a.peers.grpc_calls import GrpcPeers  # noqa: E402
from agent_node.a2a.peers.peer_errors import PeerError  # noqa: E402
from agent_node.a2a.server.grpc.server import bind, serve_service, stop  # noqa: E402
from agent_node.a2a.server.grpc.service import A2AService  # noqa: E402
from agent_node.a2a.server.limits import Limits  # noqa: E402
from agent_node.security.tls import client_context  # noqa: E402

D = "spiffe://example.org/agent"
CAPS = {"streaming": True, "pushNotifications": False}


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_certs(tmp_path_factory.mktemp("certs"), "b", "c", "a")


@pytest.fixture
def handler() -> FakeHandler:
    return FakeHandler.with_working_task()


@pytest.fixture
async def served(certs: Path, handler: FakeHandler) -> AsyncIterator[int]:
    """B (``b``'s certificate) serving ``handler`` over gRPC with mutual TLS: its port."""
    server, port = await _serve(certs, "b", handler)
    yield port
    await stop(server, 0)


async def _serve(certs: Path, name: str, handler: FakeHandler, port: int = 0) -> tuple[object, int]:
    tls = (certs / f"{name}.pem", certs / f"{name}-key.pem", [certs / "ca.pem"])
    server, bound = bind("127.0.0.1", port, Limits(), tls)
    await serve_service(server, A2AService(handler, capabilities=CAPS, secure=True))
    return server, bound


@pytest.fixture
async def peers(certs: Path) -> AsyncIterator[GrpcPeers]:
    """A's client: ``a``'s certificate, the CA as its trust bundle."""
    files = (certs / "a.pem", certs / "a-key.pem", [certs / "ca.pem"])
    client = GrpcPeers(files, client_context(*files))
    yield client
    await client.aclose()


def card(port: int, identity: str | None = f"{D}/b", scheme: str = "grpcs") -> PeerCard:
    now = time.time()
    endpoint = f"{scheme}://127.0.0.1:{port}"
    return PeerCard(
        name="b",
        base_url="https://127.0.0.1:1",
        card={},
        endpoint=endpoint,
        version="1.0",
        identity=identity,
        etag=None,
        fetched_at=now,
        expires_at=now + 60,
        signed_by=None,
        card_url=endpoint,
        binding="GRPC",
    )


def message(text: str) -> dict[str, object]:
    return {"message": {"messageId": "m-1", "role": "ROLE_USER", "parts": [{"text": text}]}}


async def test_calls_answer_1_0_json_and_both_sides_know_each_other(
    peers: GrpcPeers, served: int, handler: FakeHandler
) -> None:
    headers = {"Idempotency-Key": "k-1", "traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"}
    result, identity = await peers.call(card(served), "SendMessage", message("hi"), headers)
    assert identity == f"{D}/b"
    task = result["task"]
    assert task["status"]["state"] == "TASK_STATE_COMPLETED"
    assert task["history"][0]["parts"] == [{"text": "hi"}]
    (name, request, ctx) = handler.calls[-1]
    assert name == "send_message" and ctx.caller == f"{D}/a"  # our client certificate
    assert request.message.message_id == "m-1"
    assert (ctx.idempotency_key, ctx.traceparent) == ("k-1", headers["traceparent"])
    got, _ = await peers.call(card(served), "GetTask", {"id": "t1", "historyLength": 0}, {})
    assert (got["id"], got["status"]["state"]) == ("t1", "TASK_STATE_WORKING")
    canceled, _ = await peers.call(card(served), "CancelTask", {"id": "t1"}, {})
    assert canceled["status"]["state"] == "TASK_STATE_CANCELED"


async def test_a_server_that_is_not_the_peer_is_refused_before_the_call(
    certs: Path, peers: GrpcPeers, handler: FakeHandler
) -> None:
    server, port = await _serve(certs, "c", handler)  # C, where A expects B
    try:
        with pytest.raises(PeerError) as refused:
            await peers.call(card(port), "SendMessage", message("secret"), {})
    finally:
        await stop(server, 0)
    assert not refused.value.transient
    assert f"presented {D}/c, expected {D}/b" in str(refused.value)
    assert handler.calls == []  # not a byte of the message reached it


async def test_no_identity_configured_takes_whoever_the_trust_bundle_vouches_for(
    peers: GrpcPeers, served: int
) -> None:
    _, identity = await peers.call(card(served, identity=None), "GetTask", {"id": "t1"}, {})
    assert identity == f"{D}/b"


async def test_a_protocol_error_keeps_its_code_and_is_final(peers: GrpcPeers, served: int) -> None:
    with pytest.raises(PeerError) as missing:
        await peers.call(card(served), "GetTask", {"id": "nope"}, {})
    assert (missing.value.code, missing.value.transient) == (-32001, False)
    assert "refused GetTask" in str(missing.value)
    with pytest.raises(PeerError) as unsupported:
        async for _ in peers.subscribe(card(served), "t1"):
            pass
    assert (unsupported.value.code, unsupported.value.transient) == (-32004, False)


async def test_a_task_whose_id_holds_nul_is_not_a2a_for_good(
    peers: GrpcPeers, served: int, handler: FakeHandler
) -> None:
    """As over the HTTP bindings: no store of ours can keep such an id
    (PostgreSQL's text), and its send was tried again and again."""
    handler.tasks["t1"] = handler.tasks["t1"].model_copy(update={"id": "t\x00evil"})
    with pytest.raises(PeerError) as caught:
        await peers.call(card(served), "GetTask", {"id": "t1"}, {})
    assert not caught.value.transient
    assert (
        str(caught.value) == "peer 'b' answered GetTask with a task whose id holds a NUL character"
    )


async def test_a_server_s_internal_error_is_worth_trying_again(
    peers: GrpcPeers, served: int
) -> None:
    with pytest.raises(PeerError) as crashed:
        await peers.call(card(served), "SendMessage", message("crash"), {})
    assert crashed.value.transient and crashed.value.code == -32603


async def test_nobody_listening_is_transient_and_a_server_back_is_called(
    certs: Path, peers: GrpcPeers, handler: FakeHandler
) -> None:
    port = free_port()
    with pytest.raises(PeerError) as down:
        await peers.call(card(port), "GetTask", {"id": "t1"}, {})
    assert down.value.transient and "unreachable" in str(down.value)
    assert down.value.down  # taken as down meanwhile, as over HTTP
    server, _ = await _serve(certs, "b", handler, port)
    try:
        result, _ = await peers.call(card(port), "GetTask", {"id": "t1"}, {})
    finally:
        await stop(server, 0)
    assert result["id"] == "t1"


class Hanging(FakeHandler):
    """Takes GetTask and never answers it."""

    async def get_task(self, request: Any, ctx: Any) -> Any:
        await asyncio.Event().wait()


async def test_a_call_past_its_deadline_is_transient_and_the_peer_down(
    certs: Path, peers: GrpcPeers
) -> None:
    """As over HTTP (test_call_deadline.py): before, gRPC's own deadline
    was 30 s, and its expiry left the peer taken as up."""
    server, port = await _serve(certs, "b", Hanging.with_working_task())
    began = time.monotonic()
    try:
        with pytest.raises(PeerError) as late:
            await peers.call(card(port), "GetTask", {"id": "t1"}, {}, deadline=0.5)
    finally:
        await stop(server, 0)
    assert time.monotonic() - began < 3
    assert late.value.transient and late.value.down
    # Said by whichever side saw the deadline first: grpcio, or our server
    assert str(late.value).lower() == "peer 'b' unreachable: deadline exceeded"


async def test_a_server_the_trust_bundle_does_not_vouch_for_is_final(
    tmp_path: Path, peers: GrpcPeers, handler: FakeHandler
) -> None:
    other = make_certs(tmp_path / "other", "b")  # a "b" of another CA
    server, port = await _serve(other, "b", handler)
    try:
        with pytest.raises(PeerError) as untrusted:
            await peers.call(card(port), "GetTask", {"id": "t1"}, {})
    finally:
        await stop(server, 0)
    assert not untrusted.value.transient and "not trusted" in str(untrusted.value)
    assert handler.calls == []


async def test_a_node_without_tls_calls_plain_targets_only(
    handler: FakeHandler, served: int
) -> None:
    plain = GrpcPeers(None, None)
    try:
        with pytest.raises(PeerError, match="no certificate to call it with"):
            await plain.call(card(served), "GetTask", {"id": "t1"}, {})
        server, port = bind("127.0.0.1", 0, Limits())
        await serve_service(server, A2AService(handler, capabilities=CAPS))
        try:
            target = card(port, identity=None, scheme="grpc")
            result, identity = await plain.call(target, "GetTask", {"id": "t1"}, {})
        finally:
            await stop(server, 0)
    finally:
        await plain.aclose()
    assert (result["id"], identity) == ("t1", None)

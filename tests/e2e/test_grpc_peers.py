"""Delegation to a peer that speaks A2A over gRPC alone (issue 14: "our own
delegate node can use any binding a peer offers").

B is a real node serving no HTTP binding (``bindings: []``) and gRPC on a
port of its own, over the same mutual TLS: its card lists one interface,
``GRPC``. A delegates to it as to any peer, each way back: B pushes to A
(push, over HTTPS as ever), A follows B's task (``SubscribeToTask`` over
gRPC), or A polls (``GetTask`` over gRPC); a question relayed, a cancel
carried over. B's gRPC port is another origin than its card's, so A's
config must list it (``endpoints: [grpcs://…]``): without, A refuses. (The
gRPC client's own rules — identities, errors — are in
``tests/integration/test_grpc_client.py``.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from e2e.procs import Spawn, wait_until
from e2e.test_delegation import (
    BOOK,
    HELLO,
    HOLD,
    V10,
    D,
    Net,
    cancel_through,
    client,
    events_of,
    finished,
    get_task,
    kinds,
    send,
    send_text,
    tasks_of,
    verdict,
)
from support.certs import make_certs
from support.ports import free_port

pytest.importorskip("grpc")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_certs(tmp_path_factory.mktemp("grpc-peers") / "certs", "a", "b", "c", "alice")


@pytest.fixture
def net(tmp_path: Path, certs: Path, spawn: Spawn) -> Net:
    return Net(tmp_path, certs, spawn)


def grpc_only(net: Net, name: str, skills: dict[str, Path], *, push: bool = True) -> int:
    """Configure ``name`` to serve A2A over gRPC alone; its gRPC port."""
    port = free_port()
    config = net.configure(name, skills, [])
    text = config.read_text().replace(
        f"port: {net.port(name)}}}", f"port: {net.port(name)}, grpc_port: {port}, bindings: []}}"
    )
    if not push:
        text = text.replace("push: {allow: [127.0.0.0/8]}", "push: {enabled: false}")
    config.write_text(text)
    return port


def calling(net: Net, name: str, skill: str, peer: str, grpc_port: int, **relay: Any) -> None:
    """Configure ``name`` to delegate ``skill`` to ``peer``, whose gRPC port it lists."""
    config = net.configure(name, {"relay": net.relay(name, peer, skill, **relay)}, [peer])
    listed = f"identity: '{D}/{peer}', endpoints: ['grpcs://127.0.0.1:{grpc_port}']}}"
    config.write_text(config.read_text().replace(f"identity: '{D}/{peer}'}}", listed))


async def sent(net: Net, task: dict[str, Any]) -> dict[str, Any]:
    events = await events_of(net.store("a"), task["id"])
    data: dict[str, Any] = next(e for e in events if e.kind == "delegation_sent").data
    return data


async def via(net: Net, task: dict[str, Any]) -> str:
    events = await events_of(net.store("a"), task["id"])
    resolved = next(e for e in events if e.kind == "wait_resolved").data
    return str(resolved["payload"]["via"])


async def test_the_card_offers_grpc_alone_and_http_bindings_are_not_served(net: Net) -> None:
    port = grpc_only(net, "b", {"greet": HELLO})
    await net.start("b")
    async with client(net.certs) as http:
        card = (await http.get(f"{net.url('b')}/.well-known/agent-card.json")).json()
        body = {"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": "x"}}
        rpc = await http.post(f"{net.url('b')}/a2a", json=body, headers=V10)
    assert card["supportedInterfaces"] == [
        {"url": f"127.0.0.1:{port}", "protocolBinding": "GRPC", "protocolVersion": "1.0"}
    ]
    assert rpc.status_code in (404, 405)


async def test_a_delegation_over_grpc_resumes_by_push(net: Net) -> None:
    port = grpc_only(net, "b", {"greet": HELLO})
    calling(net, "a", "greet", "b", port)
    await net.start("b")
    await net.start("a")
    task = await send(net, "a", "Ada Lovelace")
    assert task["status"]["state"] == "TASK_STATE_COMPLETED"
    assert verdict(task) == "Ada Lovelace is a long name (11 letters)"
    data = await sent(net, task)
    assert (data["peer"], data["identity"], data["version"]) == ("b", f"{D}/b", "GRPC 1.0")
    assert await via(net, task) == "push"
    (b_task,) = await tasks_of(net.store("b"))
    # B knew A by the client certificate A presented on the gRPC connection.
    assert b_task.id == data["task_id"] and b_task.caller == f"{D}/a"


async def test_a_delegation_over_grpc_follows_the_peer_s_stream(net: Net) -> None:
    port = grpc_only(net, "b", {"greet": HELLO}, push=False)
    calling(net, "a", "greet", "b", port, poll=30.0)
    await net.start("b")
    await net.start("a")
    task = await send(net, "a", "Grace")
    assert verdict(task) == "Grace is a short name (5 letters)"
    assert await via(net, task) == "stream"


async def test_a_delegation_over_grpc_polls_when_pushes_are_lost(net: Net) -> None:
    # A tells B to push where nobody listens: A polls B (GetTask over gRPC).
    port = grpc_only(net, "b", {"greet": HELLO})
    calling(net, "a", "greet", "b", port, poll=0.3)
    config = net.root / "a.yaml"
    config.write_text(config.read_text() + f"public_url: https://127.0.0.1:{free_port()}\n")
    await net.start("b")
    await net.start("a")
    task = await send(net, "a", "Alan Turing")
    assert verdict(task) == "Alan Turing is a long name (10 letters)"
    assert await via(net, task) == "poll"


async def test_a_question_and_its_answer_cross_a_grpc_hop(net: Net) -> None:
    port = grpc_only(net, "b", {"book": Path(f"{BOOK}:wf")})
    calling(net, "a", "book", "b", port, as_text=True, keep="text")
    await net.start("b")
    await net.start("a")
    task = await send_text(net, "a", {"parts": [{"text": "Lisbon"}]})
    assert task["status"]["state"] == "TASK_STATE_INPUT_REQUIRED"
    assert task["status"]["message"]["parts"][0]["text"] == "When do you want to go to Lisbon?"
    done = await send_text(net, "a", {"taskId": task["id"], "parts": [{"text": "in May"}]})
    if done["status"]["state"] != "TASK_STATE_COMPLETED":
        await wait_until(lambda: finished(net.store("a"), task["id"]), "A to finish", timeout=30)
        done = await get_task(net, "a", task["id"])
    assert verdict(done) == "Booked Lisbon for in May."
    assert kinds(await events_of(net.store("a"), task["id"])).count("delegation_answered") == 1


async def test_canceling_carries_over_grpc(net: Net) -> None:
    hold = net.root / "hold.yaml"
    hold.write_text(HOLD)
    port = grpc_only(net, "b", {"hold": hold})
    calling(net, "a", "hold", "b", port, poll=30.0)
    await net.start("b")
    await net.start("a")
    await cancel_through(net)


async def test_a_grpc_port_not_listed_is_refused(net: Net) -> None:
    grpc_only(net, "b", {"greet": HELLO})
    net.configure("a", {"relay": net.relay("a", "b", "greet")}, ["b"])  # no endpoints
    await net.start("b")
    await net.start("a")
    task = await send(net, "a", "Ada")
    assert task["status"]["state"] == "TASK_STATE_FAILED"
    said = task["status"]["message"]["parts"][0]["text"]
    assert "127.0.0.1:" in said and "over https" in said, said
    assert await tasks_of(net.store("b")) == []

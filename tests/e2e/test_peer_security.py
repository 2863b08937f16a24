"""Identities and endpoints a hostile peer cannot steer, against real nodes
over real mutual TLS: a certificate is known by its URI SAN (its CN only
when the node says so)."""

from __future__ import annotations

import asyncio
import re
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e.procs import Spawn
from e2e.test_delegation import HELLO, Net, send, tasks_of, verdict
from support.certs import issue_cn_only, make_certs
from support.front import Front
from support.impostor import impostor
from support.nodes import serving_mtls

from agent_node.security.tls import client_context

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

D = "spiffe://example.org/agent"
V10 = {"A2A-Version": "1.0"}
#: Only "client" may call the greeter.
ONLY_CLIENT = f'policy: {{callers: ["{D}/client"]}}\n'


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """CA example.org: greeter, client, a, b, c, alice (the delegation tests'
    caller); "spoof", whose CN reads client's identity."""
    names = ("greeter", "client", "a", "b", "c", "alice")
    folder = make_certs(tmp_path_factory.mktemp("peer-security") / "certs", *names)
    issue_cn_only(folder, "spoof", f"{D}/client")
    return folder


def as_(certs: Path, name: str) -> httpx.Client:
    tls = client_context(certs / f"{name}.pem", certs / f"{name}-key.pem", [certs / "ca.pem"])
    return httpx.Client(verify=tls, timeout=30)


def greet(http: httpx.Client, url: str) -> httpx.Response:
    message = {"messageId": "m", "role": "ROLE_USER", "parts": [{"data": {"name": "Ada"}}]}
    body = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {"message": message}}
    return http.post(f"{url}/a2a", json=body, headers=V10)


def task_of(answer: httpx.Response) -> dict[str, Any]:
    assert answer.status_code == 200, answer.text
    task: dict[str, Any] = answer.json()["result"]["task"]
    return task


# -- identity comes from the URI SAN ------------------------------------------


def test_a_cn_reading_like_an_identity_is_nobody(certs: Path, tmp_path: Path) -> None:
    with serving_mtls(tmp_path, certs, ONLY_CLIENT) as url:
        with as_(certs, "spoof") as spoof:
            refused = greet(spoof, url)
        with as_(certs, "client") as client:
            task = task_of(greet(client, url))
    # The spoofing certificate chains to the CA, but names no identity: refused.
    assert refused.status_code == 401, refused.text
    assert refused.json()["error"]["code"] == -32030
    assert task["metadata"]["caller"] == f"{D}/client"


def test_identity_from_cn_takes_the_cn_of_a_certificate_without_uri_san(
    certs: Path, tmp_path: Path
) -> None:
    tls = (
        f"tls: {{cert: '{certs / 'greeter.pem'}', key: '{certs / 'greeter-key.pem'}',"
        f" trust: ['{certs / 'ca.pem'}'], identity_from_cn: true}}\n"
    )
    with serving_mtls(tmp_path, certs, ONLY_CLIENT + tls) as url, as_(certs, "spoof") as spoof:
        task = task_of(greet(spoof, url))
    assert task["status"]["state"] == "TASK_STATE_COMPLETED"
    assert task["metadata"]["caller"] == f"{D}/client"


# -- card steering: peer endpoints are ours to choose ----------------------------


@pytest.fixture
def net(tmp_path: Path, certs: Path, spawn: Spawn) -> Net:
    return Net(tmp_path, certs, spawn)


@dataclass
class Listener:
    """A TCP server that answers nothing and records every connection and byte."""

    port: int = 0
    connections: int = 0
    received: bytearray = field(default_factory=bytearray)


@asynccontextmanager
async def listening() -> AsyncIterator[Listener]:
    seen = Listener()

    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.connections += 1
        while chunk := await reader.read(65536):
            seen.received += chunk
        writer.close()

    server = await asyncio.start_server(record, "127.0.0.1", 0)
    seen.port = server.sockets[0].getsockname()[1]
    async with server:
        yield seen


def said(task: dict[str, Any]) -> str:
    return " ".join(p.get("text", "") for p in task["status"]["message"]["parts"])


async def test_a_card_pointing_elsewhere_fails_the_delegation_and_nothing_goes_there(
    net: Net,
) -> None:
    """B's card names a plain-HTTP address on another port (its public_url):
    A refuses it at once, naming B and that origin, and never connects there."""
    async with listening() as elsewhere:
        public = f"public_url: http://127.0.0.1:{elsewhere.port}\n"
        net.configure("b", {"greet": HELLO}, [], public)
        net.configure("a", {"relay": net.relay("a", "b", "greet", poll=0.5)}, ["b"])
        await net.start("b")
        await net.start("a")
        task = await send(net, "a", "Ada Lovelace")
    assert task["status"]["state"] == "TASK_STATE_FAILED", task
    message = said(task)
    assert "peer 'b' rejected" in message, message
    assert f"(127.0.0.1:{elsewhere.port} over http)" in message, message
    assert not re.search(rf"https?://|:{net.port('b')}\b", message), message
    assert (elsewhere.connections, bytes(elsewhere.received)) == (0, b"")
    assert await tasks_of(net.store("b")) == []


async def test_an_origin_allowed_under_endpoints_is_called(net: Net) -> None:
    """B's card names another port, where a TCP front reaches B (TLS passes
    through it): another origin than the one A knows, refused until A's
    configuration lists it."""
    front = Front([("127.0.0.1", net.port("b"))])
    await front.start()
    try:
        other = f"https://127.0.0.1:{front.port}"
        net.configure("b", {"greet": HELLO}, [], f"public_url: {other}\n")
        config = net.configure("a", {"relay": net.relay("a", "b", "greet", poll=0.5)}, ["b"])
        await net.start("b")
        a = await net.start("a")
        refused = await send(net, "a", "Grace")
        assert refused["status"]["state"] == "TASK_STATE_FAILED", refused
        assert f"(127.0.0.1:{front.port} over https)" in said(refused)
        a.send(signal.SIGTERM)
        assert a.wait(30) == 0
        listed = f"identity: '{D}/b', endpoints: ['{other}']}}"
        config.write_text(config.read_text().replace(f"identity: '{D}/b'}}", listed))
        await net.start("a")
        task = await send(net, "a", "Alan Turing")
    finally:
        await front.close()
    assert task["status"]["state"] == "TASK_STATE_COMPLETED", task
    assert verdict(task) == "Alan Turing is a long name (10 letters)"
    (b_task,) = await tasks_of(net.store("b"))
    assert b_task.caller == f"{D}/a"


# -- the peer's identity, checked at the handshake --------------------------------


IMPOSTOR = f"peer 'b' rejected: the server presented {D}/c, expected {D}/b"


async def test_an_impostor_at_the_peers_address_gets_not_even_the_card_request(
    net: Net,
) -> None:
    """A knows b at a port where a node holding c's certificate (of the same
    CA) listens: the card fetch stops at the handshake, the delegation fails
    for good, and the impostor received not one byte."""
    net.configure("a", {"relay": net.relay("a", "b", "greet", poll=0.5)}, ["b"])
    with impostor(net.certs, "c", net.port("b")) as fake:
        await net.start("a")
        task = await send(net, "a", "Ada Lovelace")
    assert task["status"]["state"] == "TASK_STATE_FAILED", task
    assert said(task).endswith(IMPOSTOR), said(task)
    assert fake.connections >= 1 and bytes(fake.received) == b""


@pytest.mark.parametrize("configured", [True, False], ids=["configured", "learned"])
async def test_a_peer_replaced_by_an_impostor_is_sent_nothing(net: Net, configured: bool) -> None:
    """b answers one delegation (A has its card, and a connection to it);
    then c's certificate serves at b's port. A's next SendMessage stops at
    the handshake: the identity A expects is b's, configured or learned from
    the card b served."""
    config = net.configure("a", {"relay": net.relay("a", "b", "greet", poll=0.5)}, ["b"])
    if not configured:
        config.write_text(config.read_text().replace(f", identity: '{D}/b'", ""))
    net.configure("b", {"greet": HELLO}, [])
    b = await net.start("b")
    await net.start("a")
    first = await send(net, "a", "Grace Hopper")
    assert verdict(first) == "Grace Hopper is a long name (11 letters)"
    b.send(signal.SIGKILL)
    b.wait(10)
    with impostor(net.certs, "c", net.port("b")) as fake:
        task = await send(net, "a", "Ada Lovelace")
    assert task["status"]["state"] == "TASK_STATE_FAILED", task
    assert said(task).endswith(IMPOSTOR), said(task)
    assert fake.connections >= 1 and bytes(fake.received) == b""

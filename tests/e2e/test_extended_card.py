"""The extended Agent Card of a real node over mutual TLS: a skill configured
``card: extended`` is missing from the public card, which declares that an
extended one exists; GetExtendedAgentCard gives it, signed, over JSON-RPC
(1.0 and 0.3), HTTP+JSON and gRPC, to the callers ``policy.extended_card``
names (and operators) — and to nobody else."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.certs import make_certs
from support.grpc_calls import Caller, mtls_channel, refusal
from support.nodes import serving_mtls
from support.tls import caller_context

from agent_node.a2a.peers.signing import verify_card

pytestmark = pytest.mark.slow

grpc = pytest.importorskip("grpc")

D = "spiffe://example.org/agent"
POLICY = f"policy: {{extended_card: ['{D}/bob'], operators: ['{D}/ops']}}\n"
V10 = {"A2A-Version": "1.0"}


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_certs(tmp_path_factory.mktemp("ext") / "certs", "greeter", "bob", "eve", "ops")


@pytest.fixture(scope="module")
def node(certs: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("node")
    with serving_mtls(folder, certs, POLICY, grpc=True, book_card="extended") as url:
        yield url


def client(certs: Path, name: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(verify=caller_context(certs, name), timeout=30)


async def public_card(certs: Path, node: str) -> dict[str, Any]:
    async with client(certs, "eve") as http:
        card: dict[str, Any] = (await http.get(f"{node}/.well-known/agent-card.json")).json()
    return card


async def rpc(certs: Path, node: str, name: str, method: str, v03: bool = False) -> Any:
    body = {"jsonrpc": "2.0", "id": 1, "method": method}
    async with client(certs, name) as http:
        return (await http.post(f"{node}/a2a", json=body, headers={} if v03 else V10)).json()


@pytest.fixture
async def grpc_caller(certs: Path, node: str) -> AsyncIterator[Any]:
    card = await public_card(certs, node)
    [target] = [i["url"] for i in card["supportedInterfaces"] if i["protocolBinding"] == "GRPC"]

    def caller(name: str) -> Caller:
        return Caller(channels.setdefault(name, mtls_channel(target, certs, name)))

    channels: dict[str, Any] = {}
    try:
        yield caller
    finally:
        for channel in channels.values():
            await channel.close()


def skill_ids(card: dict[str, Any]) -> list[str]:
    return [skill["id"] for skill in card["skills"]]


async def test_the_public_card_hides_the_skill_and_says_an_extended_card_exists(
    certs: Path, node: str
) -> None:
    card = await public_card(certs, node)
    assert skill_ids(card) == ["greet"]
    assert card["capabilities"]["extendedAgentCard"] is True
    assert card["supportsAuthenticatedExtendedCard"] is True  # what 0.3 clients read


async def test_every_binding_gives_the_extended_card_signed(
    certs: Path, node: str, grpc_caller: Any
) -> None:
    jsonrpc = (await rpc(certs, node, "bob", "GetExtendedAgentCard"))["result"]
    async with client(certs, "bob") as http:
        rest = (await http.get(f"{node}/a2a/extendedAgentCard", headers=V10)).json()
    over_grpc = await grpc_caller("bob").call("GetExtendedAgentCard", {})
    for card in (jsonrpc, rest, over_grpc):
        assert skill_ids(card) == ["greet", "book"], card
    for card in (jsonrpc, rest):  # as built and signed: the signature verifies
        assert verify_card(card, [certs / "ca.pem"]).signer == f"{D}/greeter"
    v03 = (await rpc(certs, node, "bob", "agent/getAuthenticatedExtendedCard", v03=True))["result"]
    assert [s["id"] for s in v03["skills"]] == ["greet", "book"]
    assert v03["protocolVersion"].startswith("0.3") and "url" in v03


async def test_operators_may_read_it_and_other_callers_may_not(
    certs: Path, node: str, grpc_caller: Any
) -> None:
    assert skill_ids((await rpc(certs, node, "ops", "GetExtendedAgentCard"))["result"]) == [
        "greet",
        "book",
    ]
    refused = await rpc(certs, node, "eve", "GetExtendedAgentCard")
    assert refused["error"]["code"] == -32031, refused
    async with client(certs, "eve") as http:
        rest = await http.get(f"{node}/a2a/extendedAgentCard", headers=V10)
    assert rest.status_code == 403
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await grpc_caller("eve").call("GetExtendedAgentCard", {})
    assert refusal(caught.value).code == grpc.StatusCode.PERMISSION_DENIED


async def test_hiding_is_not_authorization_the_skill_s_policy_decides(
    certs: Path, node: str
) -> None:
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "SendMessage",
        "params": {
            "message": {
                "messageId": "m1",
                "role": "ROLE_USER",
                "parts": [{"data": {"guests": 2}}],
                "metadata": {"skill": "book"},
            },
            "configuration": {"returnImmediately": True},
        },
    }
    async with client(certs, "eve") as http:
        answer = (await http.post(f"{node}/a2a", json=body, headers=V10)).json()
    assert "result" in answer, answer  # policy.callers is '*': eve may call book

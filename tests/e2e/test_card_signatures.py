"""Our signed card, checked by the official verifiers, each in its own process.

``agent-node serve`` runs the greeter example over mutual TLS; each verifier
fetches the card and the JWK Set its signature's ``jku`` names (presenting
alice's certificate) and checks the signature as it checks any agent's:

* a2a-sdk 1.x: ``A2ACardResolver`` with ``create_signature_verifier``
  (``tests/e2e/card_signing/sdk_verify.py``, in the a2a-sdk signing venv);
* ``@a2a-js/sdk`` 1.x: ``verifyAgentCardSignature`` (``tests/e2e/js/verify_card.mjs``),
  on the card as fetched and as its card resolver returns it;
* the A2A TCK's CARD-SIGN check, rebuilt on its own libraries
  (``tests/e2e/card_signing/tck_verify.py``: the TCK cannot be installed
  here, and its 1.0-dev snapshot has no automated check).

And the other way: a card signed by a2a-sdk's own signer (kid and jku, no
certificate) is verified by our node with the JWK Set on the peer's origin,
never with one elsewhere, or with keys configured for the peer.

The SDKs read only the 1.0 fields, so they verify the card with or without
the 0.3 fields beside them; the TCK keeps unknown members in its payload and
wants a pure 1.0 card (``card_v03_fields: false``, as for its other checks).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from e2e.foreign.js_peers import GENERATIONS, js_install
from e2e.venvs import SDK_SIGNING
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from support.certs import make_certs
from support.nodes import serving_mtls
from support.served import served

from agent_node.a2a.peers.card_keys import MAX_JWKS_BYTES
from agent_node.a2a.peers.client import http_client
from agent_node.a2a.peers.directory import Directory
from agent_node.a2a.peers.discovery import CARD_PATH, PeerUnavailable
from agent_node.config import NodeConfig, PeerConfig
from agent_node.security.tls import client_context, server_context

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300 if SDK_SIGNING.ready() else 600)]

HERE = Path(__file__).resolve().parent
GREETER = "spiffe://example.org/agent/greeter"
WRITER = "spiffe://example.org/agent/writer"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("pki") / "certs"
    return make_certs(folder, "greeter", "alice", "writer", "mallory")


@asynccontextmanager
async def our_client(certs: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The node's own client, as alice: what discovery fetches cards with."""
    tls = client_context(certs / "alice.pem", certs / "alice-key.pem", [certs / "ca.pem"])
    async with http_client(tls, timeout=5) as http:
        yield http


#: A node taking bearer JWTs and API keys too: its card declares three schemes.
AUTH = (
    "auth: {api_keys: {}, jwt: {issuer: 'https://issuer.test', audience: greeter,"
    " jwks_file: jwks.json}}\n"
)


@pytest.fixture(
    scope="module",
    params=[(True, ""), (False, ""), (False, AUTH)],
    ids=["with-0.3-fields", "1.0-only", "1.0-with-auth-schemes"],
)
def node(
    request: pytest.FixtureRequest, certs: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, bool]]:
    folder = tmp_path_factory.mktemp("node")
    v03, auth = request.param
    extra = f"card_v03_fields: {str(v03).lower()}\n{auth}"
    with serving_mtls(folder, certs, extra=extra) as url:
        yield url, v03


def run(argv: list[str]) -> dict[str, Any]:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=dict(os.environ))
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


def python_script(name: str, url: str, certs: Path) -> list[str]:
    script = HERE / "card_signing" / name
    return [str(SDK_SIGNING.interpreter()), str(script), "--url", url, "--certs", str(certs)]


def test_a2a_sdk_verifies_our_card(node: tuple[str, bool], certs: Path) -> None:
    url, _ = node
    report = run([*python_script("sdk_verify.py", url, certs), "--name", "alice"])
    assert report["verified"], report
    assert report["jku"] == f"{url}/.well-known/jwks.json" and report["name"] == "Greeter"


def test_a2a_js_verifies_our_card(node: tuple[str, bool], certs: Path) -> None:
    url, v03 = node
    js_install("1")
    argv = GENERATIONS["1"].script("verify_card.mjs")
    report = run([*argv, "--url", url, "--certs", str(certs), "--name", "alice"])
    assert report["fetched"] == {"verified": True}, report
    assert report["jku"] == f"{url}/.well-known/jwks.json"
    # Through the SDK's card resolver too, but for a 1.0-only card: it hands
    # the verifier a parsed card that loses the security schemes
    # (verify_card.mjs says how), whoever signed it.
    assert report["resolved"]["verified"] is v03, report


def test_the_tcks_check_verifies_our_10_card(node: tuple[str, bool], certs: Path) -> None:
    url, v03 = node
    report = run([*python_script("tck_verify.py", url, certs), "--name", "alice"])
    if v03:  # the TCK signs unknown members too: the 0.3 fields are outside what we sign
        assert not report["verified"] and '"protocolVersion":"0.3.0"' in report["payload"]
        return
    assert report["verified"] and report["errors"] == [], report


# --- a peer's card, signed by a2a-sdk's signer, checked by our node ---------------


@dataclass
class Site:
    """What a fake peer serves (path -> JSON body), and the paths it was asked for."""

    bodies: dict[str, bytes] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)

    async def handle(self, request: Request) -> Response:
        self.asked.append(request.url.path)
        body = self.bodies.get(request.url.path)
        return Response(body, media_type="application/json") if body else Response(None, 404)


@asynccontextmanager
async def site(certs: Path, name: str) -> AsyncIterator[tuple[Site, str]]:
    """A fake peer over mutual TLS with ``name``'s certificate; its base URL."""
    fake = Site()
    tls = server_context(certs / f"{name}.pem", certs / f"{name}-key.pem", [certs / "ca.pem"])
    async with served(Starlette(routes=[Route("/{path:path}", fake.handle)]), tls) as url:
        yield fake, url


def sdk_signed(card: dict[str, Any], jku: str, tmp: Path) -> dict[str, Any]:
    """``card`` signed by a2a-sdk's own signer with a fresh P-256 key (kid
    ``sdk-key-1``, ``jku``), and the JWK Set of that key: what its script printed."""
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    (tmp / "key.pem").write_bytes(pem)
    (tmp / "card.json").write_text(json.dumps(card))
    script = HERE / "card_signing" / "sdk_sign.py"
    argv = [str(SDK_SIGNING.interpreter()), str(script), "--card", str(tmp / "card.json")]
    return run([*argv, "--key", str(tmp / "key.pem"), "--kid", "sdk-key-1", "--jku", jku])


def peer_card(url: str) -> dict[str, Any]:
    interface = {"url": f"{url}/a2a", "protocolBinding": "JSONRPC", "protocolVersion": "1.0"}
    skill = {"id": "write", "name": "Write", "description": "Writes.", "tags": ["text"]}
    return {
        "name": "Writer",
        "description": "An a2a-sdk agent.",
        "version": "1.0.0",
        "supportedInterfaces": [interface],
        "capabilities": {"streaming": True},
        "defaultInputModes": ["text/plain"],
        "defaultOutputModes": ["text/plain"],
        "skills": [skill],
    }


async def test_a_card_signed_by_a2a_sdk_is_verified_by_jku_on_the_peers_origin(
    certs: Path, tmp_path: Path
) -> None:
    async with site(certs, "writer") as (writer, url):
        signed = sdk_signed(peer_card(url), f"{url}/keys/jwks.json", tmp_path)
        writer.bodies = {
            CARD_PATH: json.dumps(signed["card"]).encode(),
            "/keys/jwks.json": json.dumps(signed["jwks"]).encode(),
        }
        peers = [PeerConfig(name="writer", url=url, identity=WRITER, require_signed_card=True)]
        async with our_client(certs) as http:
            directory = Directory(peers, http, trust=[certs / "ca.pem"])
            card = await directory.card("writer")
            assert card.signed_by == WRITER  # the identity that served the JWK Set
            directory.forget("writer")
            await directory.card("writer")  # the JWK Set is kept: fetched once
        assert writer.asked == [CARD_PATH, "/keys/jwks.json", CARD_PATH]
        # Altered after signing: the key is found, the signature does not match.
        writer.bodies[CARD_PATH] = json.dumps({**signed["card"], "name": "Other"}).encode()
        async with our_client(certs) as http:
            directory = Directory(peers, http, trust=[certs / "ca.pem"])
            with pytest.raises(PeerUnavailable, match="invalid card signature: signature 1"):
                await directory.card("writer")


async def test_a_jku_on_another_origin_is_never_fetched(certs: Path, tmp_path: Path) -> None:
    async with site(certs, "writer") as (writer, url), site(certs, "mallory") as (other, elsewhere):
        signed = sdk_signed(peer_card(url), f"{elsewhere}/jwks.json", tmp_path)
        writer.bodies = {CARD_PATH: json.dumps(signed["card"]).encode()}
        other.bodies = {"/jwks.json": json.dumps(signed["jwks"]).encode()}
        loose = PeerConfig(name="writer", url=url, identity=WRITER)
        strict = loose.model_copy(update={"require_signed_card": True})
        async with our_client(certs) as http:
            card = await Directory([loose], http, trust=[certs / "ca.pem"]).card("writer")
            assert card.signed_by is None  # used as unsigned (logged)
            with pytest.raises(PeerUnavailable) as refused:
                await Directory([strict], http, trust=[certs / "ca.pem"]).card("writer")
        assert other.asked == []
        assert refused.value.permanent and refused.value.reason == (
            "its card must be signed by a key we trust, and is not"
            " (signature 1: no key we trust has kid 'sdk-key-1')"
        )


async def test_configured_card_keys_vouch_for_a_peers_card(certs: Path, tmp_path: Path) -> None:
    """The trust store: the peer's key in a JWK Set file of our configuration,
    matched by kid; its jku (elsewhere) is then never fetched."""
    async with site(certs, "writer") as (writer, url):
        signed = sdk_signed(peer_card(url), "https://192.0.2.1/jwks.json", tmp_path)
        writer.bodies = {CARD_PATH: json.dumps(signed["card"]).encode()}
        (tmp_path / "writer.jwks.json").write_text(json.dumps(signed["jwks"]))
        config = NodeConfig.model_validate(
            {
                "name": "alice",
                "base_dir": tmp_path,
                "peers": [
                    {
                        "name": "writer",
                        "url": url,
                        "card_keys": ["writer.jwks.json"],
                        "require_signed_card": True,
                    }
                ],
            }
        )
        async with our_client(certs) as http:
            card = await Directory(config.peers, http, trust=[certs / "ca.pem"]).card("writer")
        assert card.signed_by == "writer's card_keys (sdk-key-1)"
        assert writer.asked == [CARD_PATH]


async def test_a_jwk_set_over_the_bound_is_not_used(certs: Path, tmp_path: Path) -> None:
    async with site(certs, "writer") as (writer, url):
        signed = sdk_signed(peer_card(url), f"{url}/jwks.json", tmp_path)
        padding = [{"kid": f"k{i}", "kty": "oct", "k": "x" * 64} for i in range(1000)]
        big = {"keys": [*signed["jwks"]["keys"], *padding]}
        assert len(json.dumps(big)) > MAX_JWKS_BYTES
        writer.bodies = {
            CARD_PATH: json.dumps(signed["card"]).encode(),
            "/jwks.json": json.dumps(big).encode(),
        }
        peers = [PeerConfig(name="writer", url=url, identity=WRITER)]
        async with our_client(certs) as http:
            card = await Directory(peers, http, trust=[certs / "ca.pem"]).card("writer")
        assert card.signed_by is None and writer.asked == [CARD_PATH, "/jwks.json"]

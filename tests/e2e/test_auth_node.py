"""A node accepting mutual TLS, bearer JWTs and API keys at once (issue 15):
a real `agent-node serve` over TLS, callers without certificates naming
themselves by token or key, one policy for every scheme, every refusal
exact and nothing created by a refused call."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from support.nodes import serving_mtls
from support.tls import caller_context

from agent_node.security import pki

pytestmark = pytest.mark.slow

V10 = {"A2A-Version": "1.0"}
DOMAIN = "spiffe://example.org/agent"
ISSUER = "https://issuer.test"
AUDIENCE = "greeter"
KEY = ec.generate_private_key(ec.SECP256R1())
AUTH = f"""
auth:
  api_keys: {{}}
  jwt: {{issuer: "{ISSUER}", audience: {AUDIENCE}, jwks_file: jwks.json, algorithms: [ES256]}}
policy:
  callers: ["{DOMAIN}/alice", "ci", "carol"]
  skills: {{book: ["{DOMAIN}/bob", "bob-jwt"]}}
  operators: ["{DOMAIN}/ops-*"]
"""


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("auth") / "certs"
    pki.init_ca(folder, trust_domain="example.org")
    for name in ("greeter", "alice", "bob", "ops-1"):
        pki.issue(folder, name)
    return folder


class Node:
    def __init__(self, url: str, directory: Path) -> None:
        self.url = url
        self.directory = directory


@pytest.fixture(scope="module")
def node(certs: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    directory = tmp_path_factory.mktemp("auth-node")
    jwk = jwt.algorithms.ECAlgorithm.to_jwk(KEY.public_key(), as_dict=True)
    (directory / "jwks.json").write_text(json.dumps({"keys": [{**jwk, "kid": "k1"}]}))
    with serving_mtls(directory, certs, AUTH, grpc=True) as url:
        yield Node(url, directory)


def token(sub: str, **claims: Any) -> str:
    now = time.time()
    body = {"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "iat": now, "exp": now + 300, **claims}
    return jwt.encode(body, KEY, algorithm="ES256", headers={"kid": "k1"})


def without_certificate(certs: Path, headers: dict[str, str] | None = None) -> httpx.Client:
    """A caller with no client certificate (server TLS only)."""
    return httpx.Client(
        verify=caller_context(certs, None), timeout=10, headers={**V10, **(headers or {})}
    )


def bearer(certs: Path, sub: str, **claims: Any) -> httpx.Client:
    return without_certificate(certs, {"Authorization": f"Bearer {token(sub, **claims)}"})


def send(http: httpx.Client, url: str, skill: str, part: dict[str, Any]) -> httpx.Response:
    message = {"messageId": "m", "role": "ROLE_USER", "parts": [part], "metadata": {"skill": skill}}
    body = {"jsonrpc": "2.0", "id": 7, "method": "SendMessage", "params": {"message": message}}
    return http.post(f"{url}/a2a", json=body)


def greet(http: httpx.Client, url: str) -> httpx.Response:
    return send(http, url, "greet", {"data": {"name": "Ada"}})


def total_tasks(certs: Path, url: str) -> int:
    with httpx.Client(verify=caller_context(certs, "ops-1"), timeout=10) as ops:
        body = {"jsonrpc": "2.0", "id": 1, "method": "ListTasks", "params": {}}
        return int(ops.post(f"{url}/a2a", json=body, headers=V10).json()["result"]["totalSize"])


def add_key(node: Node, name: str) -> str:
    made = subprocess.run(
        [sys.executable, "-m", "agent_node.cli.main", "keys", "add", name],
        cwd=node.directory,
        capture_output=True,
        text=True,
        check=True,
    )
    return made.stdout.strip()


def test_the_card_declares_every_scheme_in_both_versions(certs: Path, node: Node) -> None:
    with httpx.Client(verify=caller_context(certs, "alice"), timeout=10) as alice:
        card = alice.get(f"{node.url}/.well-known/agent-card.json").json()
    assert set(card["securitySchemes"]) == {"mtls", "bearer", "apiKey"}
    assert card["securitySchemes"]["bearer"]["httpAuthSecurityScheme"]["bearerFormat"] == "JWT"
    assert card["securitySchemes"]["apiKey"]["apiKeySecurityScheme"]["name"] == "X-API-Key"
    assert card["securitySchemes"]["apiKey"]["type"] == "apiKey"  # the 0.3 form beside
    assert card["securitySchemes"]["apiKey"]["in"] == "header"
    assert card["securityRequirements"] == [
        {"schemes": {"mtls": {"list": ["client-certificate"]}}},
        {"schemes": {"bearer": {"list": ["caller"]}}},
        {"schemes": {"apiKey": {"list": ["caller"]}}},
    ]
    assert card["security"] == [
        {"mtls": ["client-certificate"]},
        {"bearer": ["caller"]},
        {"apiKey": ["caller"]},
    ]


def test_no_credentials_is_401_naming_the_schemes(certs: Path, node: Node) -> None:
    before = total_tasks(certs, node.url)
    with without_certificate(certs) as anonymous:
        answer = greet(anonymous, node.url)
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == (
        'Bearer realm="greeter", ApiKey realm="greeter", header="x-api-key"'
    )
    error = answer.json()["error"]
    assert error["code"] == -32030 and "credentials are required" in error["message"]
    assert total_tasks(certs, node.url) == before


def test_a_bearer_token_names_the_caller_and_the_policy_applies(certs: Path, node: Node) -> None:
    with bearer(certs, "carol") as carol, bearer(certs, "bob-jwt") as bob:
        task = greet(carol, node.url).json()["result"]["task"]
        assert task["status"]["state"] == "TASK_STATE_COMPLETED"
        assert task["metadata"]["caller"] == "carol"
        refused = send(carol, node.url, "book", {"text": "Lisbon"}).json()["error"]
        assert (refused["code"], refused["message"]) == (-32031, "carol may not call skill 'book'")
        booked = send(bob, node.url, "book", {"text": "Lisbon"}).json()["result"]["task"]
        assert booked["status"]["state"] == "TASK_STATE_INPUT_REQUIRED"
    # The same rules for a certificate: alice may greet, not book.
    with httpx.Client(verify=caller_context(certs, "alice"), timeout=10, headers=V10) as alice:
        refused = send(alice, node.url, "book", {"text": "Lisbon"}).json()["error"]
        assert refused["message"] == f"{DOMAIN}/alice may not call skill 'book'"


def test_bad_tokens_are_401_with_their_reason_and_create_nothing(certs: Path, node: Node) -> None:
    before = total_tasks(certs, node.url)
    bad = {
        "has expired": bearer(certs, "carol", exp=time.time() - 3600),
        "not meant for this agent": bearer(certs, "carol", aud="another"),
        "not a JWT": without_certificate(certs, {"Authorization": "Bearer nope"}),
    }
    for reason, http in bad.items():
        with http:
            answer = greet(http, node.url)
        assert answer.status_code == 401, reason
        assert reason in answer.json()["error"]["message"]
        assert answer.headers["www-authenticate"].startswith("Bearer")
    with bearer(certs, "eve") as eve:  # a valid token of someone the policy does not name
        assert greet(eve, node.url).json()["error"]["code"] == -32031
    assert total_tasks(certs, node.url) == before


def test_api_keys_added_and_revoked_on_a_running_node(certs: Path, node: Node) -> None:
    key = add_key(node, "ci")
    assert key.startswith("ank_") and key not in (node.directory / "api-keys.yaml").read_text()
    with without_certificate(certs, {"X-API-Key": key}) as ci:
        task = greet(ci, node.url).json()["result"]["task"]
        assert task["metadata"]["caller"] == "ci"
        subprocess.run(
            [sys.executable, "-m", "agent_node.cli.main", "keys", "revoke", "ci"],
            cwd=node.directory,
            check=True,
            capture_output=True,
        )
        time.sleep(1.1)  # the node looks at the key file once a second
        answer = greet(ci, node.url)
    assert answer.status_code == 401
    assert answer.json()["error"]["message"] == "the API key is not valid"


def test_discover_says_which_schemes_our_configuration_meets(
    certs: Path, node: Node, tmp_path: Path
) -> None:
    def discover(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "agent_node.cli.main", "peers", "discover", node.url, *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            env={**os.environ, "COLUMNS": "200"},
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    shown = discover("--cert-dir", str(certs), "--identity", "alice")
    assert "✓ mtls (mtls)" in shown
    assert "✗ bearer (bearer)" in shown and "✗ apiKey (apiKey)" in shown
    (tmp_path / "agent-node.yaml").write_text(
        f"name: caller\npeers:\n  - {{name: greeter, url: '{node.url}',"
        " auth: {api_key: {env: GREETER_KEY}}}\n"
    )
    shown = discover("--config", "agent-node.yaml", "--cert-dir", str(certs), "--identity", "alice")
    assert "✓ apiKey (apiKey)" in shown and "✗ bearer (bearer)" in shown


async def test_over_grpc_with_tls_callers_name_themselves_by_token_key_or_certificate(
    certs: Path, node: Node
) -> None:
    """gRPC over TLS asks for a certificate without requiring one, as HTTPS
    does: a bearer token or an API key in metadata names the caller, and the
    same policy applies."""
    grpc = pytest.importorskip("grpc")
    from support.grpc_calls import Caller, mtls_channel, refusal

    with httpx.Client(verify=caller_context(certs, "alice"), timeout=10) as http:
        card = http.get(f"{node.url}/.well-known/agent-card.json").json()
    target = next(i["url"] for i in card["supportedInterfaces"] if i["protocolBinding"] == "GRPC")
    target = target.replace("127.0.0.1", "localhost")  # the name the node's certificate holds
    key = add_key(node, "ci")
    greeting = {
        "message": {"messageId": "g", "role": "ROLE_USER", "parts": [{"data": {"name": "Ada"}}]}
    }
    booking = {
        "message": {
            "messageId": "b",
            "role": "ROLE_USER",
            "parts": [{"text": "Lisbon"}],
            "metadata": {"skill": "book"},
        }
    }
    async with (
        mtls_channel(target, certs, None) as anonymous,
        mtls_channel(target, certs, "alice") as certified,
    ):
        nobody = Caller(anonymous)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await nobody.call("SendMessage", greeting)
        assert refusal(caught.value).code == grpc.StatusCode.UNAUTHENTICATED
        carol = Caller(anonymous, (("authorization", f"Bearer {token('carol')}"),))
        task = (await carol.call("SendMessage", greeting))["task"]
        assert (task["status"]["state"], task["metadata"]["caller"]) == (
            "TASK_STATE_COMPLETED",
            "carol",
        )
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await carol.call("SendMessage", booking)
        assert refusal(caught.value).code == grpc.StatusCode.PERMISSION_DENIED
        ci = Caller(anonymous, (("x-api-key", key),))
        assert (await ci.call("SendMessage", greeting))["task"]["metadata"]["caller"] == "ci"
        alice = Caller(certified)
        task = (await alice.call("SendMessage", greeting))["task"]
        assert task["metadata"]["caller"] == f"{DOMAIN}/alice"


def test_without_mtls_no_certificate_is_asked_for_and_tokens_name_callers(
    certs: Path, tmp_path: Path
) -> None:
    """``auth.mtls: false``: server TLS only. The card declares the token and
    the key, not mTLS; a client holding a certificate is not asked for it,
    so it names no one (401) until it shows a token."""
    jwk = jwt.algorithms.ECAlgorithm.to_jwk(KEY.public_key(), as_dict=True)
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [{**jwk, "kid": "k1"}]}))
    config = AUTH.replace("auth:\n", "auth:\n  mtls: false\n", 1)
    with serving_mtls(tmp_path, certs, config) as url, bearer(certs, "carol") as carol:
        card = carol.get(f"{url}/.well-known/agent-card.json").json()
        assert set(card["securitySchemes"]) == {"bearer", "apiKey"}
        assert {"mtls": ["client-certificate"]} not in card["security"]
        task = greet(carol, url).json()["result"]["task"]
        assert task["metadata"]["caller"] == "carol"
        with httpx.Client(verify=caller_context(certs, "alice"), timeout=10, headers=V10) as alice:
            refused = greet(alice, url)
        assert refused.status_code == 401, refused.text

"""`agent-node serve` over mutual TLS: real uvicorn, real certificates."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.certs import make_certs
from support.nodes import serving_mtls
from support.tls import caller_context

from agent_node.security import pki

pytestmark = pytest.mark.slow

V10 = {"A2A-Version": "1.0"}


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = make_certs(tmp_path_factory.mktemp("mtls") / "certs", "greeter", "bob")
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
    pki.issue(folder, "carol", days=1, not_before=past)
    make_certs(folder.parent / "rogue", "mallory")
    return folder


@pytest.fixture(scope="module")
def node_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mtls-node")


@pytest.fixture(scope="module")
def node_url(certs: Path, node_dir: Path) -> Iterator[str]:
    with serving_mtls(node_dir, certs) as url:
        yield url


def client(certs: Path, name: str | None, folder: Path | None = None) -> httpx.Client:
    return httpx.Client(verify=caller_context(certs, name, folder), timeout=10)


def send(http: httpx.Client, url: str) -> httpx.Response:
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "SendMessage",
        "params": {
            "message": {"messageId": "m", "role": "ROLE_USER", "parts": [{"data": {"name": "Ada"}}]}
        },
    }
    return http.post(f"{url}/a2a", json=body, headers=V10)


def test_a_valid_caller_is_served_and_named_on_its_task(certs: Path, node_url: str) -> None:
    with client(certs, "bob") as http:
        card = http.get(f"{node_url}/.well-known/agent-card.json").json()
        assert card["supportedInterfaces"][0]["url"] == f"{node_url}/a2a"
        task = send(http, node_url).json()["result"]["task"]
        assert task["status"]["state"] == "TASK_STATE_COMPLETED"
        assert task["metadata"]["caller"] == "spiffe://example.org/agent/bob"
        again = http.post(
            f"{node_url}/a2a",
            json={"jsonrpc": "2.0", "id": 2, "method": "GetTask", "params": {"id": task["id"]}},
            headers=V10,
        ).json()["result"]
        assert again["metadata"]["caller"] == "spiffe://example.org/agent/bob"


def test_a_caller_without_a_certificate_is_told_what_is_missing(
    certs: Path, node_url: str, node_dir: Path
) -> None:
    with client(certs, None) as http:
        sent = send(http, node_url)
        card = http.get(f"{node_url}/.well-known/agent-card.json")
        ops = http.get(f"{node_url}/ops/executions")
    assert sent.status_code == 401
    error = sent.json()["error"]
    assert error["code"] == -32030
    assert error["message"].startswith("a client certificate is required (mutual TLS)")
    assert "--cert-dir DIR --identity NAME" in error["message"]
    for refused in (card, ops):  # nothing else: not the card, not the operator API
        assert refused.status_code == 401, refused.text
        assert refused.json()["error"]["status"] == "UNAUTHENTICATED"
    logged = (node_dir / "node.err").read_text()
    for what in ("POST /a2a", "GET /.well-known/agent-card.json", "GET /ops/executions"):
        assert re.search(rf"refused 127\.0\.0\.1:\d+: no client certificate \({what}\)", logged)


@pytest.mark.parametrize("who", ["rogue CA", "expired"])
def test_callers_without_a_valid_certificate_are_refused(
    certs: Path, node_url: str, who: str
) -> None:
    http = {
        "rogue CA": lambda: client(certs, "mallory", certs.parent / "rogue"),
        "expired": lambda: client(certs, "carol"),
    }[who]()
    # TLS 1.3: the handshake completes on the client's side, then the server
    # hangs up without answering (LIBS.md).
    with http, pytest.raises(httpx.RemoteProtocolError, match="Server disconnected"):
        send(http, node_url)


def test_our_client_refuses_a_node_whose_names_do_not_match(certs: Path, node_url: str) -> None:
    # The node's certificate names localhost and 127.0.0.1: reached as
    # peer.example.org (the TLS server name checked), it is refused.
    with client(certs, "bob") as http, pytest.raises(httpx.ConnectError, match="Hostname mismatch"):
        http.get(
            f"{node_url}/.well-known/agent-card.json",
            extensions={"sni_hostname": "peer.example.org"},
        )


def test_peers_discover_without_a_certificate_says_how_to_give_one(
    certs: Path, node_url: str, tmp_path: Path
) -> None:
    command = [sys.executable, "-m", "agent_node.cli.main", "peers", "discover", node_url]
    bare = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert bare.returncode == 1
    [line] = bare.stderr.splitlines()
    assert line.startswith(f"error: peer '{node_url}'")
    assert "no client certificate was presented" in line
    assert "--cert-dir DIR --identity NAME" in line
    mine = ["--cert-dir", str(certs), "--identity", "bob"]
    found = subprocess.run(
        [*command, *mine], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert found.returncode == 0, found.stderr
    assert "spiffe://example.org/agent/greeter" in found.stdout


def test_peers_discover_at_localhost_of_a_node_whose_card_says_127_0_0_1(
    certs: Path, node_url: str, tmp_path: Path
) -> None:
    """`init`'s hints name https://localhost:PORT and its card 127.0.0.1:
    loopback is one host, so the card's interface is taken, not refused."""
    assert node_url.startswith("https://127.0.0.1:"), node_url
    local = node_url.replace("127.0.0.1", "localhost")
    command = [sys.executable, "-m", "agent_node.cli.main", "peers", "discover", local]
    found = subprocess.run(
        [*command, "--cert-dir", str(certs), "--identity", "bob"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert found.returncode == 0, found.stderr
    assert re.search(rf"endpoint\s+{re.escape(node_url)}/a2a \(A2A 1.0", found.stdout), found.stdout

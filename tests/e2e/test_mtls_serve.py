"""`agent-node serve` over mutual TLS: real uvicorn, real certificates."""

from __future__ import annotations

import datetime as dt
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
def node_url(certs: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serving_mtls(tmp_path_factory.mktemp("mtls-node"), certs) as url:
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


@pytest.mark.parametrize("who", ["no certificate", "rogue CA", "expired"])
def test_callers_without_a_valid_certificate_are_refused(
    certs: Path, node_url: str, who: str
) -> None:
    http = {
        "no certificate": lambda: client(certs, None),
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

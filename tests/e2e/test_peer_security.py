"""Identities and endpoints a hostile peer cannot steer, against real nodes
over real mutual TLS: a certificate is known by its URI SAN (its CN only
when the node says so)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from support.certs import issue_cn_only, make_certs
from support.nodes import serving_mtls

from agent_node.security.tls import client_context

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

D = "spiffe://example.org/agent"
V10 = {"A2A-Version": "1.0"}
#: Only "client" may call the greeter.
ONLY_CLIENT = f'policy: {{callers: ["{D}/client"]}}\n'


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """CA example.org: greeter, client; "spoof", whose CN reads client's identity."""
    folder = make_certs(tmp_path_factory.mktemp("peer-security") / "certs", "greeter", "client")
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

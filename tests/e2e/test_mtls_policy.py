"""Authorization and the hardened edge of a node served over mutual TLS:
a real `agent-node serve`, real certificates, every refusal asserted exactly."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e.procs import opened, wait_until
from support.nodes import serving_mtls
from support.tls import caller_context
from support.webhook import receiving

from agent_node.a2a.peers.signing import verify_card
from agent_node.security import pki
from agent_node.security.tls import server_context

pytestmark = pytest.mark.slow

V10 = {"A2A-Version": "1.0"}
DOMAIN = "spiffe://example.org/agent"
POLICY = f"""
policy:
  callers: ["{DOMAIN}/alice", "{DOMAIN}/bob"]
  skills: {{book: ["{DOMAIN}/bob"]}}
  operators: ["{DOMAIN}/ops-*"]
limits: {{max_concurrent_per_caller: 3, max_body_bytes: 4096}}
"""


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("policy") / "certs"
    pki.init_ca(folder, trust_domain="example.org")
    for name in ("greeter", "alice", "bob", "eve", "ops-1", "hook"):
        pki.issue(folder, name)
    rogue = folder.parent / "rogue"
    pki.init_ca(rogue, trust_domain="example.org")
    pki.issue(rogue, "hook")
    return folder


class Node:
    def __init__(self, url: str, err: Path) -> None:
        self.url = url
        self.err = err


def _serve(certs: Path, directory: Path, extra: str) -> Iterator[Node]:
    with serving_mtls(directory, certs, extra) as url:
        yield Node(url, directory / "node.err")


@pytest.fixture(scope="module")
def node(certs: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    yield from _serve(certs, tmp_path_factory.mktemp("policy-node"), POLICY)


@pytest.fixture(scope="module")
def public_node(certs: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    yield from _serve(certs, tmp_path_factory.mktemp("public-node"), "card_public: true\n")


def client(certs: Path, name: str | None) -> httpx.Client:
    return httpx.Client(verify=caller_context(certs, name), timeout=10)


def rpc(http: httpx.Client, url: str, method: str, params: dict[str, Any]) -> dict[str, Any]:
    body = {"jsonrpc": "2.0", "id": 7, "method": method, "params": params}
    answer = http.post(f"{url}/a2a", json=body, headers=V10)
    assert answer.status_code == 200, answer.text
    payload: dict[str, Any] = answer.json()
    return payload


def send(http: httpx.Client, url: str, skill: str, part: dict[str, Any]) -> dict[str, Any]:
    message = {"messageId": "m", "role": "ROLE_USER", "parts": [part], "metadata": {"skill": skill}}
    return rpc(http, url, "SendMessage", {"message": message})


def greet(http: httpx.Client, url: str) -> dict[str, Any]:
    return send(http, url, "greet", {"data": {"name": "Ada"}})


def book(http: httpx.Client, url: str) -> dict[str, Any]:
    return send(http, url, "book", {"text": "Lisbon"})


def total_tasks(certs: Path, url: str) -> int:
    with client(certs, "ops-1") as ops:
        result = rpc(ops, url, "ListTasks", {})["result"]
    return int(result["totalSize"])


# -- authorization -------------------------------------------------------------


def test_an_identity_the_policy_forbids_is_refused_and_nothing_is_created(
    certs: Path, node: Node
) -> None:
    before = total_tasks(certs, node.url)
    with client(certs, "eve") as eve:
        answer = greet(eve, node.url)
    assert answer["id"] == 7 and "result" not in answer
    assert answer["error"] == {
        "code": -32031,
        "message": f"{DOMAIN}/eve may not call skill 'greet'",
        "data": [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "PERMISSION_DENIED",
                "domain": "agent-node",
                "metadata": {"skill": "greet"},
            }
        ],
    }
    assert total_tasks(certs, node.url) == before
    assert f"denied: {DOMAIN}/eve may not call skill 'greet'" in node.err.read_text()


def test_a_skill_rule_replaces_the_default_callers(certs: Path, node: Node) -> None:
    with client(certs, "alice") as alice, client(certs, "bob") as bob:
        assert greet(alice, node.url)["result"]["task"]["status"]["state"] == "TASK_STATE_COMPLETED"
        refused = book(alice, node.url)["error"]
        assert (refused["code"], refused["message"]) == (
            -32031,
            f"{DOMAIN}/alice may not call skill 'book'",
        )
        task = book(bob, node.url)["result"]["task"]
        assert task["status"]["state"] == "TASK_STATE_INPUT_REQUIRED"
        assert task["metadata"]["caller"] == f"{DOMAIN}/bob"


def test_a_task_is_its_callers_alone_and_operators_see_all(certs: Path, node: Node) -> None:
    with client(certs, "bob") as bob, client(certs, "alice") as alice:
        task_id = book(bob, node.url)["result"]["task"]["id"]
        hook = {"taskId": task_id, "url": "http://127.0.0.1:9/hook"}
        for method, params in [
            ("GetTask", {"id": task_id}),
            ("CancelTask", {"id": task_id}),
            ("SubscribeToTask", {"id": task_id}),
            ("CreateTaskPushNotificationConfig", hook),
            ("ListTaskPushNotificationConfigs", {"taskId": task_id}),
        ]:
            error = rpc(alice, node.url, method, params)["error"]
            assert (error["code"], error["message"]) == (-32001, f"no task {task_id!r}"), method
        follow_up = {
            "messageId": "m2",
            "role": "ROLE_USER",
            "taskId": task_id,
            "parts": [{"text": "May"}],
        }
        error = rpc(alice, node.url, "SendMessage", {"message": follow_up})["error"]
        assert error["code"] == -32001
        listed = rpc(alice, node.url, "ListTasks", {"pageSize": 100})["result"]
        assert task_id not in {t["id"] for t in listed["tasks"]}
        assert {t["metadata"]["caller"] for t in listed["tasks"]} <= {f"{DOMAIN}/alice"}

        mine = rpc(bob, node.url, "GetTask", {"id": task_id})["result"]
        assert mine["status"]["state"] == "TASK_STATE_INPUT_REQUIRED"
        answered = rpc(bob, node.url, "SendMessage", {"message": follow_up})["result"]["task"]
        assert answered["status"]["state"] == "TASK_STATE_COMPLETED"
    with client(certs, "ops-1") as ops:
        seen = rpc(ops, node.url, "GetTask", {"id": task_id})["result"]
        assert seen["metadata"]["caller"] == f"{DOMAIN}/bob"
    assert f"denied: {DOMAIN}/alice may not use task {task_id}" in node.err.read_text()
    store = f"sqlite:///{node.err.parent}/greeter.db"
    inspect = subprocess.run(
        [sys.executable, "-m", "agent_node.cli.main", "inspect", task_id, "--store", store],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert f"caller     {DOMAIN}/bob" in inspect.stdout, inspect.stdout + inspect.stderr


def test_the_operator_api_is_for_operators(certs: Path, node: Node) -> None:
    with client(certs, "bob") as bob:
        task_id = greet(bob, node.url)["result"]["task"]["id"]
        refused = bob.get(f"{node.url}/ops/executions")
    assert refused.status_code == 403
    assert refused.json() == {
        "error": {
            "code": 403,
            "status": "PERMISSION_DENIED",
            "message": f"{DOMAIN}/bob is not an operator",
        }
    }
    with client(certs, "ops-1") as ops:
        listed = ops.get(f"{node.url}/ops/executions", params={"status": "completed"}).json()
        mine = next(e for e in listed["executions"] if e["id"] == task_id)
        assert (mine["caller"], mine["workflow"]) == (f"{DOMAIN}/bob", "hello")
        shown = ops.get(f"{node.url}/ops/executions/{task_id}").json()
        assert shown["state"]["verdict"] == "Ada is a short name (3 letters)"
        assert shown["timeline"][0]["node"] == "greet"
        events = ops.get(f"{node.url}/ops/executions/{task_id}/events").json()["events"]
        assert events[-1]["kind"] == "execution_completed"
        missing = ops.get(f"{node.url}/ops/executions/nope")
        assert (missing.status_code, missing.json()["error"]["status"]) == (404, "NOT_FOUND")
        bad = ops.get(f"{node.url}/ops/executions", params={"limit": "x"})
        assert bad.status_code == 400
        assert bad.json()["error"]["message"] == "limit must be an integer from 1 to 500"


def test_the_operator_api_signals_and_cancels(certs: Path, node: Node) -> None:
    with client(certs, "bob") as bob:
        first = book(bob, node.url)["result"]["task"]["id"]
        second = book(bob, node.url)["result"]["task"]["id"]
    with client(certs, "ops-1") as ops:
        base = f"{node.url}/ops/executions"
        wrong = ops.post(f"{base}/{first}/signal", json={"event": "nothing-waits-for-this"})
        assert wrong.status_code == 409
        assert ops.post(f"{base}/{first}/signal", json={"event": 3}).status_code == 400
        assert ops.post(f"{base}/{second}/cancel", json={}).json() == {
            "id": second,
            "canceled": True,
        }
        assert rpc(ops, node.url, "GetTask", {"id": second})["result"]["status"]["state"] == (
            "TASK_STATE_CANCELED"
        )


# -- the edge --------------------------------------------------------------------


def test_header_caps_answer_431_before_the_app(certs: Path, node: Node) -> None:
    with client(certs, "bob") as bob:
        many = {f"x-h{i}": "1" for i in range(120)}
        answer = bob.get(f"{node.url}/.well-known/agent-card.json", headers=many)
        assert answer.status_code == 431
        assert answer.text == "Request Header Fields Too Large: more than 100 header fields"
    with client(certs, "bob") as bob:
        answer = bob.get(f"{node.url}/.well-known/agent-card.json", headers={"x-big": "a" * 20000})
        assert answer.status_code == 431
        assert answer.text.endswith("request line and headers over 16384 bytes")
    with client(certs, "bob") as bob:  # the node is unharmed
        assert bob.get(f"{node.url}/.well-known/agent-card.json").status_code == 200


def test_an_idle_connection_outlives_the_clients_own_pool_expiry(certs: Path, node: Node) -> None:
    """A client pool (httpx: 5 s) reuses a connection idle up to its expiry.
    A node that closed idle connections as soon (uvicorn's 5 s) closed some
    just as a client sent on them: the request was lost, "server
    disconnected without sending a response". The node keeps them longer."""
    host, port = node.url.removeprefix("https://").split(":")
    request = f"GET /.well-known/agent-card.json HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    context = caller_context(certs, "bob")
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=host) as tls:
            for idle in (0.0, (httpx.Limits().keepalive_expiry or 5.0) + 1.0):
                time.sleep(idle)
                tls.sendall(request)
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = tls.recv(65536)
                    assert chunk, "the node closed the connection"
                    head += chunk
                assert head.startswith(b"HTTP/1.1 200"), head[:200]
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                body = head.split(b"\r\n\r\n", 1)[1]
                while len(body) < length:
                    body += tls.recv(65536)


async def test_a_caller_s_open_streams_do_not_lock_it_out(certs: Path, node: Node) -> None:
    """More event streams than ``max_concurrent_per_caller`` (3) stay open,
    and the caller can still read the card and get and cancel the task they
    follow: streams have their own cap (``max_streams_per_caller``)."""
    with client(certs, "bob") as bob:
        task_id = book(bob, node.url)["result"]["task"]["id"]
    subscribe = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "SubscribeToTask",
        "params": {"id": task_id},
    }
    async with httpx.AsyncClient(verify=caller_context(certs, "bob"), timeout=10) as bob_async:
        streams = [
            bob_async.stream("POST", f"{node.url}/a2a", json=subscribe, headers=V10)
            for _ in range(4)
        ]
        opened = [await s.__aenter__() for s in streams]
        try:
            assert [r.status_code for r in opened] == [200] * 4
            card = await bob_async.get(f"{node.url}/.well-known/agent-card.json")
            assert card.status_code == 200
            with client(certs, "bob") as bob:
                assert "result" in rpc(bob, node.url, "GetTask", {"id": task_id})
                canceled = rpc(bob, node.url, "CancelTask", {"id": task_id})["result"]
                assert canceled["status"]["state"] == "TASK_STATE_CANCELED"
        finally:
            for stream in streams:
                await stream.__aexit__(None, None, None)


def test_the_configured_body_cap_is_enforced(certs: Path, node: Node) -> None:
    message = {"messageId": "m", "role": "ROLE_USER", "parts": [{"text": "x" * 5000}]}
    body = {"jsonrpc": "2.0", "id": 7, "method": "SendMessage", "params": {"message": message}}
    with client(certs, "bob") as bob:
        answer = bob.post(f"{node.url}/a2a", json=body, headers=V10)
    assert answer.status_code == 413
    error = answer.json()["error"]
    assert (error["code"], error["message"]) == (
        -32600,
        f"request body too large ({len(answer.request.content)} bytes, limit 4096)",
    )


# -- the card ----------------------------------------------------------------------


def test_the_card_declares_mutual_tls_in_both_generations(certs: Path, node: Node) -> None:
    with client(certs, "bob") as bob:
        card = bob.get(f"{node.url}/.well-known/agent-card.json").json()
    required = [{"schemes": {"mtls": {"list": ["client-certificate"]}}}]
    assert card["securitySchemes"]["mtls"]["mtlsSecurityScheme"]["description"]
    assert card["securitySchemes"]["mtls"]["type"] == "mutualTLS"  # the 0.3 form
    assert card["securityRequirements"] == required
    assert card["security"] == [{"mtls": ["client-certificate"]}]
    assert all(skill["securityRequirements"] == required for skill in card["skills"])
    assert all(skill["security"] == card["security"] for skill in card["skills"])
    # Signed with the node's key; the signature names the node's identity.
    assert verify_card(card, [certs / "ca.pem"]).signer == f"{DOMAIN}/greeter"


def test_a_public_card_needs_no_certificate_but_nothing_else_is_public(
    certs: Path, public_node: Node
) -> None:
    with client(certs, None) as anonymous:
        card = anonymous.get(f"{public_node.url}/.well-known/agent-card.json")
        assert card.status_code == 200 and card.json()["name"] == "Greeter"
        refused = anonymous.post(
            f"{public_node.url}/a2a",
            json={"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": "x"}},
            headers=V10,
        )
        assert refused.status_code == 401
        error = refused.json()["error"]
        assert error["code"] == -32030
        assert error["message"].startswith("a client certificate is required (mutual TLS)")
        ops = anonymous.get(f"{public_node.url}/ops/executions")
        assert (ops.status_code, ops.json()["error"]["status"]) == (401, "UNAUTHENTICATED")
    with client(certs, "eve") as eve:  # no policy: any identity of the CA may call
        task = greet(eve, public_node.url)["result"]["task"]
        assert task["metadata"]["caller"] == f"{DOMAIN}/eve"


# -- the node's own client -----------------------------------------------------------


async def test_pushes_present_the_nodes_certificate_and_verify_the_receiver(
    certs: Path, node: Node
) -> None:
    hook = server_context(certs / "hook.pem", certs / "hook-key.pem", [certs / "ca.pem"])
    rogue_dir = certs.parent / "rogue"
    rogue = server_context(rogue_dir / "hook.pem", rogue_dir / "hook-key.pem", [certs / "ca.pem"])
    async with receiving(hook) as trusted, receiving(rogue) as untrusted:
        task_ids = []
        with client(certs, "bob") as bob:
            for receiver in (trusted, untrusted):
                message = {
                    "messageId": "m",
                    "role": "ROLE_USER",
                    "parts": [{"data": {"name": "Ada"}}],
                }
                config = {"url": f"{receiver.url}/hook", "token": "t-1"}
                params = {
                    "message": message,
                    "configuration": {"taskPushNotificationConfig": config},
                }
                task_ids.append(rpc(bob, node.url, "SendMessage", params)["result"]["task"]["id"])
        # The hello workflow parks on a timer (a WORKING push), then completes.
        await trusted.wait_for(
            lambda pushes: (
                pushes[-1:] != []
                and pushes[-1].body["task"]["status"]["state"] == "TASK_STATE_COMPLETED"
            ),
            "the completed task's push over mutual TLS",
        )
        assert {push.caller for push in trusted.accepted()} == {f"{DOMAIN}/greeter"}
        assert trusted.accepted()[0].headers["x-a2a-notification-token"] == "t-1"
        # The rogue receiver's certificate does not chain to the node's trust
        # bundle: the node refuses the handshake, so it gets nothing.
        async with opened(f"sqlite:///{node.err.parent}/greeter.db") as store:

            async def refused() -> bool:
                configs = await store.push_configs(task_ids[1])
                return "CERTIFICATE_VERIFY_FAILED" in (configs[0].last_error or "")

            await wait_until(refused, "the rogue receiver to be refused", timeout=20)
        assert untrusted.pushes == []


def test_plain_http_to_a_tls_node_is_not_served(node: Node) -> None:
    host, port = node.url.removeprefix("https://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as raw:
        raw.sendall(b"GET /.well-known/agent-card.json HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"agent-card" not in raw.recv(4096)

"""``agent-node serve``: a real process, a real uvicorn, the card on both paths."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from agent_node import Runtime, load_workflow

ROOT = Path(__file__).resolve().parents[2]

CONFIG = """\
name: greeter
listen: {host: 127.0.0.1, port: 0}
store: sqlite:///state/greeter.db
card: cards/greeter.yaml
skills:
  - id: greet
    workflow: workflows/workflow.yaml
    default: true
"""
CARD = """\
name: Greeter
description: Greets people by name.
version: 0.1.0
provider: {organization: agent-node tests, url: "https://example.org"}
skills:
  greet: {name: Greet, tags: [greeting], examples: ["Greet Ada"]}
"""


@pytest.fixture
def node_dir(tmp_path: Path) -> Path:
    (tmp_path / "cards").mkdir()
    shutil.copytree(ROOT / "examples/hello", tmp_path / "workflows")
    (tmp_path / "agent-node.yaml").write_text(CONFIG)
    (tmp_path / "cards/greeter.yaml").write_text(CARD)
    return tmp_path


def agent_node(directory: Path, *args: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "agent_node.cli.main", *args]
    return subprocess.Popen(
        command, cwd=directory, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


@pytest.fixture
def served(node_dir: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    process = agent_node(node_dir, "serve", "--insecure-dev", "--config", "agent-node.yaml")
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.startswith("agent node 'greeter' listening on http://127.0.0.1:"), first
        yield first.split()[-1], process
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)  # reaps it and closes its pipes


def test_the_card_is_served_on_both_paths_with_caching(
    served: tuple[str, subprocess.Popen[str]],
) -> None:
    url, _ = served
    first = httpx.get(f"{url}/.well-known/agent-card.json")
    legacy = httpx.get(f"{url}/.well-known/agent.json")
    assert first.status_code == legacy.status_code == 200
    assert first.content == legacy.content
    card = first.json()
    assert card["name"] == "Greeter" and card["version"] == "0.1.0"
    assert card["supportedInterfaces"] == [
        {"url": f"{url}/a2a", "protocolBinding": "JSONRPC", "protocolVersion": "1.0"},
        {"url": f"{url}/a2a", "protocolBinding": "HTTP+JSON", "protocolVersion": "1.0"},
        {"url": f"{url}/a2a", "protocolBinding": "JSONRPC", "protocolVersion": "0.3"},
    ]
    # 0.3 clients read these (a setting, on by default).
    assert (card["url"], card["preferredTransport"]) == (f"{url}/a2a", "JSONRPC")
    assert card["protocolVersion"].startswith("0.3")
    (skill,) = card["skills"]
    # Words from the card source; the description from the hosted workflow.
    assert skill == {
        "id": "greet",
        "name": "Greet",
        "description": "Greets someone, checks two things at once, and decides.",
        "tags": ["greeting"],
        "examples": ["Greet Ada"],
    }
    etag = first.headers["etag"]
    assert first.headers["cache-control"] == "public, max-age=300"
    assert first.headers["last-modified"].endswith(" GMT")
    revalidated = httpx.get(f"{url}/.well-known/agent-card.json", headers={"If-None-Match": etag})
    assert revalidated.status_code == 304 and revalidated.content == b""
    assert httpx.head(f"{url}/.well-known/agent-card.json").headers["etag"] == etag


def test_sigterm_stops_the_node_cleanly(served: tuple[str, subprocess.Popen[str]]) -> None:
    _, process = served
    process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=15)
    assert process.returncode == 0
    assert "agent node 'greeter' stopped" in out


async def test_a_serving_node_runs_the_pending_executions_of_its_store(node_dir: Path) -> None:
    workflow = load_workflow(str(node_dir / "workflows/workflow.yaml"))
    store = f"sqlite:///{node_dir}/state/greeter.db"
    async with Runtime(store) as runtime:
        execution_id, _, _ = await runtime.engine.control.create(workflow, {"name": "Grace Hopper"})
    process = agent_node(node_dir, "serve", "--insecure-dev", "--config", "agent-node.yaml")
    try:
        async with Runtime(store) as runtime:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                record = await runtime.store.get(execution_id)
                if record is not None and record.status == "completed":
                    break
                time.sleep(0.1)
            assert record is not None and record.status == "completed"
            assert '"verdict":"Grace Hopper is a long name (11 letters)"' in record.state
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=15)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda d: (d / "agent-node.yaml").write_text(CONFIG + "listn: 1\n"),
            "field 'listn': unknown field 'listn' (did you mean 'listen'?)",
        ),
        (
            lambda d: (d / "agent-node.yaml").write_text(
                CONFIG.replace("workflow.yaml", "nope.yaml")
            ),
            "skill 'greet':",
        ),
        (
            lambda d: (d / "cards/greeter.yaml").write_text("name: [unclosed\n"),
            "not valid YAML at line 2, column 1: expected ',' or ']'",
        ),
        (
            lambda d: (d / "agent-node.yaml").write_text(
                CONFIG + "  - id: greet\n    workflow: x.yaml\n"
            ),
            "repeated: greet",
        ),
    ],
)
def test_configuration_mistakes_are_one_clear_line(
    node_dir: Path, edit: object, message: str
) -> None:
    edit(node_dir)  # type: ignore[operator]
    process = agent_node(node_dir, "serve", "--insecure-dev", "--config", "agent-node.yaml")
    _, err = process.communicate(timeout=30)
    assert process.returncode == 2, err
    assert err.startswith("error: ") and message in err, err
    assert "Traceback" not in err


def test_a_port_in_use_is_a_clear_error(node_dir: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = agent_node(
            node_dir, "serve", "--insecure-dev", "--config", "agent-node.yaml", "--port", str(port)
        )
        _, err = process.communicate(timeout=30)
    assert process.returncode == 2
    assert f"error: cannot listen on 127.0.0.1:{port}" in err


def test_json_rpc_is_answered_with_and_without_a_trailing_slash(
    served: tuple[str, subprocess.Popen[str]],
) -> None:
    url, _ = served
    body = {"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": "nope"}}
    headers = {"A2A-Version": "1.0"}
    for path in ("/a2a", "/a2a/"):  # clients that join the card's URL with "/" post to /a2a/
        answer = httpx.post(f"{url}{path}", json=body, headers=headers)
        assert answer.status_code == 200, path
        assert answer.json()["error"]["code"] == -32001


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "error: no TLS settings: give `tls:` in the configuration or --cert-dir"),
        (
            ("--insecure-dev", "--host", "0.0.0.0"),
            "error: --insecure-dev serves only on a loopback address (127.0.0.1, ::1,"
            " localhost), not '0.0.0.0'",
        ),
        (
            ("--insecure-dev", "--cert-dir", "certs", "--identity", "greeter"),
            "error: --insecure-dev serves plain HTTP: drop the TLS settings, or it",
        ),
    ],
)
def test_plain_http_needs_insecure_dev_and_loopback(
    node_dir: Path, args: tuple[str, ...], message: str
) -> None:
    process = agent_node(node_dir, "serve", "--config", "agent-node.yaml", *args)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 2, err
    assert err.startswith(message), err
    assert "listening" not in out


def test_insecure_dev_warns_on_every_start(served: tuple[str, subprocess.Popen[str]]) -> None:
    url, process = served
    assert url.startswith("http://127.0.0.1:")
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=15)
    assert err.startswith(
        "WARNING: --insecure-dev: serving plain HTTP on 127.0.0.1 with no authentication;"
    ), err


def test_a_node_serving_rest_only_answers_no_json_rpc(node_dir: Path) -> None:
    args = ["serve", "--insecure-dev", "--config", "agent-node.yaml", "--bindings", "rest"]
    process = agent_node(node_dir, *args)
    try:
        assert process.stdout is not None
        url = process.stdout.readline().split()[-1]
        card = httpx.get(f"{url}/.well-known/agent-card.json").json()
        assert [i["protocolBinding"] for i in card["supportedInterfaces"]] == ["HTTP+JSON"]
        body = {"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": "x"}}
        assert httpx.post(f"{url}/a2a", json=body).status_code == 404
        answer = httpx.get(f"{url}/a2a/tasks/x", headers={"A2A-Version": "1.0"})
        assert answer.status_code == 404
        assert answer.json()["error"]["details"][0]["reason"] == "TASK_NOT_FOUND"
    finally:
        process.kill()
        process.communicate(timeout=10)


def test_a_node_serving_grpc_alone_lists_only_it(node_dir: Path) -> None:
    pytest.importorskip("grpc")
    refused = agent_node(
        node_dir, "serve", "--insecure-dev", "--config", "agent-node.yaml", "--bindings", "none"
    )
    _, err = refused.communicate(timeout=30)
    assert refused.returncode == 2, err
    assert "no A2A binding is served" in err and "Traceback" not in err
    args = ["serve", "--insecure-dev", "--config", "agent-node.yaml", "--bindings", "none"]
    process = agent_node(node_dir, *args, "--grpc-port", "0")
    try:
        assert process.stdout is not None
        url = process.stdout.readline().split()[-1]
        card = httpx.get(f"{url}/.well-known/agent-card.json").json()
        assert [i["protocolBinding"] for i in card["supportedInterfaces"]] == ["GRPC"]
        assert httpx.post(f"{url}/a2a", json={}).status_code == 404
        assert httpx.get(f"{url}/a2a/tasks/x").status_code == 404
    finally:
        process.kill()
        process.communicate(timeout=10)


def test_the_start_line_says_the_address_bound_and_the_public_url_apart(node_dir: Path) -> None:
    """A node behind a proxy (``public_url``) says where it listens, and the
    public URL after it (before: only the public URL, as if bound there: a
    walk read 'listening on …:47111' of a node bound to 47101)."""
    config = node_dir / "agent-node.yaml"
    config.write_text(config.read_text() + "public_url: http://agents.example:9999/\n")
    process = agent_node(node_dir, "serve", "--insecure-dev", "--config", "agent-node.yaml")
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        prefix = "agent node 'greeter' listening on http://127.0.0.1:"
        assert first.startswith(prefix), first
        bound, public = first.removeprefix("agent node 'greeter' listening on ").split(" ", 1)
        assert public == "(public URL http://agents.example:9999)\n"
        assert httpx.get(f"{bound}/.well-known/agent-card.json").status_code == 200
        assert process.stdout.readline() == (
            "agent card: http://agents.example:9999/.well-known/agent-card.json\n"
        )
    finally:
        process.kill()
        process.communicate(timeout=10)

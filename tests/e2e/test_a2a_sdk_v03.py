"""The official a2a-sdk 0.3.x client against a running node: A2A 0.3 interop.

a2a-sdk 0.3 and 1.x cannot share one environment, so the 0.3 client runs in a
virtual environment of its own, created once and kept in the user's cache
(``~/.cache/agent-node-tests/a2a-sdk-03-venv``, outside the repository), and
drives the node through ``sdk03_client.py``: one scenario per run, one JSON
line back. No ``A2A-Version`` header is sent, so the node answers in 0.3.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e.venvs import CachedVenv
from support.nodes import ADA, serving

SCRIPT = Path(__file__).resolve().parent / "sdk03_client.py"
SDK03 = CachedVenv(
    name="a2a-sdk-03-venv",
    requirements=("a2a-sdk>=0.3.20,<0.4", "httpx"),
    check="import a2a, httpx, re, importlib.metadata as m; v = m.version('a2a-sdk'); "
    "found = re.match(r'0\\.3\\.(\\d+)', v); assert found and int(found[1]) >= 20, v; print(v)",
    purpose="the a2a-sdk 0.3 client",
)

# Creating the venv (the first run on a machine) takes pip's time; after that
# each test stays within the suite's usual 120 s.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(120 if SDK03.ready() else 300)]


@pytest.fixture(scope="module")
def sdk03_python() -> Path:
    """The interpreter of a venv holding a2a-sdk 0.3.x, made once and reused."""
    return SDK03.interpreter()


@pytest.fixture(scope="module")
def node_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serving(tmp_path_factory.mktemp("interop03")) as url:
        yield url


def run(python: Path, url: str, scenario: str) -> dict[str, Any]:
    """One scenario of ``sdk03_client.py`` in the 0.3 venv; its JSON answer."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    done = subprocess.run(
        [python, SCRIPT, url, scenario], capture_output=True, text=True, timeout=60, env=env
    )
    assert done.returncode == 0, f"{scenario} failed (exit {done.returncode}):\n{done.stderr}"
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def served_card(url: str) -> dict[str, Any]:
    card: dict[str, Any] = httpx.get(f"{url}/.well-known/agent-card.json", timeout=10).json()
    return card


def test_discover(sdk03_python: Path, node_url: str) -> None:
    card = run(sdk03_python, node_url, "discover")
    assert card["name"] == "Greeter"
    # The SDK defaults a missing protocolVersion to 0.3.0: the node must serve the fields.
    assert card["served_v03_fields"] == [
        "url",
        "protocolVersion",
        "preferredTransport",
        "additionalInterfaces",
    ]
    assert card["protocolVersion"].startswith("0.3")
    assert card["url"] == f"{node_url}/a2a"
    assert card["preferredTransport"] == "JSONRPC"


def test_send_blocking(sdk03_python: Path, node_url: str) -> None:
    task = run(sdk03_python, node_url, "send")
    assert task["kind"] == "task"
    assert task["state"] == "completed"
    assert task["data"] == ADA


def test_send_non_blocking_then_get(sdk03_python: Path, node_url: str) -> None:
    task = run(sdk03_python, node_url, "get")
    assert task["sent_state"] in ("submitted", "working", "completed")
    assert task["state"] == "completed"
    assert task["data"] == {
        "greeting": "Hello, Grace!",
        "verdict": "Grace is a short name (5 letters)",
    }


def test_input_required_then_cancel(sdk03_python: Path, node_url: str) -> None:
    task = run(sdk03_python, node_url, "cancel")
    assert task["asked_state"] == "input-required"
    assert task["state"] == "canceled"


def test_stream(sdk03_python: Path, node_url: str) -> None:
    assert served_card(node_url)["capabilities"]["streaming"] is True
    result = run(sdk03_python, node_url, "stream")
    events = result["events"]
    assert "error_code" not in result, result
    assert events[0]["kind"] == "task", events
    assert events[-1] == {"kind": "status-update", "state": "completed", "final": True}
    assert all(not e.get("final") for e in events[:-1]), events

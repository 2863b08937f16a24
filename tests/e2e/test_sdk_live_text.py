"""The official clients read a model's text as it is written (issue 16):
``agent-node serve`` with a streamed model node (the scripted model, its
answer paced word by word); the a2a-sdk 1.x streaming client (in its own
venv) and the ``@a2a-js/sdk`` 1.x one (Node.js), over JSON-RPC and REST. Its events: the task, then
``artifactUpdate`` chunks of the node's artifact (the first opening it, the
rest appended, the last closing it) arriving over the model's time, then the
task's own artifact and the final status — as the SDK parsed them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e.foreign.js_peers import GENERATIONS
from e2e.venvs import SDK_CLIENTS
from support.ports import free_port
from support.workflows import WRITER_YAML

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240 if SDK_CLIENTS["1"].ready() else 600)]

DRIVER = Path(__file__).resolve().parent / "sdk_clients" / "live_v1.py"


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("live-node")
    (folder / "writer.yaml").write_text(WRITER_YAML)
    port = free_port()
    (folder / "agent-node.yaml").write_text(
        f"name: writer\nlisten: {{host: 127.0.0.1, port: {port}}}\n"
        f"store: sqlite:///{folder}/node.db\nmodels: {{default: scripted/echo}}\n"
        "skills:\n  - {id: write, workflow: writer.yaml, default: true}\n"
    )
    command = [sys.executable, "-m", "agent_node.cli.main", "serve", "--insecure-dev"]
    command += ["--config", str(folder / "agent-node.yaml")]
    env = {**os.environ, "AGENT_NODE_SCRIPTED_DELAY": "1.0"}
    process = subprocess.Popen(
        command, cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert "listening on" in first, first
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.communicate(timeout=15)


@pytest.mark.parametrize("client", ["a2a-sdk", "a2a-js"])
@pytest.mark.parametrize("binding", ["JSONRPC", "HTTP+JSON"])
def test_the_client_reads_the_chunks_as_they_come(node: str, binding: str, client: str) -> None:
    if client == "a2a-sdk":
        argv = [str(SDK_CLIENTS["1"].interpreter()), str(DRIVER)]
    else:
        argv = GENERATIONS["1"].script("live_v1.mjs")
    done = subprocess.run(
        [*argv, "--url", node, "--binding", binding], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    events, at = report["events"], report["at"]
    task_id = events[0]["task"]["id"]
    chunks = [
        (e["artifactUpdate"], t)
        for e, t in zip(events, at, strict=True)
        if "artifactUpdate" in e and e["artifactUpdate"]["artifact"].get("name") == "write"
    ]
    updates = [u for u, _ in chunks]
    assert {u["artifact"]["artifactId"] for u in updates} == {f"{task_id}-write-1"}
    assert [bool(u.get("append")) for u in updates] == [False] + [True] * (len(updates) - 1)
    assert updates[-1].get("lastChunk") is True
    assert not any(u.get("lastChunk") for u in updates[:-1])
    text = "".join(u["artifact"]["parts"][0]["text"] for u in updates)
    assert text.startswith("[offline scripted model]") and "write something" in text
    assert chunks[-1][1] - chunks[0][1] >= 0.5  # the words came over the model's second
    final = [e["artifactUpdate"] for e in events if "artifactUpdate" in e][-1]
    assert final["artifact"]["parts"][0]["text"] == text  # the task's own artifact, once
    assert events[-1]["statusUpdate"]["status"]["state"] == "TASK_STATE_COMPLETED"

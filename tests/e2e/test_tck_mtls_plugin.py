"""examples/conformance/tck_mtls.py, the plugin that runs the A2A TCK over
mutual TLS: loaded into a process as the TCK loads it, the process's plain
``httpx`` clients and ``grpc.insecure_channel`` reach the conformance agent
served with client certificates required (the TCK itself is run by hand:
examples/conformance/README.md)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.certs import make_certs

ROOT = Path(__file__).resolve().parents[2]
CONFORMANCE = ROOT / "examples" / "conformance"

pytestmark = pytest.mark.slow

#: What the TCK does, in miniature: a card fetch, a JSON-RPC send and a gRPC
#: channel, none of them told about TLS.
TCK_LIKE = """
import json, sys, grpc, httpx
import tck_mtls  # as pytest's -p tck_mtls loads it
base, grpc_target = sys.argv[1], sys.argv[2]
card = httpx.Client().get(base + "/.well-known/agent-card.json").json()
body = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {"message": {
    "messageId": "tck-complete-task-1a2b3c4d", "role": "ROLE_USER", "parts": [{"text": "hi"}]}}}
sent = httpx.post(base + "/a2a", json=body, headers={"A2A-Version": "1.0"}).json()
channel = grpc.insecure_channel(grpc_target)
grpc.channel_ready_future(channel).result(timeout=10)
print(json.dumps({"card": card["name"], "state": sent["result"]["task"]["status"]["state"]}))
"""


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_certs(tmp_path_factory.mktemp("tck") / "certs", "conformance", "tck")


@pytest.fixture(scope="module")
def served(certs: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    folder = tmp_path_factory.mktemp("agent")
    command = [sys.executable, "-m", "agent_node.cli.main", "serve"]
    command += ["--config", str(CONFORMANCE / "agent-node.yaml"), "--port", "0"]
    command += ["--grpc-port", "0", "--cert-dir", str(certs), "--identity", "conformance"]
    command += ["--store", f"sqlite:///{folder}/c.db"]
    err = (folder / "node.err").open("w")
    process = subprocess.Popen(command, cwd=folder, stdout=subprocess.PIPE, stderr=err, text=True)
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(3)]
        url = lines[0].split()[-1]
        [target] = [line.split()[-1] for line in lines if line.startswith("A2A gRPC:")]
        assert url.startswith("https://"), lines
        yield url, target
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=15)
        err.close()


def tck_like(
    certs: Path, served: tuple[str, str], plugin: bool
) -> subprocess.CompletedProcess[str]:
    script = TCK_LIKE if plugin else TCK_LIKE.replace("import tck_mtls", "pass")
    env = {**os.environ, "PYTHONPATH": str(CONFORMANCE)}
    env.update(TCK_MTLS_CERTS=str(certs), TCK_MTLS_IDENTITY="tck")
    return subprocess.run(
        [sys.executable, "-c", script, *served],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_plugin_gives_the_tck_s_clients_a_certificate(
    certs: Path, served: tuple[str, str]
) -> None:
    done = tck_like(certs, served, plugin=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "card": "agent-node conformance agent",
        "state": "TASK_STATE_COMPLETED",
    }


def test_without_it_the_same_clients_are_refused(certs: Path, served: tuple[str, str]) -> None:
    done = tck_like(certs, served, plugin=False)
    assert done.returncode != 0
    assert "SSL" in done.stderr or "certificate" in done.stderr, done.stderr[-2000:]

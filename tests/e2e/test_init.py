"""``agent-node init NAME``: the agent it writes serves over mutual TLS and answers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from support.ports import free_port
from support.tls import caller_context

CLI = [sys.executable, "-m", "agent_node.cli.main"]


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60, cwd=cwd)


def test_a_new_agent_serves_and_answers(tmp_path: Path) -> None:
    port = free_port()
    made = cli(tmp_path, "init", "helper", "--port", str(port), "--model", "scripted/any")
    assert made.returncode == 0, made.stderr
    assert "made a development CA" in made.stdout
    assert "spiffe://example.org/agent/helper" in made.stdout  # the examples' domain
    for name in ("agent-node.yaml", "card.yaml", "ask.yaml"):
        assert (tmp_path / "helper" / name).is_file()
    assert cli(tmp_path, "certs", "issue", "me").returncode == 0

    config = str(tmp_path / "helper" / "agent-node.yaml")
    server = subprocess.Popen(
        [*CLI, "serve", "--config", config], cwd=tmp_path, stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        assert "listening on" in server.stdout.readline()
        message = {"messageId": "m1", "role": "ROLE_USER", "parts": [{"text": "Hello!"}]}
        body = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {"message": message}}
        with httpx.Client(verify=caller_context(tmp_path / "certs", "me"), timeout=30) as http:
            card = http.get(f"https://localhost:{port}/.well-known/agent-card.json").json()
            base = f"https://localhost:{port}"
            answer = http.post(f"{base}/a2a", json=body, headers={"A2A-Version": "1.0"})
        task = answer.json()["result"]["task"]
        assert task["status"]["state"] == "TASK_STATE_COMPLETED"
        [part, *_] = task["artifacts"][0]["parts"]
        assert part["text"].startswith("[offline scripted model]") and "Hello!" in part["text"]
        assert card["name"] == "Helper" and card["skills"][0]["id"] == "ask"
    finally:
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=15)


def test_a_second_agent_shares_the_ca_and_nothing_is_overwritten(tmp_path: Path) -> None:
    assert cli(tmp_path, "init", "one").returncode == 0
    ca = (tmp_path / "certs" / "ca.pem").read_bytes()
    second = cli(tmp_path, "init", "two", "--dir", "agents")
    assert second.returncode == 0, second.stderr
    assert "made a development CA" not in second.stdout
    assert (tmp_path / "certs" / "ca.pem").read_bytes() == ca
    assert "../../certs/two.pem" in (tmp_path / "agents" / "two" / "agent-node.yaml").read_text()
    again = cli(tmp_path, "init", "one")
    assert again.returncode == 2
    assert "exists and is not empty" in again.stderr


def test_a_name_that_is_a_path_writes_nothing(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    for name, hint in [
        ("../x", "init x --dir .."),
        (str(tmp_path / "y"), f"init y --dir {tmp_path}"),
        ("a/b", "init b --dir a"),
        ("..", ""),
    ]:
        refused = cli(work, "init", name)
        assert refused.returncode == 2, refused.stdout
        assert f"{name!r} is not an agent name" in refused.stderr
        assert hint in refused.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work"]
    assert list(work.iterdir()) == []
    # Asked for plainly, elsewhere is fine.
    made = cli(work, "init", "x", "--dir", "..", "--cert-dir", "../certs")
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "x" / "agent-node.yaml").is_file()
    assert (tmp_path / "certs" / "x.pem").is_file()


def test_without_ollama_the_first_task_fails_in_seconds_saying_what_to_do(tmp_path: Path) -> None:
    port, nothing = free_port(), free_port()
    assert cli(tmp_path, "init", "helper", "--port", str(port)).returncode == 0  # Ollama's model
    assert cli(tmp_path, "certs", "issue", "me").returncode == 0
    config = str(tmp_path / "helper" / "agent-node.yaml")
    env = {**os.environ, "OLLAMA_API_BASE": f"http://127.0.0.1:{nothing}"}
    server = subprocess.Popen(
        [*CLI, "serve", "--config", config],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        assert "listening on" in server.stdout.readline()
        message = {"messageId": "m1", "role": "ROLE_USER", "parts": [{"text": "Hello!"}]}
        body = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {"message": message}}
        started = time.monotonic()
        with httpx.Client(verify=caller_context(tmp_path / "certs", "me"), timeout=60) as http:
            answer = http.post(
                f"https://localhost:{port}/a2a", json=body, headers={"A2A-Version": "1.0"}
            )
        took = time.monotonic() - started
    finally:
        server.send_signal(signal.SIGTERM)
        _, logged = server.communicate(timeout=15)
    task = answer.json()["result"]["task"]
    assert task["status"]["state"] == "TASK_STATE_FAILED"
    [said] = task["status"]["message"]["parts"]
    base = f"http://127.0.0.1:{nothing}"
    assert f"no Ollama answers at {base}" in said["text"]
    assert "ollama serve" in said["text"] and "scripted/echo" in said["text"]
    assert took < 8, f"the task took {took:.1f} s to fail"  # three quick attempts
    [line] = [line for line in logged.splitlines() if "failed" in line]
    said = line.partition(" agent_node.failures: ")[2]  # after the line's time and level
    assert said.startswith(f"task {task['id']} failed (skill ask): node 'answer' failed: model")
    assert f"no Ollama answers at {base}" in line

"""``agent-node demo`` end to end, offline: three real agent processes over
mutual TLS, the question answered after one revision, Ctrl-C, resume, fresh."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest
from e2e.procs import opened
from support.fake_ollama import MODEL, json_reply, serving, text
from support.ports import free_ports

from agent_node.results import to_event

DEMO = [sys.executable, "-m", "agent_node.cli.main", "demo", "--offline", "--no-live"]
ONLINE = [flag for flag in DEMO if flag != "--offline"]


def ports() -> int:
    """A base port for the three agents."""
    return free_ports(3)


def demo(
    home: Path,
    *flags: str,
    timeout: float = 60,
    command: list[str] = DEMO,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    args = [*command, "--home", str(home), "--port", str(ports()), *flags]
    env = {**os.environ, "COLUMNS": "200", **(env or {})}
    return subprocess.run(
        args, capture_output=True, text=True, timeout=timeout, cwd=home.parent, env=env
    )


def tasks(home: Path, agent: str) -> list[Any]:
    async def read() -> list[Any]:
        async with opened(f"sqlite:///{home / agent}.db") as store:
            return await store.list_executions(limit=100)

    return asyncio.run(read())


def events(home: Path, agent: str, task: str) -> list[Any]:
    async def read() -> list[Any]:
        async with opened(f"sqlite:///{home / agent}.db") as store:
            return [to_event(e) for e in await store.events(task)]

    return asyncio.run(read())


def agents_running(home: Path) -> list[str]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        line = " ".join(process.info["cmdline"] or [])
        if "serve" in line and str(home) in line:
            found.append(line)
    return found


def reviews(home: Path, task: str) -> list[str]:
    return [
        e.data["output"]["action"]
        for e in events(home, "coordinator", task)
        if e.kind == "node_completed" and e.node == "review"
    ]


def test_the_demo_answers_offline_after_one_revision(tmp_path: Path) -> None:
    home = tmp_path / "demo"
    done = demo(home)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "OFFLINE SCRIPTED MODEL" in out
    assert "In short, durable workflows" in out  # the revised answer
    assert "quality 0.40 ✗" in out and "quality 1.00 ✓" in out
    assert "agent-node inspect" in out and "agent-node serve --config" in out
    assert "    curl -s --cacert" in out  # its answer alone, no progress meter
    # Three stores, one per agent: one question, one research, two drafts.
    [root] = tasks(home, "coordinator")
    assert root.status == "completed"
    assert root.id in out
    assert reviews(home, root.id) == ["revise", "pass"]
    assert len(tasks(home, "researcher")) == 1
    assert [t.status for t in tasks(home, "writer")] == ["completed", "completed"]
    # Every task came over mutual TLS, from the identity the policy expects.
    for agent in ("researcher", "writer"):
        assert {task.caller for task in tasks(home, agent)} == {
            "spiffe://example.org/agent/coordinator"
        }
    assert root.caller == "spiffe://example.org/agent/user"
    # Its own certificates, keys private; the configurations run by hand.
    assert oct((home / "certs" / "coordinator-key.pem").stat().st_mode & 0o777) == "0o600"
    config = (home / "coordinator.yaml").read_text()
    assert "scripted/demo" in config and "agent-node serve --config" in config
    assert agents_running(home) == []


def test_the_live_view_shows_the_agents_text_as_it_is_written(tmp_path: Path) -> None:
    """As on a terminal (rich draws every frame), the agents' text shows under
    the steps while they write it, relayed by the coordinator."""
    live = [flag for flag in DEMO if flag != "--no-live"]
    terminal = {"FORCE_COLOR": "1", "TTY_INTERACTIVE": "1"}  # rich draws every frame
    done = demo(tmp_path / "demo", "--pace", "0.3", command=live, env=terminal)
    assert done.returncode == 0, done.stdout + done.stderr
    out = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", done.stdout)
    assert "researcher is writing (notes)" in out or "researcher wrote (notes)" in out
    assert "writer is writing (draft)" in out
    assert "first text seen after" in out


def test_ctrl_c_stops_all_three_and_the_next_run_resumes(tmp_path: Path) -> None:
    home = tmp_path / "demo"
    base = ports()
    args = [*DEMO, "--home", str(home), "--port", str(base), "--pace", "1"]
    child = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path
    )
    assert child.stdout is not None
    seen = []
    for line in child.stdout:
        seen.append(line)
        if "review:" in line:  # the first verdict is in; the revision is under way
            child.send_signal(signal.SIGINT)
            break
    rest, _ = child.communicate(timeout=30)
    assert child.returncode == 130, "".join(seen) + rest
    assert "stopped" in rest and "again to resume" in rest
    assert agents_running(home) == []
    [root] = tasks(home, "coordinator")
    assert root.status not in {"completed", "failed", "canceled"}

    # No terminal: it resumes the unanswered question, on other ports — the
    # coordinator's parked delegation follows the writer to its new address.
    again = demo(home)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "resuming the question" in again.stdout and root.id in again.stdout
    [resumed] = tasks(home, "coordinator")
    assert (resumed.id, resumed.status) == (root.id, "completed")
    assert reviews(home, root.id) == ["revise", "pass"]  # nothing ran twice
    assert len(tasks(home, "researcher")) == 1
    assert len(tasks(home, "writer")) == 2

    fresh = demo(home, "--fresh", "--question", "Why do tides happen?")
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr
    [new] = tasks(home, "coordinator")
    assert new.id != root.id and new.status == "completed"
    assert "Why do tides happen?" in fresh.stdout


def test_a_busy_port_is_a_clear_error(tmp_path: Path) -> None:
    base = ports()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", base + 1))
        taken.listen()
        args = [*DEMO, "--home", str(tmp_path / "demo"), "--port", str(base)]
        done = subprocess.run(args, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 2
    assert f"port {base + 1} (researcher) is in use" in done.stderr


@pytest.mark.parametrize("flag", ["--help"])
def test_the_demo_explains_itself(flag: str) -> None:
    done = subprocess.run([*DEMO[:4], flag], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0
    assert "--offline" in done.stdout and "--question" in done.stdout and "--fresh" in done.stdout


def test_the_demo_uses_ollama_when_it_answers(tmp_path: Path) -> None:
    """The real-model path: three agents asking (a fake) Ollama through litellm."""
    home = tmp_path / "demo"
    with serving() as ollama:
        ollama.script(
            text("- Tides follow the moon.\n- There are two a day."),
            text("Tides follow the moon, twice a day."),
            json_reply({"score": 2, "reason": "No conclusion."}),
            text("Tides follow the moon, twice a day. In short: the moon moves the sea."),
            json_reply({"score": 5, "reason": "Clear."}),
        )
        done = demo(home, "--ollama", ollama.url, "-q", "Why tides?", command=ONLINE, timeout=180)
        chats = ollama.chats()
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"Ollama at {ollama.url}, model {MODEL}" in done.stdout
    assert "In short: the moon moves the sea." in done.stdout
    assert "model calls across the three agents: 5 calls ·" in done.stdout
    systems = [chat.body["messages"][0]["content"] for chat in chats]
    assert [s.split(".")[0] for s in systems] == [
        "You are a careful researcher",
        "You are a writer",
        "You are a strict, fair evaluator",
        "You are a writer",
        "You are a strict, fair evaluator",
    ]
    assert "No conclusion." in chats[3].body["messages"][-1]["content"]  # the feedback
    [root] = tasks(home, "coordinator")
    [first, _] = [
        e.data for e in events(home, "coordinator", root.id)
        if e.kind == "node_completed" and e.node == "review"
    ]  # fmt: skip
    assert first["usage"]["model"] == f"ollama_chat/{MODEL}"
    assert first["usage"]["total_tokens"] > 0


def on_a_terminal(
    args: list[str], cwd: Path, answer: str, *, delay: float = 0.0
) -> tuple[int, str]:
    """Run ``args`` on a pseudo-terminal; type ``answer`` at the first
    question, ``delay`` seconds after it is asked."""
    import pty
    import select
    import time

    main, child_side = pty.openpty()
    env = {**os.environ, "COLUMNS": "160", "LINES": "50", "TERM": "xterm"}
    child = subprocess.Popen(
        args, stdin=child_side, stdout=child_side, stderr=child_side, cwd=cwd, env=env
    )
    os.close(child_side)
    seen, asked = b"", False
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        ready, _, _ = select.select([main], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # the child closed the terminal
                break
            seen += chunk
        if not asked and b"Resume it?" in seen:
            time.sleep(delay)
            os.write(main, answer.encode() + b"\r")
            asked = True
        if child.poll() is not None and not ready:
            break
    os.close(main)
    return child.wait(timeout=30), seen.decode(errors="replace")


def test_on_a_terminal_the_user_chooses_to_resume_or_start_fresh(tmp_path: Path) -> None:
    home = tmp_path / "demo"
    base = ports()
    args = [*DEMO, "--home", str(home), "--port", str(base), "--pace", "1"]
    child = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, cwd=tmp_path)
    assert child.stdout is not None
    for line in child.stdout:
        if "research:" in line:
            child.send_signal(signal.SIGINT)
            break
    child.communicate(timeout=30)
    [stopped] = tasks(home, "coordinator")

    live = [flag for flag in DEMO if flag != "--no-live"]
    code, screen = on_a_terminal([*live, "--home", str(home), "--port", str(base)], tmp_path, "n")
    assert code == 0, screen
    assert "An earlier run stopped before answering" in screen
    assert "what the agents do" in screen  # the live table
    answered = [t for t in tasks(home, "coordinator") if t.status == "completed"]
    assert [t.id for t in answered] != [stopped.id] and len(answered) == 1


def test_agents_stop_when_the_demo_is_killed_outright(tmp_path: Path) -> None:
    import time

    home = tmp_path / "demo"
    args = [*DEMO, "--home", str(home), "--port", str(ports()), "--pace", "5"]
    child = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, cwd=tmp_path)
    assert child.stdout is not None
    for line in child.stdout:
        if line.startswith("coordinator task"):
            break
    assert len(agents_running(home)) == 3
    child.kill()  # SIGKILL: the demo stops nothing itself
    child.wait(timeout=10)
    child.stdout.close()
    deadline = time.monotonic() + 15
    while agents_running(home) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert agents_running(home) == []


def stopped_at_research(home: Path, base: int, *flags: str) -> Any:
    """Start the demo, Ctrl-C it once the researcher answered; the coordinator's task."""
    args = [*DEMO, "--home", str(home), "--port", str(base), "--pace", "1", *flags]
    child = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, cwd=home.parent)
    assert child.stdout is not None
    for line in child.stdout:
        if "research:" in line:
            child.send_signal(signal.SIGINT)
            break
    child.communicate(timeout=30)
    [stopped] = tasks(home, "coordinator")
    assert stopped.status not in {"completed", "failed", "canceled"}
    return stopped


def test_a_new_question_is_asked_even_with_one_left_unanswered(tmp_path: Path) -> None:
    home = tmp_path / "demo"
    old = stopped_at_research(home, ports())
    new = demo(home, "--question", "Why do tides happen?")
    assert new.returncode == 0, new.stdout + new.stderr
    assert "resuming" not in new.stdout
    assert "question: Why do tides happen?" in new.stdout
    assert "the earlier, unanswered one" in new.stdout
    asked = [t for t in tasks(home, "coordinator") if t.id != old.id]
    assert [t.status for t in asked] == ["completed"] and asked[0].id in new.stdout
    # The resumed task's delegations found their peers listening: no failed call.
    assert "ConnectError" not in new.stdout and "retrying" not in new.stdout


def test_answered_in_counts_the_answer_not_the_prompt(tmp_path: Path) -> None:
    import re
    import time

    home = tmp_path / "demo"
    base = ports()
    stopped_at_research(home, base)
    live = [flag for flag in DEMO if flag != "--no-live"]
    started = time.monotonic()
    code, screen = on_a_terminal(
        [*live, "--home", str(home), "--port", str(base)], tmp_path, "y", delay=4.0
    )
    wall = time.monotonic() - started
    assert code == 0, screen
    answered = re.search(r"answered in (\d+\.\d) s", screen)
    assert answered is not None, screen
    assert float(answered.group(1)) < wall - 4.0, (answered.group(0), wall)
    assert "ConnectError" not in screen


def test_without_ollama_the_demo_says_what_it_needs(tmp_path: Path) -> None:
    nothing = f"http://127.0.0.1:{free_ports(1)}"
    done = demo(tmp_path / "demo", "--ollama", nothing, command=ONLINE)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"OFFLINE SCRIPTED MODEL (no Ollama answers at {nothing})" in done.stdout
    [line] = [line for line in done.stdout.splitlines() if line.startswith("FAIL")]
    assert "model" in line and "`ollama serve`" in line  # as `agent-node doctor` says it
    # and by the demo's own flags: it has no --model scripted/echo, no models.default
    assert "demo --ollama URL`" in line and line.endswith("demo --offline`"), line
    assert "--model" not in line and "models." not in line, line

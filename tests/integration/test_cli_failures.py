"""How ``agent-node run`` reports what went wrong: a failed step's traceback
(in ``run``, ``inspect`` and ``events``), a Ctrl-C, and an execution id
resumed with another input. Real subprocesses, a real SQLite store."""

from __future__ import annotations

import json
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent_node.engine.tracebacks import MAX_CHARS, step_traceback

CLI = (sys.executable, "-m", "agent_node.cli.main")

FLOW = """
import asyncio
from pathlib import Path

from pydantic import BaseModel

from agent_node import Workflow

wf = Workflow("fails", version="1")


@wf.state
class State(BaseModel):
    n: int = 0
    done: bool = False


def check(n):
    if n < 0:
        raise ValueError(f"n must not be negative, got {n}")
    return "not a number" if n == 99 else n


@wf.step
async def first(state: State) -> dict:
    while Path("hold").exists():  # the Ctrl-C test holds the step here
        await asyncio.sleep(0.05)
    return {"n": check(state.n)}


@wf.step
async def second(state: State) -> dict:
    return {"done": True}
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "flow.py").write_text(FLOW)
    return tmp_path


def agent_node(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [*CLI, *args, "--store", f"sqlite:///{cwd}/s.db"]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=60)


def execution_id(output: str) -> str:
    match = re.search(r"execution (\S+) (completed|failed|waiting)", output)
    assert match is not None, output
    return match.group(1)


# -- a failed step's traceback -----------------------------------------------------------


def line_of(text: str) -> int:
    return FLOW.splitlines().index(text) + 1


def test_a_failed_step_shows_its_traceback_in_run_inspect_and_events(project: Path) -> None:
    raising = '        raise ValueError(f"n must not be negative, got {n}")'
    where = f'File "{project / "flow.py"}", line {line_of(raising)}, in check'
    calling = '    return {"n": check(state.n)}'
    raised = "ValueError: n must not be negative, got -1"
    run = agent_node(project, "run", "flow.py:wf", "--input", '{"n": -1}')
    assert run.returncode == 1, run.stderr
    assert f"{where}\n    {raising.strip()}\n" in run.stdout and raised in run.stdout, run.stdout
    assert f"line {line_of(calling)}, in first\n    {calling.strip()}\n" in run.stdout
    assert "agent_node" not in run.stdout.split("Traceback")[1]  # the user's frames only

    failed = execution_id(run.stdout)
    inspect = agent_node(project, "inspect", failed)
    assert inspect.returncode == 0, inspect.stderr
    assert "node 'first' failed (attempt 1):" in inspect.stdout
    assert where in inspect.stdout and raised in inspect.stdout

    events = agent_node(project, "events", failed)
    [failure] = [
        e for e in map(json.loads, events.stdout.splitlines()) if e["kind"] == "node_failed"
    ]
    assert where in failure["data"]["traceback"]
    assert failure["data"]["traceback"].endswith(raised)


def test_a_traceback_is_bounded_and_keeps_the_user_frames_only() -> None:
    def deep(n: int) -> None:
        if n == 0:
            raise RuntimeError("x" * 10_000)
        deep(n - 1)

    try:
        deep(50)
    except RuntimeError as exc:
        trace = step_traceback(exc)
    assert trace is not None
    assert len(trace) <= MAX_CHARS + 100
    assert "outer frames left out" in trace and "characters left out" in trace
    assert trace.startswith("Traceback (most recent call last):")
    assert trace.endswith("x" * 100)


def test_a_step_the_engine_refuses_has_no_traceback(project: Path) -> None:
    """The step returned, the engine found its state wrong: the message says
    it all, and no frame of the user's raised anything."""
    run = agent_node(project, "run", "flow.py:wf", "--input", '{"n": 99}')
    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stdout
    events = agent_node(project, "events", execution_id(run.stdout))
    [failure] = [
        e for e in map(json.loads, events.stdout.splitlines()) if e["kind"] == "node_failed"
    ]
    assert failure["data"]["type"] == "StateValidationError"
    assert "traceback" not in failure["data"]


# -- resuming with another input ------------------------------------------------------


def test_an_existing_execution_id_with_another_input_is_refused(project: Path) -> None:
    first = agent_node(project, "run", "flow.py:wf", "--input", '{"n": 1}', "--execution-id", "e1")
    assert first.returncode == 0, first.stderr

    other = agent_node(project, "run", "flow.py:wf", "--input", '{"n": 2}', "--execution-id", "e1")
    assert other.returncode == 2, other.stdout + other.stderr
    assert other.stderr.startswith("error: execution e1 was started with another input")
    assert "n: started with 1, now 2" in other.stderr
    assert "Traceback" not in other.stderr and other.stdout == ""

    for same in (["--input", '{"n": 1}'], []):  # the same input, or none: as before
        again = agent_node(project, "run", "flow.py:wf", *same, "--execution-id", "e1")
        assert again.returncode == 0, again.stderr
        assert "execution e1 completed" in again.stdout
        assert '"n": 1' in again.stdout


# -- Ctrl-C -------------------------------------------------------------------------------


def test_ctrl_c_on_run_says_how_to_continue(project: Path) -> None:
    (project / "hold").touch()
    store = f"sqlite:///{project}/s.db"
    out, err = project / "run.out", project / "run.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        command = [*CLI, "run", "flow.py:wf", "--input", '{"n": 5}', "--store", store]
        child = subprocess.Popen(command, cwd=project, stdout=stdout, stderr=stderr)
    try:
        deadline = time.monotonic() + 20
        while not _step_started(project):
            assert child.poll() is None, err.read_text()
            assert time.monotonic() < deadline, "the step never started"
            time.sleep(0.05)
        child.send_signal(signal.SIGINT)
        assert child.wait(20) == 130
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
    said = err.read_text()
    assert "Aborted!" not in said and "Traceback" not in said, said
    match = re.search(r"interrupted: execution (\S+) stopped where it was", said)
    assert match is not None, said
    hint = re.search(r"^continue it with: (.+)$", said, re.MULTILINE)
    assert hint is not None, said
    words = shlex.split(hint.group(1))
    assert words[:2] == ["agent-node", "run"] and match.group(1) in words

    (project / "hold").unlink()
    resumed = subprocess.run(
        [*CLI, *words[1:]], cwd=project, capture_output=True, text=True, timeout=60
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"execution {match.group(1)} completed" in resumed.stdout


def _step_started(project: Path) -> bool:
    import sqlite3

    if not (project / "s.db").exists():
        return False
    with sqlite3.connect(project / "s.db") as db:
        try:
            found = db.execute("SELECT 1 FROM events WHERE kind = 'node_started'").fetchone()
        except sqlite3.OperationalError:  # the tables are not made yet
            return False
    return found is not None

"""Ctrl-C stops a command however it was launched: a process started with
SIGINT ignored (``agent-node run … &`` from a script, ``trap '' INT``, some
supervisors) passes that on to its children, and Python then leaves SIGINT
ignored — the command ran on as if nothing was sent."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

SLOW_PY = """
import asyncio
from pydantic import BaseModel
from agent_node import Workflow

wf = Workflow("slow", version="1")


@wf.state
class State(BaseModel):
    done: bool = False


@wf.step
async def sleep(state: State) -> dict:
    print("sleeping", flush=True)
    await asyncio.sleep(60)
    return {"done": True}


wf.end("end")
"""


#: What the child inherits for SIGINT (set for both: pytest itself may run with it ignored).
INHERITED = {"ignored": signal.SIG_IGN, "default": signal.SIG_DFL}


def spawn(command: list[str], cwd: Path, inherited: str) -> subprocess.Popen[str]:
    """``command`` in ``cwd``, SIGINT handled as :data:`INHERITED` says."""
    return subprocess.Popen(
        command,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, INHERITED[inherited]),
    )


@pytest.mark.parametrize("inherited", INHERITED)
def test_sigint_stops_a_run_whatever_it_inherited(tmp_path: Path, inherited: str) -> None:
    (tmp_path / "slow.py").write_text(SLOW_PY)
    command = [sys.executable, "-m", "agent_node.cli.main", "run", "slow.py:wf", "--input", "{}"]
    child = spawn([*command, "--store", f"sqlite:///{tmp_path}/s.db"], tmp_path, inherited)
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "sleeping\n"  # the step runs: Ctrl-C now
        started = time.monotonic()
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=20)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert child.returncode == 130, (out, err)
    assert time.monotonic() - started < 10
    assert "Traceback" not in err


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("inherited", INHERITED)
def test_the_ui_stops_cleanly_on_a_signal(
    tmp_path: Path, inherited: str, sig: signal.Signals
) -> None:
    # A peer that is never called: the UI starts and serves its page all the same.
    command = [sys.executable, "-m", "agent_node.cli.main", "ui", "--port", "0"]
    child = spawn([*command, "--peer", "quiet=http://127.0.0.1:9"], tmp_path, inherited)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().startswith("agent-node ui: http://127.0.0.1:")
        child.send_signal(sig)
        out, err = child.communicate(timeout=20)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert child.returncode == 0, (out, err)
    assert out == "agent-node ui stopped\n"
    assert "Aborted" not in err and "Traceback" not in err

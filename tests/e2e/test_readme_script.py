"""The README's Python example as a user runs it: pasted into a file, run with
``python``, then continued from the command line — which loads the same file
for its workflow, and must not run the example in it again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from e2e.procs import CLI
from support.readme_blocks import python_block

ROOT = Path(__file__).resolve().parents[2]


def call(
    args: Sequence[str], cwd: Path, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False
    )


def executions(cwd: Path) -> list[dict[str, str]]:
    """The rows of the default store (``./.agent-node/agent-node.db``), oldest first."""
    script = (
        "import json, sqlite3\n"
        "db = sqlite3.connect('.agent-node/agent-node.db')\n"
        "rows = db.execute('SELECT id, status, state FROM executions ORDER BY created_at')\n"
        "print(json.dumps([dict(id=i, status=s, state=t) for i, s, t in rows]))\n"
    )
    done = call([sys.executable, "-c", script], cwd)
    assert done.returncode == 0, done.stderr
    rows: list[dict[str, str]] = json.loads(done.stdout)
    return rows


def test_readme_script_is_signalled_and_resumed_from_the_cli(tmp_path: Path) -> None:
    (tmp_path / "expense.py").write_text(python_block("A workflow in Python"), encoding="utf-8")

    script = call([sys.executable, "expense.py"], tmp_path)
    assert script.returncode == 0, script.stderr
    [parked] = executions(tmp_path)
    assert parked["status"] == "waiting"
    assert script.stdout.split() == ["waiting", parked["id"]]  # what the user signals

    # As the quickstart's install leaves it: .venv/bin/agent-node, not on PATH.
    script_path = Path(sys.executable).parent / "agent-node"
    signal = call(
        [str(script_path), "signal", parked["id"], "decision", "--data", '{"approved": true}'],
        tmp_path,
        env={**os.environ, "PATH": "/usr/bin:/bin"},
    )
    assert signal.returncode == 0, signal.stdout + signal.stderr
    assert f"delivered 'decision' to {parked['id']}" in signal.stdout
    assert f"or: {script_path} resume" in signal.stdout  # a hint that can be pasted
    resume = call([*CLI, "resume"], tmp_path)
    assert resume.returncode == 0, resume.stdout + resume.stderr

    [paid] = executions(tmp_path)  # loading expense.py started no execution
    assert paid["id"] == parked["id"]
    assert paid["status"] == "completed"
    assert json.loads(paid["state"])["status"] == "paid"

    run = call(
        [*CLI, "run", "expense.py:wf", "--input", '{"employee": "Bo", "amount": 5}'], tmp_path
    )
    assert run.returncode == 0, run.stdout + run.stderr
    rows = executions(tmp_path)
    assert len(rows) == 2, rows  # the one run asked for, not the file's example too
    assert json.loads(rows[1]["state"]) == {
        "employee": "Bo",
        "amount": 5.0,
        "decision": None,
        "status": "paid",
    }

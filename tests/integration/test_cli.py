"""The ``agent-node`` command line, invoked for real: in-process through
click's runner for the quick checks, as subprocesses for run/signal/worker."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from support.workflows import WRITER_YAML

from agent_node.cli.common import load_target
from agent_node.cli.main import cli
from agent_node.engine import plans
from agent_node.engine.control import Control
from agent_node.engine.registry import WorkflowRegistry
from agent_node.nodes import default_executors
from agent_node.store import store_from_url
from agent_node.workflow.loading import load_workflow

STEPS = """
async def greet(state):
    return {"greeting": "Hello, " + state.name}

async def finish(state):
    return {"greeting": state.greeting + " (approved by " + state.approval["by"] + ")"}
"""

GREET_YAML = """
workflow:
  id: greet
  version: "1"
  state_schema:
    type: object
    properties: {name: {type: string}, greeting: {type: string}}
    required: [name]
  start: greet
nodes:
  greet: {type: python, function: "steps:greet", next: done}
  done: {type: end}
"""

APPROVE_YAML = """
workflow:
  id: approve
  version: "1"
  state_schema: {name: string, greeting: string, approval: object}
  start: greet
nodes:
  greet: {type: python, function: "steps:greet", next: ask}
  ask: {type: wait, event: approved, output: approval, next: finish}
  finish: {type: python, function: "steps:finish", next: done}
  done: {type: end}
"""

APPROVE_PY = """
from pydantic import BaseModel

from agent_node import Workflow

wf = Workflow("approve-py", version="1")


@wf.state
class State(BaseModel):
    name: str
    greeting: str = ""
    approval: dict = {}


@wf.step
async def greet(state: State) -> dict:
    return {"greeting": "Hello, " + state.name}


wf.wait("ask", event="approved", output="approval")


@wf.step
async def finish(state: State) -> dict:
    return {"greeting": state.greeting + " (approved by " + state.approval["by"] + ")"}
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "steps.py").write_text(STEPS)
    (tmp_path / "greet.yaml").write_text(GREET_YAML)
    (tmp_path / "approve.yaml").write_text(APPROVE_YAML)
    (tmp_path / "wf.py").write_text(APPROVE_PY)
    return tmp_path


@pytest.fixture
def store(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/s.db"


def invoke(store: str, *args: str) -> Result:
    return CliRunner().invoke(cli, [*args, "--store", store], catch_exceptions=False)


def agent_node(cwd: Path, store: str, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "agent_node.cli.main", *args, "--store", store]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=60)


def assert_error(result: Result | subprocess.CompletedProcess[str], code: int, text: str) -> None:
    code_seen = result.exit_code if isinstance(result, Result) else result.returncode
    assert code_seen == code, result.stderr
    assert result.stderr.startswith("error: "), result.stderr
    assert text in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def start(store: str, project: Path, workflow: str, execution_id: str, name: str = "x") -> Result:
    """Run ``<workflow>.yaml`` of the project for the input ``{"name": name}``."""
    target = str(project / f"{workflow}.yaml")
    state = json.dumps({"name": name})
    return invoke(store, "run", target, "--input", state, "--execution-id", execution_id)


def ids_listed(output: str) -> list[str]:
    return re.findall(r"^│ (\S+)\s+│", output, flags=re.MULTILINE)


def test_help_and_version() -> None:
    runner = CliRunner()
    assert runner.invoke(cli, ["--help"]).exit_code == 0
    version = runner.invoke(cli, ["--version"])
    assert version.exit_code == 0
    assert "0.1.0" in version.stdout


def test_reading_a_store_does_not_import_what_runs_workflows(project: Path, store: str) -> None:
    """``executions``, ``inspect`` and ``events`` read a store: they need
    neither the engine nor the node types (~0.15 s of a 0.35 s command)."""
    ran = invoke(store, "run", str(project / "greet.yaml"), "--input", '{"name": "Ada"}')
    assert ran.exit_code == 0, ran.stderr
    listed = (
        "import sys\n"
        "from agent_node.cli.main import cli\n"
        "try:\n"
        "    cli(['executions', '--store', sys.argv[1]])\n"
        "except SystemExit as stop:\n"
        "    assert not stop.code, stop.code\n"
        "print([m for m in ('agent_node.engine.control', 'agent_node.runtime',"
        " 'agent_node.nodes') if m in sys.modules])\n"
    )
    wide = {**os.environ, "COLUMNS": "200"}
    command = [sys.executable, "-c", listed, store]
    done = subprocess.run(command, capture_output=True, text=True, env=wide)
    assert done.returncode == 0, done.stderr
    assert "greet" in done.stdout and done.stdout.strip().endswith("[]"), done.stdout


# -- run ------------------------------------------------------------------------------


def test_run_completes_and_prints_state_and_timeline(project: Path, store: str) -> None:
    result = invoke(store, "run", str(project / "greet.yaml"), "--input", '{"name": "Ada"}')
    assert result.exit_code == 0, result.stderr
    assert '"greeting": "Hello, Ada"' in result.stdout
    assert "timeline" in result.stdout
    assert re.search(r"│ greet\s+│\s+1 │\s+1 │ completed", result.stdout)
    assert re.search(r"execution \S+ completed", result.stdout)


def test_run_reads_input_from_a_file(project: Path, store: str) -> None:
    (project / "in.json").write_text('{"name": "File"}')
    target = str(project / "greet.yaml")
    result = invoke(
        store, "run", target, "--input", f"@{project / 'in.json'}", "--execution-id", "e1"
    )
    assert result.exit_code == 0, result.stderr
    assert "Hello, File" in result.stdout
    assert "execution e1 completed" in result.stdout


def test_run_refuses_bad_input(project: Path, store: str) -> None:
    target = str(project / "greet.yaml")
    assert_error(invoke(store, "run", target, "--input", "{bad"), 2, "--input is not valid JSON")
    assert_error(invoke(store, "run", target, "--input", "[1]"), 2, "must be a JSON object")
    missing = invoke(store, "run", target, "--input", "@nowhere.json")
    assert_error(missing, 2, "cannot read 'nowhere.json'")
    assert_error(invoke(store, "run", str(project / "nope.yaml"), "--input", "{}"), 2, "nope.yaml")


def test_run_of_a_failing_execution_exits_1(project: Path, store: str) -> None:
    result = invoke(store, "run", str(project / "approve.yaml"), "--input", "{}")
    assert result.exit_code == 1
    assert re.search(r"execution \S+ failed", result.stdout)


def test_run_waits_then_signal_and_run_again_complete_it(project: Path, store: str) -> None:
    first = agent_node(project, store, "run", "wf.py:wf", "--input", '{"name": "Ada"}')
    assert first.returncode == 0, first.stderr
    match = re.search(r"execution (\S+) waiting", first.stdout)
    assert match is not None, first.stdout
    execution_id = match.group(1)
    hint = f"agent-node signal {execution_id} approved --data '{{}}' --store {store}"
    assert hint in first.stdout

    sent = agent_node(project, store, "signal", execution_id, "approved", "--data", '{"by": "Bo"}')
    assert sent.returncode == 0, sent.stderr
    assert f"delivered 'approved' to {execution_id}" in sent.stdout

    done = agent_node(project, store, "run", "wf.py:wf", "--execution-id", execution_id)
    assert done.returncode == 0, done.stderr
    assert "Hello, Ada (approved by Bo)" in done.stdout
    assert f"execution {execution_id} completed" in done.stdout


def test_signal_then_resume_completes_it(project: Path, store: str) -> None:
    start(store, project, "approve", "w1")
    sent = invoke(store, "signal", "w1", "approved", "--data", '{"by": "Di"}')
    assert sent.exit_code == 0, sent.stderr
    resumed = invoke(store, "resume")
    assert resumed.exit_code == 0, resumed.stderr
    assert "resumed 1 execution(s): 1 completed, 0 failed, 0 waiting" in resumed.stdout
    assert "completed" in invoke(store, "inspect", "w1").stdout
    assert "nothing to resume" in invoke(store, "resume").stdout


def test_signal_refuses_unknown_execution_event_and_bad_data(project: Path, store: str) -> None:
    start(store, project, "approve", "w1")
    assert_error(invoke(store, "signal", "zz", "approved"), 2, "no execution with id 'zz'")
    unknown_event = invoke(store, "signal", "w1", "rejected")
    assert_error(unknown_event, 2, "not waiting for event 'rejected'; it waits for 'approved'")
    assert_error(invoke(store, "signal", "w1", "approved", "--data", "{x"), 2, "not valid JSON")


def test_resume_gives_up_on_an_execution_that_makes_no_progress(project: Path, store: str) -> None:
    async def held_by_another_worker() -> None:
        db = store_from_url(store)
        await db.open()
        try:
            control = Control(db, WorkflowRegistry(load_workflow), default_executors())
            lease = plans.Lease("elsewhere:host:1:abcd", time.time() + 60)
            await control.create(
                load_target(str(project / "greet.yaml")), {"name": "x"}, "h1", lease
            )
        finally:
            await db.close()

    asyncio.run(held_by_another_worker())
    result = invoke(store, "resume", "--idle-timeout", "0.3")
    assert result.exit_code == 1
    assert "gave up on h1 (greet@1)" in result.stderr


# -- executions / inspect / events / cancel ------------------------------------------------


def test_executions_filters_by_status(project: Path, store: str) -> None:
    start(store, project, "greet", "c1", "A")
    start(store, project, "approve", "w1")
    assert ids_listed(invoke(store, "executions", "--status", "waiting").stdout) == ["w1"]
    assert ids_listed(invoke(store, "executions", "--status", "completed").stdout) == ["c1"]
    both = invoke(store, "executions", "--status", "completed", "--status", "waiting")
    assert sorted(ids_listed(both.stdout)) == ["c1", "w1"]
    assert ids_listed(invoke(store, "executions", "--workflow", "greet").stdout) == ["c1"]
    bad = invoke(store, "executions", "--status", "done")
    assert_error(bad, 2, "pending, running, waiting, completed, failed, canceled")


def test_inspect_shows_header_state_and_timeline(project: Path, store: str) -> None:
    start(store, project, "approve", "w1", "I")
    result = invoke(store, "inspect", "w1")
    assert result.exit_code == 0, result.stderr
    assert "approve@1" in result.stdout
    assert "event 'approved' at node 'ask'" in result.stdout
    assert '"greeting": "Hello, I"' in result.stdout
    assert re.search(r"│ ask\s+│\s+1 │\s+1 │ waiting", result.stdout)


def test_inspect_of_an_unknown_execution_exits_2(project: Path, store: str) -> None:
    start(store, project, "greet", "c1")
    assert_error(invoke(store, "inspect", "nope"), 2, f"no execution with id 'nope' in {store}")


def test_events_prints_one_json_object_per_line(project: Path, store: str) -> None:
    start(store, project, "greet", "c1", "E")
    lines = invoke(store, "events", "c1").stdout.splitlines()
    events = [json.loads(line) for line in lines]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[0]["kind"] == "execution_started"
    assert events[-1]["kind"] == "execution_completed"
    later = [
        json.loads(line)
        for line in invoke(store, "events", "c1", "--after", "2").stdout.splitlines()
    ]
    assert [e["seq"] for e in later] == list(range(3, len(events) + 1))
    assert_error(invoke(store, "events", "nope"), 2, "no execution with id 'nope'")


def test_a_reader_that_stops_early_is_no_error(project: Path, store: str) -> None:
    """``agent-node events ID | head -1``: the pipe closes under the command."""
    start(store, project, "greet", "c1", "E")
    reader, writer = os.pipe()
    os.close(reader)  # gone before the first line, as head is after its last
    try:
        command = [sys.executable, "-m", "agent_node.cli.main", "events", "c1", "--store", store]
        done = subprocess.run(
            command, cwd=project, stdout=writer, stderr=subprocess.PIPE, text=True, timeout=60
        )
    finally:
        os.close(writer)
    assert "error" not in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert done.returncode != 0


def test_cancel_says_whether_it_cancelled(project: Path, store: str) -> None:
    start(store, project, "approve", "w1")
    first = invoke(store, "cancel", "w1", "--reason", "changed my mind")
    assert first.exit_code == 0
    assert "cancelled w1" in first.stdout
    again = invoke(store, "cancel", "w1")
    assert "w1 had already ended (canceled)" in again.stdout
    assert ids_listed(invoke(store, "executions", "--status", "canceled").stdout) == ["w1"]
    assert "changed my mind" in invoke(store, "inspect", "w1").stdout
    assert_error(invoke(store, "cancel", "nope"), 2, "no execution with id 'nope'")


# -- batch ---------------------------------------------------------------------------------


def test_batch_reports_every_line_and_resumes_without_new_executions(
    project: Path, store: str
) -> None:
    lines = [json.dumps({"name": f"n{i}"}) for i in range(20)]
    lines[6] = '{"name": '
    inputs = project / "inputs.jsonl"
    inputs.write_text("\n".join(lines) + "\n")
    target, output = str(project / "greet.yaml"), project / "out.jsonl"

    first = invoke(
        store, "batch", target, str(inputs), "--output", str(output), "--concurrency", "4"
    )
    assert first.exit_code == 1
    results = [json.loads(line) for line in output.read_text().splitlines()]
    assert sorted(r["line"] for r in results) == list(range(1, 21))
    bad = [r for r in results if r["status"] != "completed"]
    assert [(r["line"], r["status"]) for r in bad] == [(7, "invalid")]
    good = next(r for r in results if r["line"] == 3)
    assert good["state"] == {"name": "n2", "greeting": "Hello, n2"}
    assert re.fullmatch(r"batch-[0-9a-f]{12}-000003", good["execution_id"])
    assert "19 completed, 1 invalid" in first.stderr

    listed = ids_listed(invoke(store, "executions", "--limit", "100").stdout)
    assert len(listed) == 19
    again = invoke(store, "batch", target, str(inputs))
    assert again.exit_code == 1
    rerun = [json.loads(line) for line in again.stdout.splitlines()]
    assert sorted(json.dumps(r) for r in rerun) == sorted(json.dumps(r) for r in results)
    assert sorted(ids_listed(invoke(store, "executions", "--limit", "100").stdout)) == sorted(
        listed
    )


def test_batch_of_a_missing_file_exits_2(project: Path, store: str) -> None:
    result = invoke(store, "batch", str(project / "greet.yaml"), str(project / "none.jsonl"))
    assert_error(result, 2, "none.jsonl")


# -- worker --------------------------------------------------------------------------------


async def _create(store: str, target: str, ids: Sequence[str]) -> None:
    db = store_from_url(store)
    await db.open()
    try:
        control = Control(db, WorkflowRegistry(load_workflow), default_executors())
        for execution_id in ids:
            await control.create(load_target(target), {"name": execution_id}, execution_id)
    finally:
        await db.close()


async def _statuses(store: str, ids: Sequence[str]) -> list[str]:
    db = store_from_url(store)
    await db.open()
    try:
        records = [await db.get(execution_id) for execution_id in ids]
        return [r.status if r is not None else "missing" for r in records]
    finally:
        await db.close()


def test_worker_runs_executions_submitted_elsewhere_and_stops_on_sigterm(
    project: Path, store: str
) -> None:
    ids = [f"job{i}" for i in range(5)]
    asyncio.run(_create(store, str(project / "greet.yaml"), ids))
    command = [sys.executable, "-m", "agent_node.cli.main", "worker", "greet.yaml"]
    worker = subprocess.Popen(
        [*command, "--store", store, "--node", "w"],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while asyncio.run(_statuses(store, ids)) != ["completed"] * len(ids):
            assert worker.poll() is None, worker.communicate()
            assert time.monotonic() < deadline, "the worker did not finish the executions"
            time.sleep(0.1)
        worker.send_signal(signal.SIGTERM)
        out, err = worker.communicate(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.communicate()
    assert worker.returncode == 0, err
    assert f"on {store}" in out
    assert "stopped" in out


def test_run_live_shows_a_model_s_text_as_it_is_written(tmp_path: Path, store: str) -> None:
    (tmp_path / "writer.yaml").write_text(WRITER_YAML)
    command = [sys.executable, "-m", "agent_node.cli.main", "run", "writer.yaml"]
    command += ["--input", '{"text": "tell me"}', "--store", store]
    env = {**os.environ, "AGENT_NODE_MODEL": "scripted/echo", "AGENT_NODE_SCRIPTED_DELAY": "0.2"}
    live = subprocess.run(
        [*command, "--live"], cwd=tmp_path, capture_output=True, text=True, timeout=60, env=env
    )
    assert live.returncode == 0, live.stderr
    # The scripted model's answer, word by word, under the node's name.
    assert re.search(
        r"^write: \[offline scripted model\] I cannot think; you asked: 'tell me'\.",
        live.stderr,
        re.MULTILINE,
    ), live.stderr
    assert '"reply": "[offline scripted model]' in live.stdout  # the state, as without --live
    quiet = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=60, env=env
    )
    assert quiet.returncode == 0 and "write: " not in quiet.stderr  # not a terminal: off

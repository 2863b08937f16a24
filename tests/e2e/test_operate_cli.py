"""``agent-node retry`` and the commands given a node's ``--config``, run as
a user runs them (subprocesses on one store): a retry is the operator API's
retry; a workflow file changed to a new version while executions of the old
one wait leaves them to the old file the node keeps registered as a skill."""

from __future__ import annotations

from pathlib import Path

import pytest
from e2e.procs import opened, run_cli

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]


def flow(version: str, timeout: str = "") -> str:
    return f"""\
workflow:
  id: ver
  version: "{version}"
  start: first
  state_schema: {{text: string, got: {{type: object}}, step: string}}
nodes:
  first: {{type: wait, event: go, output: got, next: second{timeout}}}
  second: {{type: branch, cases: [{{when: "state.text == 'x'", next: done}}], default: done}}
  done: {{type: end}}
"""


WAIT_ONLY = """\
workflow:
  id: parked
  version: "1"
  start: first
  state_schema: {text: string, got: {type: object}}
nodes:
  first: {type: wait, event: go, output: got, next: done}
  done: {type: end}
"""


def started(tmp_path: Path, store: str, workflow: Path) -> str:
    """Run ``workflow`` until it parks; its execution id."""
    ran = run_cli(tmp_path, "run", str(workflow), "--input", '{"text": "x"}', "--store", store)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    line = next(line for line in ran.stdout.splitlines() if line.startswith("execution "))
    return line.split()[1]


async def test_retry_starts_the_canceled_execution_again_and_says_what_next(
    tmp_path: Path,
) -> None:
    store = f"sqlite:///{tmp_path}/store.db"
    workflow = tmp_path / "parked.yaml"
    workflow.write_text(WAIT_ONLY)
    first = started(tmp_path, store, workflow)
    early = run_cli(tmp_path, "retry", first, "--store", store)
    assert early.returncode == 2, early.stdout + early.stderr
    assert f"execution {first} is waiting: only failed or canceled ones retry" in early.stderr
    assert run_cli(tmp_path, "cancel", first, "--store", store).returncode == 0

    retried = run_cli(tmp_path, "retry", first, "--store", store)
    assert retried.returncode == 0, retried.stdout + retried.stderr
    said = retried.stdout.splitlines()
    assert said[0].startswith(f"retried {first} as "), retried.stdout
    new = said[0].split()[-1]
    assert said[-1] == f"follow it with: agent-node inspect {new} --store {store}", said
    async with opened(store) as opened_store:
        record = await opened_store.get(new)
        assert record is not None and record.status in {"pending", "running"}, record
        assert record.parsed is None or record.parsed.get("retry_of") == first
        assert f'"retry_of": "{first}"' in (record.metadata or "").replace('":"', '": "')
    resumed = run_cli(tmp_path, "resume", "--store", store)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    async with opened(store) as opened_store:
        record = await opened_store.get(new)
        assert record is not None and record.status == "waiting", record
        assert json_input(await opened_store.events(new)) == {"text": "x", "got": None}


def json_input(events: list[object]) -> object:
    import json

    first = events[0]
    return json.loads(first.data or "{}").get("input")  # type: ignore[attr-defined]


async def test_signal_retry_and_resume_find_an_old_version_the_node_keeps_registered(
    tmp_path: Path,
) -> None:
    store = f"sqlite:///{tmp_path}/store.db"
    current = tmp_path / "ver.yaml"
    current.write_text(flow("1"))
    parked = started(tmp_path, store, current)
    canceled = started(tmp_path, store, current)
    assert run_cli(tmp_path, "cancel", canceled, "--store", store).returncode == 0
    # The author changes the workflow: version 2 in the file the executions recorded.
    current.write_text(flow("2"))
    (tmp_path / "ver.v1.yaml").write_text(flow("1"))
    conf = tmp_path / "agent-node.yaml"
    conf.write_text(
        f"name: v\nlisten: {{host: 127.0.0.1, port: 0}}\nstore: {store}\nskills:\n"
        "  - {id: ver, workflow: ver.yaml, default: true}\n"
        "  - {id: ver-v1, workflow: ver.v1.yaml, card: extended}\n"
    )

    bare = run_cli(tmp_path, "signal", parked, "go", "--data", "{}", "--store", store)
    assert bare.returncode == 2, bare.stdout + bare.stderr
    assert "now defines ver@2, but the execution needs ver@1" in bare.stderr

    signaled = run_cli(tmp_path, "signal", parked, "go", "--data", "{}", "--config", str(conf))
    assert signaled.returncode == 0, signaled.stdout + signaled.stderr
    assert f"delivered 'go' to {parked}; it is running" in signaled.stdout
    assert f"resume --config {conf}" in signaled.stdout

    retried = run_cli(tmp_path, "retry", canceled, "--config", str(conf))
    assert retried.returncode == 0, retried.stdout + retried.stderr
    new = retried.stdout.splitlines()[0].split()[-1]

    # Without the config, the node after the wait is not runnable here: left
    # for a process that registers ver@1, at once, its attempt unused.
    bare_resume = run_cli(tmp_path, "resume", "--store", store, "--idle-timeout", "60")
    assert bare_resume.returncode == 0, bare_resume.stdout + bare_resume.stderr
    assert "left 1 execution(s) for a process that can run them" in bare_resume.stdout
    assert "needs ver@1" in bare_resume.stdout

    resumed = run_cli(tmp_path, "resume", "--config", str(conf))
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    async with opened(store) as opened_store:
        done = await opened_store.get(parked)
        assert done is not None and done.status == "completed", done
        started_second = [
            e.attempt
            for e in await opened_store.events(parked)
            if e.kind == "node_started" and e.node == "second"
        ]
        assert started_second[-1] == 1, started_second
        again = await opened_store.get(new)
        assert again is not None, new
        assert (again.workflow_version, again.status) == ("1", "waiting")


async def test_a_due_wait_of_a_version_gone_says_why_in_one_line_and_in_inspect(
    tmp_path: Path,
) -> None:
    store = f"sqlite:///{tmp_path}/store.db"
    current = tmp_path / "ver.yaml"
    current.write_text(flow("1", ", timeout: 1s, on_timeout: done"))
    parked = started(tmp_path, store, current)
    current.write_text(flow("3"))
    import time

    time.sleep(1.2)
    resumed = run_cli(tmp_path, "resume", "--store", store, "--idle-timeout", "1")
    assert resumed.returncode == 1, resumed.stdout + resumed.stderr
    assert "Traceback" not in resumed.stderr, resumed.stderr
    lines = [line for line in resumed.stderr.splitlines() if "cannot fire the due wait" in line]
    assert len(lines) == 1, resumed.stderr
    assert "now defines ver@3, but the execution needs ver@1" in lines[0]

    inspected = run_cli(tmp_path, "inspect", parked, "--store", store)
    assert inspected.returncode == 0, inspected.stdout + inspected.stderr
    assert "cannot go on here" in inspected.stdout, inspected.stdout
    assert "now defines ver@3, but the execution needs ver@1" in inspected.stdout

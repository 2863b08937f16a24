"""Executions the release before the starved-join fix left hanging are
settled by today's code as it starts.

That release (4bf719e~1) loaded a parallel whose branch could stop before
its join; run, such a workflow left its execution ``waiting`` (a timer's
branch arrived last) or ``running`` (a step's did) with no work, no wait
and nothing to resume, for good. Here the old release itself, from git,
runs two such workflows in a subprocess on a store; then today's
``inspect`` and ``resume`` work on that store.
"""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from e2e.procs import child_env, run_cli

from agent_node.store import store_from_url

#: The last commit before the compiler refused such a parallel (4bf719e).
OLD_RELEASE = "1d057c4cd90dee1358e34b15265273aade1dc0ed"
REPO = Path(__file__).resolve().parents[2]

#: The walk's parallel_lost_join.yaml: ``side`` (a timer without ``next``)
#: ends its branch first, ``b2`` arrives at ``j`` alone.
TIMERS = """\
workflow: {id: lost_timers, version: "1", start: a, state_schema: {n: integer}}
nodes:
  a: {type: parallel, branches: [side, b2], join: j}
  side: {type: wait, duration: 0.05}
  b2: {type: wait, duration: 0.3, next: j}
  j: {type: join, next: done}
  done: {type: end}
"""
#: ``stops`` ends its branch; ``arrives`` reaches ``j`` after it.
STEPS = """\
workflow: {id: lost_steps, version: "1", start: a, state_schema: {n: integer}}
nodes:
  a: {type: parallel, branches: [stops, arrives], join: j}
  stops: {type: python, function: "lost_steps:stops"}
  arrives: {type: python, function: "lost_steps:arrives", next: j}
  j: {type: join, next: done}
  done: {type: end}
"""
STEP_CODE = """\
import asyncio


async def stops(state):
    return None


async def arrives(state):
    await asyncio.sleep(0.5)  # after ``stops`` ended its branch
"""
#: Run by the old release: start both, wait until nothing runs or waits.
OLD_RUN = """\
import asyncio, sys, time
import agent_node
from agent_node import Runtime
from agent_node.workflow.loading import load_workflow

assert agent_node.__file__.startswith(sys.argv[1]), agent_node.__file__


async def main(url, paths):
    async with Runtime(url, scope="all") as runtime:
        ids = [await runtime.start_execution(load_workflow(p), {"n": 1}) for p in paths]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            busy = [i for i in ids if await runtime.store.work(i) or await runtime.store.waits(i)]
            if not busy:
                break
            await asyncio.sleep(0.05)
        for i in ids:
            print(i, (await runtime.store.get(i)).status)


asyncio.run(main(sys.argv[2], sys.argv[3:]))
"""


@pytest.fixture(scope="module")
def old_release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package as the old release had it (from this repository's history)."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", OLD_RELEASE, "agent_node"],
        capture_output=True,
        check=False,
    )
    if archive.returncode != 0:
        pytest.skip(f"the old release is not in this checkout's history: {archive.stderr!r}")
    folder = tmp_path_factory.mktemp("old_release")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(folder, filter="data")
    return folder


def hang_them(old: Path, folder: Path, url: str) -> dict[str, str]:
    """Run both workflows to their hang with the old release; their ids and statuses."""
    (folder / "lost_timers.yaml").write_text(TIMERS)
    (folder / "lost_steps.yaml").write_text(STEPS)
    (folder / "lost_steps.py").write_text(STEP_CODE)
    (folder / "old_run.py").write_text(OLD_RUN)
    env = {**child_env(folder / "effects.db", 0.0), "PYTHONPATH": str(old)}
    ran = subprocess.run(
        [sys.executable, "old_run.py", str(old), url, "lost_timers.yaml", "lost_steps.yaml"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stderr
    return dict(line.split() for line in ran.stdout.splitlines())


STARVED = (
    "join 'j' can never fire: 1 of its 2 branch(es) arrived, and no other branch is"
    " running or waiting (a branch stopped before its join)"
)


async def test_resume_settles_what_the_old_release_left_hanging(
    old_release: Path, tmp_path: Path, durable_url: str
) -> None:
    hung = hang_them(old_release, tmp_path, durable_url)
    timers, steps = hung
    assert hung == {timers: "waiting", steps: "running"}
    before = run_cli(tmp_path, "inspect", timers, "--store", durable_url)
    assert before.returncode == 0, before.stderr
    assert "waiting" in before.stdout
    assert "failed" not in before.stdout

    resumed = run_cli(tmp_path, "resume", "--store", durable_url)
    assert resumed.returncode == 1, resumed.stderr  # executions failed: said, as ever
    for execution_id in hung:
        assert f"execution {execution_id} " in resumed.stderr
        assert f"{execution_id} failed: {STARVED}" in resumed.stdout, resumed.stdout
    assert STARVED in resumed.stderr
    assert "resumed 2 execution(s): 0 completed, 2 failed" in resumed.stdout

    for execution_id in hung:
        after = run_cli(tmp_path, "inspect", execution_id, "--store", durable_url)
        assert after.returncode == 0, after.stderr
        assert "failed" in after.stdout
        assert "can never fire" in " ".join(after.stdout.split())
    store = store_from_url(durable_url)
    await store.open()
    try:
        for execution_id in hung:
            record = await store.get(execution_id)
            assert record is not None
            assert (record.status, record.error) == ("failed", STARVED)
            events = await store.events(execution_id)
            assert [e.kind for e in events].count("execution_failed") == 1
            assert "done" not in {e.node for e in events}
    finally:
        await store.close()

    again = run_cli(tmp_path, "resume", "--store", durable_url)
    assert again.returncode == 0, again.stderr
    assert "nothing left to run" not in again.stderr

"""Real child processes for the end-to-end tests, and what to read back.

Children write stdout and stderr to files (a pipe nobody drains can block a
child), run with ``tests/`` on ``PYTHONPATH`` (``flows.py`` imports
``support.effects``) and are always reaped, so no test leaves one behind.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from support.checks import assert_well_formed
from support.effects import Effects

from agent_node.results import Event, to_event
from agent_node.store import ExecutionRecord, Store, store_from_url

E2E = Path(__file__).resolve().parent
FIVE_STEPS = f"{E2E / 'flows.py'}:five_steps"
CLI = (sys.executable, "-m", "agent_node.cli.main")


class Child:
    """One subprocess; its output goes to ``<name>.out`` and ``<name>.err``."""

    def __init__(self, name: str, args: Sequence[str], env: dict[str, str], cwd: Path) -> None:
        self.name = name
        self.out_path = cwd / f"{name}.out"
        self.err_path = cwd / f"{name}.err"
        with self.out_path.open("wb") as out, self.err_path.open("wb") as err:
            self.proc = subprocess.Popen(list(args), cwd=cwd, env=env, stdout=out, stderr=err)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def out(self) -> str:
        return self.out_path.read_text(errors="replace")

    def err(self) -> str:
        return self.err_path.read_text(errors="replace")

    def describe(self) -> str:
        return f"{self.name} (exit {self.proc.poll()}):\n{self.out()}\n{self.err()}"

    def send(self, signum: signal.Signals) -> None:
        os.kill(self.proc.pid, signum)

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout)

    def reap(self) -> None:
        """Kill the process if it still runs (a stopped one too) and collect it."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


#: The ``spawn`` fixture: ``spawn(name, args, env)`` starts a reaped child.
Spawn = Callable[[str, Sequence[str], dict[str, str]], Child]


def child_env(effects: Path, step_sleep: float) -> dict[str, str]:
    tests_dir = str(E2E.parent)
    inherited = os.environ.get("PYTHONPATH")
    return {
        **os.environ,
        "PYTHONPATH": f"{tests_dir}{os.pathsep}{inherited}" if inherited else tests_dir,
        "PYTHONUNBUFFERED": "1",
        "AGENT_NODE_TEST_EFFECTS": str(effects),
        "AGENT_NODE_TEST_STEP_SLEEP": str(step_sleep),
    }


def run_cli(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``agent-node ARGS`` run in ``folder`` to its end (its effects kept
    there, no step sleep), as a user would type it."""
    return subprocess.run(
        [*CLI, *args],
        cwd=folder,
        env=child_env(folder / "effects.db", 0.0),
        capture_output=True,
        text=True,
        timeout=90,
    )


async def wait_until(
    condition: Callable[[], bool | Awaitable[bool]],
    what: str,
    *,
    timeout: float,
    interval: float = 0.02,
    alive: Sequence[Child] = (),
) -> None:
    """Poll ``condition`` until it holds; fail early when a child of ``alive`` exits."""
    deadline = time.monotonic() + timeout
    while True:
        outcome = condition()
        if not isinstance(outcome, bool):
            outcome = await outcome
        if outcome:
            return
        for child in alive:
            assert child.proc.poll() is None, f"{child.name} exited while waiting for {what}: " + (
                child.describe()
            )
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(interval)


async def killed_midway(
    spawn: Spawn,
    command: Sequence[str],
    env: dict[str, str],
    effects: Effects,
    *,
    after: int,
    bodies: int,
    timeout: float,
) -> int:
    """Run ``command`` as ``batch1`` and SIGKILL it once ``after`` node bodies
    ran (``effects`` counts them); returns how many had run, checked fewer
    than ``bodies`` (all of them: the kill came too late to test anything)."""

    def ran() -> int:
        return sum(effects.invocations().values())

    first = spawn("batch1", command, env)
    await wait_until(
        lambda: ran() >= after,
        f"{after} node bodies",
        timeout=timeout,
        interval=0.005,
        alive=[first],
    )
    first.send(signal.SIGKILL)
    assert first.wait(10) == -signal.SIGKILL
    done = ran()
    assert done < bodies, "the batch finished before the kill: nothing was tested"
    return done


def last_started(events: list[Event]) -> dict[tuple[str, int], int]:
    """The last attempt that started, per visit ``(node, visit)``, in a log."""
    last: dict[tuple[str, int], int] = {}
    for e in events:
        if e.kind == "node_started" and e.node is not None and e.visit is not None:
            last[(e.node, e.visit)] = e.attempt or 0
    return last


def assert_each_visit_once(
    effects: Effects, logs: dict[str, tuple[ExecutionRecord, list[Event]]], keys: set[str]
) -> None:
    """After a kill and a resume: each visit of ``keys`` had its effect once,
    every execution completed, no attempt ran twice and none ran after the
    one that completed."""
    assert effects.effects() == dict.fromkeys(keys, 1)
    attempts = effects.attempts()
    assert set(attempts) == keys
    for eid, (record, events) in logs.items():
        assert record.status == "completed"
        assert events[-1].kind == "execution_completed"
        for (node, visit), last in last_started(events).items():
            ran = attempts[f"{eid}/{node}/{visit}"]
            assert len(ran) == len(set(ran)), f"{eid}/{node}: one attempt ran twice: {ran}"
            assert max(ran) <= last, f"{eid}/{node} ran again after it completed: {ran} > {last}"
            assert last in ran, f"{eid}/{node}: the attempt that completed never ran: {ran}"


@asynccontextmanager
async def opened(url: str) -> AsyncIterator[Store]:
    """One open store for the whole test. (Opening a PostgreSQL store while
    workers write can deadlock with them: see ``test_pg_workers.py``.)"""
    store = store_from_url(url)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


async def read_logs(
    store: Store, ids: Sequence[str]
) -> dict[str, tuple[ExecutionRecord, list[Event]]]:
    """Each execution's record and its well-formed event log."""
    found: dict[str, tuple[ExecutionRecord, list[Event]]] = {}
    for execution_id in ids:
        record = await store.get(execution_id)
        assert record is not None, f"{execution_id} is missing"
        events = [to_event(e) for e in await store.events(execution_id)]
        assert_well_formed(events)
        found[execution_id] = (record, events)
    return found


def rounds() -> int:
    """How many rounds in a row the interop matrices run (each must pass every
    time): 3 in CI, for its time; ``AGENT_NODE_TEST_ROUNDS=5`` (or more) for
    the full repetition (bench/README.md, "Interop, repeated")."""
    return max(1, int(os.environ.get("AGENT_NODE_TEST_ROUNDS", "3")))

"""What a step costs when the state is large or keeps growing (issue 18).

    .venv/bin/python bench/state_bench.py [--stores sqlite,memory,postgres]
        [--scenarios floor,big,task,mid,append,chain,long,resume] [--wal] [--peers]
        [--json FILE]

Every (scenario, store) runs in a fresh subprocess (this file, ``_one``) with
a fresh scratch directory (or a fresh PostgreSQL database on
``$AGENT_NODE_BENCH_PG_URL``'s server); it prints one JSON line, and the
parent prints it. ``--peers`` (scenarios ``big`` and ``append``, the default
then): after ours, the same scenario on DBOS and LangGraph, each in its
venv (``bench/state_runs.py``), then one table with ratios. Scenarios:

``big``     50 sequential steps; the state holds an unchanged 1 MB string and
            a counter each step increments. 1 warm-up then 3 timed runs.
``task``    ``big`` created as an A2A task is: with a context id (which an
            index holds) and metadata (a caller, a traceparent).
``mid``     the same with a 100 KB string.
``floor``   the same with an empty string: what a step costs whatever its state.
``append``  400 sequential steps, each appending a 1 KB string to a list.
            One step node visited 400 times, so that the state is all that
            grows. 1 warm-up then 3 timed runs; the rate around step 10
            (steps 2 to 21) and at the end (the last 20), each as 1 / the
            median time between two bodies, so a machine busy with other
            work now and then shows as outliers that do not count.
``chain``   the same with 400 step nodes one after the other: the
            execution's cursor (a visit count per node visited) grows too.
``long``    one execution of 10,000 steps (one step node looping on itself)
            over a 100 KB string and a counter: the rate (as for ``append``)
            over its first and last 500 steps.
``resume``  the ``long`` workflow in a child process that SIGKILLs itself in
            the middle of step 100 (then of step 9,000, on a fresh store); a
            new process opens the store and resumes the execution: seconds
            from opening the runtime to the body of the next step running
            (the interpreter's start and imports are not counted: the same
            for both).

Timing is taken inside the steps (``perf_counter`` at each body, with
``bench/state_timing.py``, which the peers use too), so a run's
rate counts its steps and commits only, not creating the execution (which
writes its 1 MB input) nor reading the result back. ``steps/s`` is the median
over the timed runs of (steps - 1) / (last body - first body).

Bytes written per step (SQLite): the process's ``wchar`` from
``/proc/self/io`` between the first and the last step body — every byte
passed to ``write``/``pwrite``: WAL frames, and the checkpoints that copy
them into the database file (they run in the same process). With ``--wal``
the checkpoint thread is not started, so the WAL only grows: its growth
between the first and last body is what the commits appended (frames of
1 KiB pages, the store's since 02cfc75, + 24-byte headers). PostgreSQL: how
far the server's WAL insert position moved (``pg_current_wal_insert_lsn``):
WAL of the whole server, so of this run only when nothing else writes to it.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import pg_admin
from state_runs import PEER_SCENARIOS, PEERS, ours_row, peer_row, table
from state_timing import (
    APPEND_STEPS,
    BIG_BYTES,
    BIG_STEPS,
    CHUNKS,
    TIMED_RUNS,
    Runs,
    big_blob,
    rate,
    steady,
    wchar,
)

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
SCENARIOS = ("floor", "big", "task", "mid", "append", "chain", "long", "resume")
#: What an A2A task's execution carries (``task``).
TASK_METADATA = {"caller": "mtls:bench", "traceparent": f"00-{'a' * 32}-{'b' * 16}-01"}
STORES = ("sqlite", "memory", "postgres")
LONG_STEPS = 10_000
WINDOW = 500
#: Incompressible (PostgreSQL compresses what it TOASTs).
LONG_BLOB = os.urandom(50_000).hex()

#: perf_counter at each step body of the current run.
MARKS: list[float] = []
#: Readings of bytes written: at the first and at the last body of a run.
BYTES: list[int] = []
#: Reads "bytes written so far" (set per store).
READ_BYTES: Any = None
#: How many steps the current run has (the last body reads the bytes).
RUN_STEPS = 0


class Blob(BaseModel):
    blob: str = ""
    n: int = 0


class Items(BaseModel):
    items: list[str] = []


async def _mark(step: int) -> None:
    if step == 1 and READ_BYTES is not None:
        BYTES.append(await READ_BYTES())
    MARKS.append(time.perf_counter())
    if step == RUN_STEPS and READ_BYTES is not None:
        BYTES.append(await READ_BYTES())


def blob_chain(steps: int) -> Any:
    from agent_node import Workflow

    wf = Workflow(f"blob{steps}", version="1")
    wf.state(Blob)
    for i in range(steps):

        async def bump(state: Blob, _i: int = i) -> dict[str, int]:
            await _mark(_i + 1)
            return {"n": state.n + 1}

        wf.step(bump, name=f"s{i}")
    return wf.compile()


def append_loop(steps: int) -> Any:
    """One step node visited ``steps`` times, appending a line each time."""
    from agent_node import Workflow

    wf = Workflow(f"append{steps}", version="1")
    wf.state(Items)

    async def grow(state: Items) -> dict[str, list[str]]:
        done = len(state.items)
        await _mark(done + 1)
        return {"items": [*state.items, CHUNKS[done]]}

    wf.step(grow, next=lambda s: "grow" if len(s.items) < steps else None, routes=["grow"])
    return wf.compile()


def append_chain(steps: int) -> Any:
    """``steps`` step nodes one after the other, each appending a line."""
    from agent_node import Workflow

    wf = Workflow(f"chain{steps}", version="1")
    wf.state(Items)
    for i in range(steps):

        async def grow(state: Items, _i: int = i) -> dict[str, list[str]]:
            await _mark(_i + 1)
            return {"items": [*state.items, CHUNKS[_i]]}

        wf.step(grow, name=f"s{i}")
    return wf.compile()


def loop(steps: int, kill_at: int | None = None, resumed: Path | None = None) -> Any:
    """One step node looping on itself ``steps`` times. ``kill_at``: SIGKILL
    the process in that step's body; ``resumed``: write the time of the first
    body run to that file, then SIGKILL the process."""
    from agent_node import Workflow

    wf = Workflow("loop", version="1")
    wf.state(Blob)

    async def tick(state: Blob) -> dict[str, int]:
        MARKS.append(time.perf_counter())
        if resumed is not None:
            resumed.write_text(json.dumps({"at": time.perf_counter(), "n": state.n}))
            os.kill(os.getpid(), signal.SIGKILL)
        if kill_at is not None and state.n + 1 == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return {"n": state.n + 1}

    def again(state: Blob) -> str | None:
        return "tick" if state.n < steps else None

    wf.step(tick, name="tick", next=again, routes=["tick"])
    return wf.compile()


# --------------------------------------------------------------------------- stores


class Scratch:
    """A store URL for one run: a file in ``directory``, memory, or a fresh
    PostgreSQL database dropped afterwards."""

    def __init__(self, kind: str, directory: Path) -> None:
        self.kind = kind
        self.directory = directory
        self.db = directory / "state.db"
        self.base = os.environ.get("AGENT_NODE_BENCH_PG_URL") or DEFAULT_PG_URL
        self.pg_name = f"an_state_{secrets.token_hex(5)}"
        if kind == "sqlite":
            self.url = f"sqlite:///{self.db}"
        elif kind == "memory":
            self.url = "memory://"
        else:
            self.url = urlunsplit(urlsplit(self.base)._replace(path="/" + self.pg_name))

    async def __aenter__(self) -> Scratch:
        global READ_BYTES
        if self.kind == "postgres":
            await pg_admin(self.base, f'CREATE DATABASE "{self.pg_name}"')
            READ_BYTES = self._pg_wal
        elif self.kind == "sqlite":
            READ_BYTES = self._sqlite_bytes
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.kind == "postgres":
            await pg_admin(self.base, f'DROP DATABASE IF EXISTS "{self.pg_name}" WITH (FORCE)')

    async def _pg_wal(self) -> int:
        import asyncpg

        conn = await asyncpg.connect(self.base)
        try:
            lsn = "pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')"
            return int(await conn.fetchval(f"SELECT {lsn}::bigint"))
        finally:
            await conn.close()

    async def _sqlite_bytes(self) -> int:
        if WAL_ONLY:
            wal = Path(f"{self.db}-wal")
            return wal.stat().st_size if wal.exists() else 0
        return wchar()


WAL_ONLY = False


def _no_checkpoints() -> None:
    """--wal: the WAL only grows (no checkpoint copies it back and restarts it)."""
    from agent_node.store import sqlite_writer

    sqlite_writer.Writer.start_checkpoints = lambda self: None  # type: ignore[method-assign]


# --------------------------------------------------------------------------- scenarios


async def _timed_runs(
    url: str, workflow: Any, make: Any, steps: int, runs: int, task: bool = False
) -> dict[str, Any]:
    global RUN_STEPS
    from agent_node import Runtime

    RUN_STEPS = steps
    timed, walls = Runs(steps), []
    async with Runtime(url) as rt:
        for run in range(runs + 1):
            MARKS.clear()
            BYTES.clear()
            t0 = time.perf_counter()
            if task:  # as the A2A server starts one (agent_node/a2a/server/tasks.py)
                execution_id, _ = await rt.engine.submit(
                    workflow, make(run), context_id=f"ctx-{run}", metadata=TASK_METADATA
                )
                try:
                    record = await rt.engine.wait(execution_id)
                finally:
                    rt.engine.release(execution_id)
                status, error = record.status, record.error
            else:
                result = await rt.run(workflow, make(run))
                execution_id, status, error = result.execution_id, result.status, result.error
            walls.append(steps / (time.perf_counter() - t0))
            if status != "completed":
                raise RuntimeError(f"run ended {status}: {error}")
            if run == 0:
                continue  # the warm-up
            timed.add(MARKS, BYTES)
            events = await rt.store.events(execution_id)
    return {
        **timed.metrics(),
        "steps_per_s_with_create": round(statistics.median(walls[1:]), 1),
        "event_bytes": sum(len(e.data or "") for e in events),
    }


async def big(url: str, size: int, task: bool = False) -> dict[str, Any]:
    workflow = blob_chain(BIG_STEPS)
    return await _timed_runs(
        url, workflow, lambda run: Blob(blob=big_blob(size)), BIG_STEPS, TIMED_RUNS, task
    )


async def append(url: str, chain: bool) -> dict[str, Any]:
    workflow = append_chain(APPEND_STEPS) if chain else append_loop(APPEND_STEPS)
    return await _timed_runs(url, workflow, lambda run: Items(), APPEND_STEPS, TIMED_RUNS)


async def long(url: str) -> dict[str, Any]:
    from agent_node import Runtime

    MARKS.clear()
    async with Runtime(url) as rt:
        result = await rt.run(loop(LONG_STEPS), Blob(blob=LONG_BLOB))
    if result.status != "completed" or result.state.n != LONG_STEPS:
        raise RuntimeError(f"long run ended {result.status} at {result.state.n}")
    return {
        "steps_per_s": round(rate(MARKS), 1),
        "first_500": round(steady(MARKS[:WINDOW]), 1),
        "last_500": round(steady(MARKS[-WINDOW:]), 1),
        "event_rows": len(result.events),
    }


async def resume(kind: str, directory: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kill_at in (100, 9_000):
        run_dir = directory / f"at{kill_at}"
        run_dir.mkdir()
        async with Scratch(kind, run_dir) as scratch:
            first = _child("_first", scratch.url, str(kill_at), run_dir)
            if first.returncode != -signal.SIGKILL:
                raise RuntimeError(f"the first run was not killed: {first.stderr[-2000:]}")
            times = []
            for attempt in range(3):
                marker = run_dir / f"resumed{attempt}.json"
                again = _child("_again", scratch.url, str(marker), run_dir)
                if again.returncode != -signal.SIGKILL or not marker.exists():
                    raise RuntimeError(f"the resumed run failed: {again.stderr[-2000:]}")
                seen = json.loads(marker.read_text())
                opened = json.loads((run_dir / "opened.json").read_text())["at"]
                if seen["n"] != kill_at - 1:
                    raise RuntimeError(f"resumed at n={seen['n']}, not {kill_at - 1}")
                times.append(seen["at"] - opened)
        out[f"resume_s_at_{kill_at}"] = round(statistics.median(times), 4)
    return out


def _child(role: str, url: str, arg: str, directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, __file__, role, url, arg, str(directory)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )


async def first_run(url: str, kill_at: int, directory: Path) -> None:
    from agent_node import Runtime

    async with Runtime(url) as rt:
        eid = await rt.start_execution(loop(LONG_STEPS, kill_at=kill_at), Blob(blob=LONG_BLOB))
        (directory / "execution.json").write_text(json.dumps(eid))
        await rt.engine.wait(eid)


async def resumed_run(url: str, marker: Path, directory: Path) -> None:
    from agent_node import Runtime

    eid = json.loads((directory / "execution.json").read_text())
    workflow = loop(LONG_STEPS, resumed=marker)
    (directory / "opened.json").write_text(json.dumps({"at": time.perf_counter()}))
    async with Runtime(url) as rt:
        await rt.run(workflow, execution_id=eid)


async def one(scenario: str, kind: str, directory: Path) -> dict[str, Any]:
    if scenario == "resume":
        return await resume(kind, directory)
    async with Scratch(kind, directory) as scratch:
        if scenario in ("big", "task"):
            return await big(scratch.url, BIG_BYTES, task=scenario == "task")
        if scenario == "mid":
            return await big(scratch.url, 100_000)
        if scenario == "floor":
            return await big(scratch.url, 0)
        if scenario in ("append", "chain"):
            return await append(scratch.url, scenario == "chain")
        return await long(scratch.url)


# --------------------------------------------------------------------------- parent


def main() -> None:
    global WAL_ONLY
    if len(sys.argv) > 1 and sys.argv[1] in ("_one", "_first", "_again"):
        role, *args = sys.argv[1:]
        if role == "_one":
            scenario, kind, directory, wal = args
            WAL_ONLY = wal == "1"
            if WAL_ONLY:
                _no_checkpoints()
            print(json.dumps(asyncio.run(one(scenario, kind, Path(directory)))))
        elif role == "_first":
            asyncio.run(first_run(args[0], int(args[1]), Path(args[2])))
        else:
            asyncio.run(resumed_run(args[0], Path(args[1]), Path(args[2])))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stores", default=",".join(STORES))
    parser.add_argument(
        "--scenarios", help=f"default: {','.join(SCENARIOS)}; with --peers, big,append"
    )
    parser.add_argument("--wal", action="store_true", help="SQLite: WAL growth, no checkpoints")
    parser.add_argument("--peers", action="store_true", help="big, append: DBOS and LangGraph too")
    parser.add_argument("--json", type=Path)
    ns = parser.parse_args()
    scenarios = ns.scenarios or ",".join(PEER_SCENARIOS if ns.peers else SCENARIOS)
    rows = []
    for scenario in scenarios.split(","):
        runs = [
            functools.partial(ours_row, Path(__file__), scenario, kind, ns.wal)
            for kind in ns.stores.split(",")
            if not (scenario == "resume" and kind == "memory")
        ]
        if ns.peers and scenario in PEER_SCENARIOS:
            runs += [functools.partial(peer_row, system, scenario) for system in PEERS]
        for run in runs:
            row = run()
            print(json.dumps(row), flush=True)
            rows.append(row)
    if ns.peers:
        print(table(rows))
    if ns.json is not None:
        ns.json.parent.mkdir(parents=True, exist_ok=True)
        ns.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()

"""The parts of pg_bench.py: each measured in fresh processes on a fresh database.

``ours`` and ``workers`` run agent-node in child processes of
:data:`SCRIPT` (``pg_bench.py _ours SCENARIO`` / ``_worker URL``), which
puts the agent-node measured — this checkout's, or ``--before``'s — first
on ``sys.path``; the child side of each part is here too
(:func:`ours_child`, :func:`worker_child`). ``dbos`` runs the peers' DBOS
benchmark, ``floor`` runs ``pgbench``. What each part measures is said in
pg_bench.py's doc. Apart from the script because running the parts is one
concern, choosing them and reporting the rounds another.

Imported by pg_bench.py once it has put ``bench/`` on ``sys.path``
(``common``, ``ours``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import (
    CONC_RUNS,
    CONC_STEPS,
    CONC_WORKFLOWS,
    SEQ_RUNS,
    SEQ_STEPS,
    conc_metrics,
    seq_metrics,
)
from ours import PgDatabase, build_workflows
from pg_probes import ServerCpu, Statements  # this script's directory is on sys.path

BENCH = Path(__file__).resolve().parents[1]
ROOT = BENCH.parent
#: The script the children run as (it puts the agent-node measured first on sys.path).
SCRIPT = Path(__file__).resolve().with_name("pg_bench.py")
PEERS_PYTHON = BENCH / ".venv-peers" / "bin" / "python"
DBOS = (str(PEERS_PYTHON), str(BENCH / "peers" / "dbos_bench.py"))
EXECUTIONS = 5000
STEPS = 5
FLOOR_SECONDS = 5


# -- children -------------------------------------------------------------------


async def ours_child(scenario: str) -> dict[str, Any]:
    """One scenario of ours on a fresh database, counted from the first
    timed run on (run in a child). The same workflows, warm-ups and sizes
    as ``bench/ours.py``."""
    from agent_node import Runtime

    counter = Statements()
    counter.install()
    seq, conc, _wait, state = build_workflows()
    runs: list[float] = []
    async with PgDatabase() as pg, Runtime(pg.url) as rt:
        if scenario == "seq200":
            steps = SEQ_RUNS * SEQ_STEPS
            await rt.run(seq, state())  # warm-up
            client, server = _begin(counter, pg.name)
            for _ in range(SEQ_RUNS):
                t0 = time.perf_counter()
                result = await rt.run(seq, state())
                runs.append(time.perf_counter() - t0)
                assert result.status == "completed", result.status
        else:
            steps = CONC_RUNS * CONC_STEPS * CONC_WORKFLOWS
            await asyncio.gather(*(rt.run(conc, state()) for _ in range(20)))  # warm-up
            client, server = _begin(counter, pg.name)
            for _ in range(CONC_RUNS):
                t0 = time.perf_counter()
                done = await asyncio.gather(*(rt.run(conc, state()) for _ in range(CONC_WORKFLOWS)))
                runs.append(time.perf_counter() - t0)
                assert all(r.status == "completed" for r in done)
        cpu_client = time.process_time() - client
        cpu_server = server.seconds()
    metrics = seq_metrics(runs) if scenario == "seq200" else conc_metrics(runs)
    metrics.update(counter.per_step(steps))
    metrics["client_cpu_ms_per_step"] = round(1000 * cpu_client / steps, 4)
    metrics["server_cpu_ms_per_step"] = round(1000 * cpu_server / steps, 4)
    metrics["server_cpu_pct"] = round(100 * cpu_server / sum(runs), 1)
    return metrics


def _begin(counter: Statements, database: str) -> tuple[float, ServerCpu]:
    """Start counting: the client's CPU seconds so far, the server's from now."""
    counter.reset()
    return time.process_time(), ServerCpu(database)


async def worker_child(url: str, wait: float = 0.0) -> None:
    """A worker process: opens its runtime, waits for ``go`` on stdin,
    drains, and on ``stop`` prints what it did. ``wait``: each step waits
    that many seconds (as a step calling a model or a service does) instead
    of returning at once."""
    from agent_node import Runtime

    counter = Statements()
    counter.install()
    _seq, conc, _wait, _state = build_workflows()
    runtime = Runtime(url, scope="all")
    runtime.workflows.add(waiting(conc, wait) if wait > 0 else conc)
    await runtime.store.open()
    loop = asyncio.get_running_loop()
    print("ready", flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)
    counter.reset()
    cpu = time.process_time()
    await runtime.start()
    await loop.run_in_executor(None, sys.stdin.readline)
    cpu = time.process_time() - cpu
    await runtime.close()
    out = {"cpu_s": cpu, "statements": counter.statements, "round_trips": counter.round_trips}
    out["begin_commit"] = counter.begin_commit
    print(json.dumps(out), flush=True)


def waiting(workflow: Any, seconds: float) -> Any:
    """``workflow`` (the 5-step one: the executions :func:`create_child`
    made run on it) with steps that each wait ``seconds``."""

    async def wait(state: Any) -> None:
        await asyncio.sleep(seconds)

    return dataclasses.replace(workflow, functions=dict.fromkeys(workflow.functions, wait))


# -- parts ----------------------------------------------------------------------


def code_env(code: Path) -> dict[str, str]:
    """The environment of a child that imports agent-node from ``code``."""
    inherited = os.environ.get("PYTHONPATH")
    path = f"{code}{os.pathsep}{inherited}" if inherited else str(code)
    return {**os.environ, "PYTHONPATH": path, "PG_BENCH_CODE": str(code)}


def run_ours(scenario: str, code: Path = ROOT) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "_ours", scenario],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env=code_env(code),
    )
    if out.returncode != 0:
        return {"error": out.stderr[-2000:]}
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def run_dbos(scenario: str) -> dict[str, Any]:
    if not PEERS_PYTHON.exists():
        return {"unavailable": "no bench/.venv-peers: run python3 bench/setup_peers.py"}

    async def go() -> dict[str, Any]:
        async with PgDatabase() as pg:
            scratch = tempfile.mkdtemp(prefix="pgbench-dbos-")
            server = ServerCpu(pg.name)
            sampler = asyncio.create_task(_sample(server))
            try:
                out = await asyncio.to_thread(
                    subprocess.run,
                    [
                        *DBOS,
                        scenario,
                        "--variant",
                        "pg-async",
                        "--pg-url",
                        pg.url,
                        "--dir",
                        scratch,
                    ],
                    capture_output=True,
                    text=True,
                    timeout=900,
                    cwd=scratch,
                    env={k: v for k, v in os.environ.items() if not k.startswith("DBOS")},
                )
            finally:
                sampler.cancel()
                shutil.rmtree(scratch, ignore_errors=True)
            cpu = server.seconds()
            if out.returncode != 0:
                return {"error": out.stderr[-2000:]}
            row = json.loads(out.stdout.strip().splitlines()[-1])
            metrics = dict(row["metrics"])
            metrics["server_cpu_s_whole_run"] = round(cpu, 2)
            metrics["versions"] = row.get("versions")
            return metrics

    return asyncio.run(go())


async def _sample(server: ServerCpu) -> None:
    while True:
        server.sample()
        await asyncio.sleep(0.1)


def run_floor() -> dict[str, Any]:
    pgbench = shutil.which("pgbench")
    if pgbench is None:
        return {"unavailable": "pgbench is not installed"}

    async def go() -> dict[str, Any]:
        async with PgDatabase() as pg:
            import asyncpg

            conn = await asyncpg.connect(pg.url)
            await conn.execute("CREATE TABLE floor (id bigserial PRIMARY KEY, payload text)")
            await conn.close()
            with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as script:
                script.write("INSERT INTO floor (payload) VALUES (repeat('x', 128));\n")
            result: dict[str, Any] = {}
            try:
                for clients in (1, 8):
                    out = await asyncio.to_thread(
                        subprocess.run,
                        [
                            pgbench,
                            "-n",
                            "-f",
                            script.name,
                            "-c",
                            str(clients),
                            "-j",
                            "2",
                            "-T",
                            str(FLOOR_SECONDS),
                            pg.url,
                        ],
                        capture_output=True,
                        text=True,
                        timeout=120,
                    )
                    tps = [ln for ln in out.stdout.splitlines() if ln.startswith("tps")]
                    result[f"commits_per_s_{clients}_clients"] = (
                        float(tps[0].split()[2]) if tps else out.stderr[-500:]
                    )
            finally:
                os.unlink(script.name)
            return result

    return asyncio.run(go())


async def create_child(url: str) -> None:
    """Make the store of ``url`` (its schema as this child's agent-node makes
    it) holding :data:`EXECUTIONS` executions of the 5-step workflow, unleased."""
    from agent_node.engine.control import Control
    from agent_node.engine.registry import WorkflowRegistry
    from agent_node.nodes import default_executors
    from agent_node.store import store_from_url

    _seq, conc, _wait, state = build_workflows()
    store = store_from_url(url)
    await store.open()
    try:
        control = Control(store, WorkflowRegistry(), default_executors())
        for _ in range(0, EXECUTIONS, 500):
            await asyncio.gather(*(control.create(conc, state()) for _ in range(500)))
    finally:
        await store.close()


def run_workers(count: int, code: Path, wait: float = 0.0) -> dict[str, Any]:
    """``count`` workers drain :data:`EXECUTIONS` executions; ``wait``: each
    step waits that many seconds (:func:`worker_child`)."""

    async def go() -> dict[str, Any]:
        from agent_node.store import store_from_url

        async with PgDatabase() as pg:
            # Made by the agent-node measured (--before's schema is its own).
            made = await asyncio.create_subprocess_exec(
                sys.executable, str(SCRIPT), "_create", pg.url, cwd=ROOT, env=code_env(code)
            )
            if await made.wait() != 0:
                raise RuntimeError(f"creating the executions failed ({made.returncode})")
            store = store_from_url(pg.url)
            await store.open()
            try:
                return await _drain(pg, store, count, code, wait)
            finally:
                await store.close()

    return asyncio.run(go())


async def _drain(pg: PgDatabase, store: Any, count: int, code: Path, wait: float) -> dict[str, Any]:
    workers = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            str(SCRIPT),
            "_worker",
            pg.url,
            str(wait),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=ROOT,
            env=code_env(code),
        )
        for _ in range(count)
    ]
    try:
        for worker in workers:
            assert worker.stdout is not None
            line = await worker.stdout.readline()
            assert line.strip() == b"ready", line
        server, t0 = ServerCpu(pg.name), time.perf_counter()
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write(b"go\n")
            await worker.stdin.drain()
        while await store.count_executions(status=["completed"]) < EXECUTIONS:
            await asyncio.sleep(0.05)
        wall = time.perf_counter() - t0
        cpu = server.seconds()
        stats = []
        for worker in workers:
            assert worker.stdin is not None and worker.stdout is not None
            worker.stdin.write(b"stop\n")
            await worker.stdin.drain()
            stats.append(json.loads((await worker.stdout.readline()).decode()))
            await worker.wait()
    finally:
        for worker in workers:
            if worker.returncode is None:
                worker.kill()
                await worker.wait()
    steps = EXECUTIONS * STEPS
    statements = sum(s["statements"] for s in stats)
    round_trips = sum(s["round_trips"] for s in stats)
    return {
        "workers": count,
        "steps_per_s": round(steps / wall, 1),
        "wall_s": round(wall, 2),
        "server_cpu_pct": round(100 * cpu / wall, 1),
        "server_cpu_ms_per_step": round(1000 * cpu / steps, 4),
        "worker_cpu_ms_per_step": round(1000 * sum(s["cpu_s"] for s in stats) / steps, 4),
        "statements_per_step": round(statements / steps, 3),
        "round_trips_per_step": round(round_trips / steps, 3),
    }

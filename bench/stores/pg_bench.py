"""agent-node and DBOS on one PostgreSQL server, with the server's floors.

    .venv/bin/python bench/stores/pg_bench.py                       # everything, 2 rounds
    .venv/bin/python bench/stores/pg_bench.py --parts ours,dbos --rounds 3 \
        --json bench/results/pg.json

Every measurement runs in a fresh process on a fresh database, created on
the server of ``$AGENT_NODE_BENCH_PG_URL`` (default
``postgresql://postgres@127.0.0.1:5432/test``) and dropped afterwards. The
parts run in rounds, interleaved (ours, DBOS, floors, workers; then again),
so drift on a shared machine hits every row alike.

Parts:

``ours``     seq200 and conc200 of ``bench/ours.py`` (same workflows, warm-ups
             and medians) on ``postgresql://``. The child counts what the
             store sends PostgreSQL, client-side (asyncpg's ``execute``,
             ``fetch*``: one statement and one round trip each;
             ``executemany``: one round trip, one statement per row;
             ``BEGIN``/``COMMIT`` are round trips of their own, counted
             apart) over the timed runs, everything included (creating
             each execution, reading its result back); and the CPU time of
             the client process and of the server's processes (the
             backends of the run's database and the background processes,
             from ``/proc``: :class:`ServerCpu`) per step.
``dbos``     ``bench/peers/dbos_bench.py --variant pg-async`` (DBOS 3.4,
             async workflows and steps) with its system database on a fresh
             database of the same server, in the peers' venv
             (``bench/setup_peers.py``). Server CPU is over the child's
             whole run (start-up and warm-ups included), sampled every 0.1 s.
``floor``    ``pgbench`` on a fresh database: one ``INSERT`` of a 128-byte
             row per transaction (autocommit), 1 client and 8 clients, 5 s
             each: what the server commits when nothing else runs.
``workers``  5,000 executions of the 5-step workflow created unleased, then
             1 or 2 worker processes (``Runtime(url, scope="all")``, the
             engine's defaults) started at one signal, timed until the last
             execution completed (the parent polls a count every 50 ms);
             steps/s, and the server's CPU over that window as % of one core.

The machine's other load matters: the report prints the load average
before each part.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parents[1]
ROOT = BENCH.parent
#: The agent-node measured: this checkout's (a worktree's too), unless
#: ``$PG_BENCH_CODE`` names another (``--before``).
CODE = Path(os.environ.get("PG_BENCH_CODE") or ROOT)
sys.path[:0] = [str(CODE), str(BENCH)]
from common import (  # noqa: E402
    CONC_RUNS,
    CONC_STEPS,
    CONC_WORKFLOWS,
    SEQ_RUNS,
    SEQ_STEPS,
    conc_metrics,
    log,
    seq_metrics,
)
from ours import DEFAULT_PG_URL, PgDatabase, build_workflows  # noqa: E402

PEERS_PYTHON = BENCH / ".venv-peers" / "bin" / "python"
DBOS = (str(PEERS_PYTHON), str(BENCH / "peers" / "dbos_bench.py"))
EXECUTIONS = 5000
STEPS = 5
FLOOR_SECONDS = 5


# -- measuring ------------------------------------------------------------------


class ServerCpu:
    """CPU seconds the PostgreSQL server spends for ``database`` from now on:
    its backends (told apart by their process title, ``postgres: user
    database host(port) …``) and the server's background processes (WAL
    writer, checkpointer…: shared with other databases, so an upper bound).
    Other databases' backends — another session's tests on the same server —
    are left out. Read from ``/proc``; :meth:`sample` while backends come and
    go (a backend that exits between samples loses its last moments)."""

    def __init__(self, database: str) -> None:
        self.database = database
        self._start = self._read()
        self._last = dict(self._start)

    def _read(self) -> dict[int, float]:
        tick = os.sysconf("SC_CLK_TCK")
        found: dict[int, float] = {}
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/stat") as f:
                    stat = f.read()
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    title = f.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if not stat[stat.index("(") + 1 : stat.rindex(")")].startswith("postgres"):
                continue
            if not title.startswith("postgres: "):
                continue  # the postmaster itself
            backend = "(" in title or "[local]" in title
            if backend and f" {self.database} " not in title:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            found[int(pid)] = (int(fields[11]) + int(fields[12])) / tick
        return found

    def sample(self) -> None:
        self._last.update(self._read())

    def seconds(self) -> float:
        self.sample()
        return sum(cpu - self._start.get(pid, 0.0) for pid, cpu in self._last.items())


def loadavg() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


class Statements:
    """What asyncpg sends, counted client-side (see the module doc)."""

    def __init__(self) -> None:
        self.by_text: collections.Counter[str] = collections.Counter()
        self.statements = 0
        self.round_trips = 0
        self.begin_commit = 0

    def install(self) -> None:
        from asyncpg.connection import Connection

        for name in ("execute", "fetch", "fetchrow", "fetchval", "executemany"):
            self._wrap(Connection, name)

    def _wrap(self, cls: Any, name: str) -> None:
        original = getattr(cls, name)
        counter = self

        async def counted(conn: Any, query: str, *args: Any, **kwargs: Any) -> Any:
            counter.round_trips += 1
            head = query.split(None, 1)[0].upper() if query.strip() else ""
            if head in ("BEGIN", "COMMIT", "ROLLBACK", "BEGIN;", "COMMIT;"):
                counter.begin_commit += 1
            else:
                rows = len(args[0]) if name == "executemany" and args else 1
                counter.statements += rows
                counter.by_text[" ".join(query.split())[:70]] += rows
            return await original(conn, query, *args, **kwargs)

        setattr(cls, name, counted)

    def reset(self) -> None:
        self.__init__()  # type: ignore[misc]

    def per_step(self, steps: int) -> dict[str, Any]:
        return {
            "statements_per_step": round(self.statements / steps, 3),
            "round_trips_per_step": round((self.statements_rt() + self.begin_commit) / steps, 3),
            "begin_commit_per_step": round(self.begin_commit / steps, 3),
            "top_statements": dict(self.by_text.most_common(6)),
        }

    def statements_rt(self) -> int:
        return self.round_trips - self.begin_commit


# -- children -------------------------------------------------------------------


async def _ours_child(scenario: str) -> dict[str, Any]:
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


async def _worker_child(url: str) -> None:
    """A worker process: opens its runtime, waits for ``go`` on stdin,
    drains, and on ``stop`` prints what it did."""
    from agent_node import Runtime

    counter = Statements()
    counter.install()
    _seq, conc, _wait, _state = build_workflows()
    runtime = Runtime(url, scope="all")
    runtime.workflows.add(conc)
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


# -- parts ----------------------------------------------------------------------


def code_env(code: Path) -> dict[str, str]:
    """The environment of a child that imports agent-node from ``code``."""
    inherited = os.environ.get("PYTHONPATH")
    path = f"{code}{os.pathsep}{inherited}" if inherited else str(code)
    return {**os.environ, "PYTHONPATH": path, "PG_BENCH_CODE": str(code)}


def run_ours(scenario: str, code: Path = ROOT) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "_ours", scenario],
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


def run_workers(count: int, code: Path = CODE) -> dict[str, Any]:
    async def go() -> dict[str, Any]:
        from agent_node.engine.control import Control
        from agent_node.engine.registry import WorkflowRegistry
        from agent_node.nodes import default_executors
        from agent_node.store import store_from_url

        _seq, conc, _wait, state = build_workflows()
        async with PgDatabase() as pg:
            store = store_from_url(pg.url)
            await store.open()
            try:
                control = Control(store, WorkflowRegistry(), default_executors())
                for start in range(0, EXECUTIONS, 500):
                    await asyncio.gather(
                        *(control.create(conc, state()) for _ in range(start, start + 500))
                    )
                return await _drain(pg, store, count, code)
            finally:
                await store.close()

    return asyncio.run(go())


async def _drain(pg: PgDatabase, store: Any, count: int, code: Path) -> dict[str, Any]:
    workers = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "_worker",
            pg.url,
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


# -- main -----------------------------------------------------------------------


def main() -> None:
    if len(sys.argv) >= 3 and sys.argv[1] == "_ours":
        print(json.dumps(asyncio.run(_ours_child(sys.argv[2]))), flush=True)
        return
    if len(sys.argv) >= 3 and sys.argv[1] == "_worker":
        asyncio.run(_worker_child(sys.argv[2]))
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--parts", default="ours,dbos,floor,workers")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--json", help="also write every row to this file")
    ap.add_argument(
        "--before",
        type=Path,
        help="also run the ours and workers parts on the agent-node of this directory (say,"
        " the base commit exported with git archive), in the same rounds: parts"
        " ours-before, workers-before",
    )
    args = ap.parse_args()
    parts = args.parts.split(",")
    log(f"server: {os.environ.get('AGENT_NODE_BENCH_PG_URL') or DEFAULT_PG_URL}")
    rows: list[dict[str, Any]] = []

    def record(part: str, scenario: str, result: dict[str, Any], round_: int) -> None:
        row = {"part": part, "scenario": scenario, "round": round_, "load": loadavg(), **result}
        rows.append(row)
        print(json.dumps(row), flush=True)

    for round_ in range(1, args.rounds + 1):
        for scenario in ("seq200", "conc200"):
            if "ours" in parts:
                record("ours", scenario, run_ours(scenario), round_)
            if "ours" in parts and args.before is not None:
                record("ours-before", scenario, run_ours(scenario, args.before.resolve()), round_)
            if "dbos" in parts:
                record("dbos", scenario, run_dbos(scenario), round_)
        if "floor" in parts:
            record("floor", "pgbench", run_floor(), round_)
        if "workers" in parts:
            for count in (1, 2) if round_ % 2 else (2, 1):
                record("workers", f"{count}x{EXECUTIONS}", run_workers(count), round_)
                if args.before is not None:
                    before = run_workers(count, args.before.resolve())
                    record("workers-before", f"{count}x{EXECUTIONS}", before, round_)
    _summary(rows)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rows, indent=1))


def _summary(rows: list[dict[str, Any]]) -> None:
    def med(part: str, scenario: str, key: str) -> float | None:
        values = [r[key] for r in rows if (r["part"], r["scenario"]) == (part, scenario)]
        values = [v for v in values if isinstance(v, int | float)]
        return statistics.median(values) if values else None

    log("\nmedians over rounds:")
    for part, scenario, key in (
        ("ours-before", "seq200", "steps_per_s"),
        ("ours-before", "conc200", "steps_per_s"),
        ("ours-before", "seq200", "statements_per_step"),
        ("ours-before", "conc200", "statements_per_step"),
        ("ours", "seq200", "steps_per_s"),
        ("dbos", "seq200", "steps_per_s"),
        ("ours", "conc200", "steps_per_s"),
        ("dbos", "conc200", "steps_per_s"),
        ("ours", "seq200", "statements_per_step"),
        ("ours", "conc200", "statements_per_step"),
        ("ours", "seq200", "round_trips_per_step"),
        ("ours", "conc200", "round_trips_per_step"),
        ("ours", "seq200", "server_cpu_ms_per_step"),
        ("ours", "conc200", "server_cpu_ms_per_step"),
        ("ours", "seq200", "client_cpu_ms_per_step"),
        ("ours", "conc200", "client_cpu_ms_per_step"),
        ("floor", "pgbench", "commits_per_s_1_clients"),
        ("floor", "pgbench", "commits_per_s_8_clients"),
        ("workers", f"1x{EXECUTIONS}", "steps_per_s"),
        ("workers", f"2x{EXECUTIONS}", "steps_per_s"),
        ("workers-before", f"1x{EXECUTIONS}", "steps_per_s"),
        ("workers-before", f"2x{EXECUTIONS}", "steps_per_s"),
        ("workers-before", f"1x{EXECUTIONS}", "server_cpu_pct"),
        ("workers-before", f"2x{EXECUTIONS}", "server_cpu_pct"),
        ("workers", f"1x{EXECUTIONS}", "server_cpu_pct"),
        ("workers", f"2x{EXECUTIONS}", "server_cpu_pct"),
    ):
        log(f"  {part:11} {scenario:10} {key:24} {med(part, scenario, key)}")
    for part in ("workers", "workers-before"):
        one = med(part, f"1x{EXECUTIONS}", "steps_per_s")
        two = med(part, f"2x{EXECUTIONS}", "steps_per_s")
        if one and two:
            log(f"  {part}: 2 workers / 1 worker: {two / one:.2f}x")
        worker = med(part, f"1x{EXECUTIONS}", "worker_cpu_ms_per_step")
        server = med(part, f"1x{EXECUTIONS}", "server_cpu_ms_per_step")
        if worker and server:
            # What this machine could do with every core on the drain and
            # nothing else running: the figure 2 workers are bound by.
            cores = os.cpu_count() or 1
            ceiling = 1000 * cores / (worker + server)
            log(
                f"  {part}: {worker + server:.3f} ms of CPU per step (worker {worker:.3f},"
                f" server {server:.3f}): at most {ceiling:,.0f} steps/s on {cores} cores"
            )


if __name__ == "__main__":
    main()

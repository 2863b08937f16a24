"""agent-node and DBOS on one PostgreSQL server, with the server's floors.

    .venv/bin/python bench/stores/pg_bench.py                       # everything, 2 rounds
    .venv/bin/python bench/stores/pg_bench.py --parts ours,dbos --rounds 3 \
        --json bench/results/pg.json
    .venv/bin/python bench/stores/pg_bench.py --parts workers --step-wait 200

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
``workers``  5,000 executions of the 5-step workflow created unleased (by a
             child of the agent-node measured: ``--before`` makes its own
             schema), then
             1 or 2 worker processes (``Runtime(url, scope="all")``, the
             engine's defaults) started at one signal, timed until the last
             execution completed (the parent polls a count every 50 ms);
             steps/s, and the server's CPU over that window as % of one core.
             ``--step-wait MS``: each step waits MS ms (as a step calling a
             model or a service does) instead of returning at once, so that
             a worker is bound by the visits it runs at once (512), not by
             the cores: whether a second worker adds what the first does
             while the server has CPU to spare (scenario ``NxE-waitMSms``).

The machine's other load matters: the report prints the load average
before each part.

The parts are run by :mod:`pg_parts`, measured with :mod:`pg_probes`; this
script chooses them, runs them in rounds and reports the medians.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parents[1]
ROOT = BENCH.parent
#: The agent-node measured: this checkout's (a worktree's too), unless
#: ``$PG_BENCH_CODE`` names another (``--before``).
CODE = Path(os.environ.get("PG_BENCH_CODE") or ROOT)
sys.path[:0] = [str(CODE), str(BENCH)]
from common import log  # noqa: E402
from ours import DEFAULT_PG_URL  # noqa: E402
from pg_parts import (  # noqa: E402 - this script's directory is on sys.path
    EXECUTIONS,
    create_child,
    ours_child,
    run_dbos,
    run_floor,
    run_ours,
    run_workers,
    worker_child,
)
from pg_probes import loadavg  # noqa: E402

# -- main -----------------------------------------------------------------------


def main() -> None:
    if len(sys.argv) >= 3 and sys.argv[1] == "_ours":
        print(json.dumps(asyncio.run(ours_child(sys.argv[2]))), flush=True)
        return
    if len(sys.argv) >= 3 and sys.argv[1] == "_worker":
        asyncio.run(worker_child(sys.argv[2], float(sys.argv[3]) if len(sys.argv) > 3 else 0.0))
        return
    if len(sys.argv) >= 3 and sys.argv[1] == "_create":
        asyncio.run(create_child(sys.argv[2]))
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
    ap.add_argument(
        "--step-wait",
        type=float,
        default=0.0,
        metavar="MS",
        help="in the workers part, each step waits MS milliseconds (as a model call"
        " does) instead of returning at once",
    )
    args = ap.parse_args()
    parts = args.parts.split(",")
    log(f"server: {os.environ.get('AGENT_NODE_BENCH_PG_URL') or DEFAULT_PG_URL}")
    rows: list[dict[str, Any]] = []
    wait = args.step_wait / 1000
    #: The workers' scenario: its steps waiting or not.
    drain = f"-wait{args.step_wait:g}ms" if wait > 0 else ""

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
                done = run_workers(count, CODE, wait)
                record("workers", f"{count}x{EXECUTIONS}{drain}", done, round_)
                if args.before is not None:
                    before = run_workers(count, args.before.resolve(), wait)
                    record("workers-before", f"{count}x{EXECUTIONS}{drain}", before, round_)
    _summary(rows, drain)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rows, indent=1))


def _summary(rows: list[dict[str, Any]], drain: str = "") -> None:
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
        ("workers", f"1x{EXECUTIONS}{drain}", "steps_per_s"),
        ("workers", f"2x{EXECUTIONS}{drain}", "steps_per_s"),
        ("workers-before", f"1x{EXECUTIONS}{drain}", "steps_per_s"),
        ("workers-before", f"2x{EXECUTIONS}{drain}", "steps_per_s"),
        ("workers-before", f"1x{EXECUTIONS}{drain}", "server_cpu_pct"),
        ("workers-before", f"2x{EXECUTIONS}{drain}", "server_cpu_pct"),
        ("workers", f"1x{EXECUTIONS}{drain}", "server_cpu_pct"),
        ("workers", f"2x{EXECUTIONS}{drain}", "server_cpu_pct"),
    ):
        log(f"  {part:11} {scenario:10} {key:24} {med(part, scenario, key)}")
    for part in ("workers", "workers-before"):
        one = med(part, f"1x{EXECUTIONS}{drain}", "steps_per_s")
        two = med(part, f"2x{EXECUTIONS}{drain}", "steps_per_s")
        if one and two:
            log(f"  {part}: 2 workers / 1 worker: {two / one:.2f}x")
        worker = med(part, f"1x{EXECUTIONS}{drain}", "worker_cpu_ms_per_step")
        server = med(part, f"1x{EXECUTIONS}{drain}", "server_cpu_ms_per_step")
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

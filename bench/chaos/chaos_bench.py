"""The chaos run, longer: A -> B -> C over mutual TLS while nodes are SIGKILLed.

    .venv/bin/python bench/chaos/chaos_bench.py [--duration 300] [--store both] \
        [--seed 1] [--in-flight 20] [--json bench/results/chaos.json]

Runs the scenario of ``tests/e2e/test_chaos.py`` (``tests/e2e/chaos.py``:
real ``agent-node serve`` processes, a random one SIGKILLed every 2-5 s and
started again, ``--in-flight`` tasks kept in flight against A) for
``--duration`` seconds, on SQLite (A one process) and/or with A as
``--replicas`` processes on one PostgreSQL database (a fresh database
created on ``$AGENT_NODE_BENCH_PG_URL``'s server, else
``$AGENT_NODE_TEST_PG_URL``'s, and dropped afterwards), and prints each
run's table: tasks, kills, completed, failed, lost, duplicated, and the
time for the last task to finish after the last kill. Targets: 0 failed,
0 lost, 0 duplicated. The exit status is 1 when a run misses them; its
folder (node logs, stores) is kept then, and with ``--keep``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import secrets
import shutil
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from e2e.chaos import ChaosConfig, ChaosResult, run_chaos  # noqa: E402

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


async def _admin(url: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _run(config: ChaosConfig, root: Path) -> ChaosResult:
    if config.store != "postgres":
        return await run_chaos(config, root)
    admin = os.environ.get("AGENT_NODE_BENCH_PG_URL") or os.environ.get(
        "AGENT_NODE_TEST_PG_URL", DEFAULT_PG_URL
    )
    name = f"an_chaos_{secrets.token_hex(6)}"
    url = urlunsplit(urlsplit(admin)._replace(path="/" + name))
    await _admin(admin, f'CREATE DATABASE "{name}"')
    try:
        return await run_chaos(dataclasses.replace(config, pg_url=url), root)
    finally:
        await _admin(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=300.0, help="seconds of kills")
    parser.add_argument("--store", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--replicas", type=int, default=2, help="processes of A on PostgreSQL")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--in-flight", type=int, default=20)
    parser.add_argument("--kill-every", default="2,5", help="seconds between kills: MIN,MAX")
    parser.add_argument("--finish-timeout", type=float, default=600.0)
    parser.add_argument("--keep", action="store_true", help="keep each run's folder")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    low, high = (float(x) for x in args.kill_every.split(","))
    stores = ["sqlite", "postgres"] if args.store == "both" else [args.store]
    scratch = ROOT / "bench" / "results" / "tmp"
    scratch.mkdir(parents=True, exist_ok=True)
    results, ok = [], True
    for store in stores:
        config = ChaosConfig(
            store=store,
            replicas=args.replicas if store == "postgres" else 1,
            duration=args.duration,
            kill_every=(low, high),
            in_flight=args.in_flight,
            seed=args.seed,
            finish_timeout=args.finish_timeout,
        )
        root = Path(tempfile.mkdtemp(prefix=f"chaos-{store}-", dir=scratch))
        result = asyncio.run(_run(config, root))
        print(result.table(), flush=True)
        print(f"  last kills (s from the start, node): {result.kill_log[-3:]}")
        print("  last tasks to end (name, A's task, sent at, ended at):")
        for task in result.last[-3:]:
            print(f"    {task}")
        for problem in result.problems[:20]:
            print("  " + problem[:2000])
        if result.ok and not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"  (logs and stores kept in {root})")
        ok = ok and result.ok
        results.append(result.as_dict())
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()

"""DBOS Transact on a SQLite system database (no PostgreSQL, no network).

    python bench/peers/dbos_bench.py <seq200|conc200|wait2000|import|big|append>
        [--variant async|sync|pg-async|pg-sync] [--pg-url URL] --dir TMPDIR

DBOS is configured with ``system_database_url="sqlite:///<dir>/dbos.sqlite"``
(DBOS >= 2 supports SQLite as its system database; the SQLite path uses
``SQLiteSystemDatabase``, which polls for notifications instead of
LISTEN/NOTIFY).  No conductor key / enterprise key is set, so nothing is
contacted; ``common.block_network()`` refuses any non-loopback socket anyway.
DBOS uses SQLite's default rollback journal (it does not switch to WAL) and
the default ``synchronous=FULL``: that is how it ships, and it is measured as is.

Variants
  async  (default) ``async def`` workflows and steps, run on one asyncio loop;
         conc200 = ``asyncio.gather`` of 200 workflow calls; wait2000 =
         ``await DBOS.recv_async(timeout_seconds=86400)``.
  sync   plain ``def`` workflows/steps; conc200 = ``DBOS.start_workflow`` x200
         (DBOS runs each on its executor thread pool); wait2000 = ``DBOS.recv``
         (one blocked executor thread per parked workflow).
  pg-async, pg-sync  the same on a PostgreSQL system database: ``--pg-url``
         (a database made for the run: ``bench/stores/pg_bench.py`` creates
         and drops one per run); seq200 and conc200 only.

``big`` and ``append`` (sync only) are ``bench/state_bench.py``'s: see
``dbos_state.py``.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import (
    CONC_RUNS,
    CONC_STEPS,
    CONC_WORKFLOWS,
    IDLE_SECONDS,
    SCENARIOS,
    SEQ_RUNS,
    SEQ_STEPS,
    WAIT_COUNT,
    block_network,
    conc_metrics,
    cpu_seconds,
    disk_bytes,
    emit,
    emit_unavailable,
    idle_cpu_async,
    idle_cpu_blocking,
    log,
    package_versions,
    parse_args,
    rss_bytes,
    run_import_scenario,
    seq_metrics,
    thread_count,
    wait_metrics,
)

SYSTEM = "dbos"
PG_URL = None
if "--pg-url" in sys.argv:  # not a common flag: taken out before the common ones
    at = sys.argv.index("--pg-url")
    PG_URL = sys.argv[at + 1]
    del sys.argv[at : at + 2]
STATE_SCENARIOS = ("big", "append")
args = parse_args(default_variant="async", scenarios=(*SCENARIOS, *STATE_SCENARIOS))
block_network()
VERSIONS = package_versions("dbos", "sqlalchemy", "psycopg")
VARIANT = args.variant
if VARIANT not in ("async", "sync", "pg-async", "pg-sync") and args.scenario not in (
    "import",
    "floor",
):
    raise SystemExit(f"unknown variant {VARIANT!r} (async|sync|pg-async|pg-sync)")
ON_PG = VARIANT.startswith("pg-")
if ON_PG and PG_URL is None:
    raise SystemExit("the pg- variants need --pg-url")
if ON_PG and args.scenario == "wait2000":
    emit_unavailable(SYSTEM, VARIANT, "wait2000", "measured on SQLite only")
    sys.exit(0)
if VARIANT != "sync" and args.scenario in STATE_SCENARIOS:
    emit_unavailable(SYSTEM, VARIANT, args.scenario, "measured with the sync variant only")
    sys.exit(0)

if args.scenario in ("import", "floor"):
    if args.scenario == "import":
        run_import_scenario(SYSTEM, "-", "from dbos import DBOS", VERSIONS)
    else:
        emit_unavailable(SYSTEM, VARIANT, "floor", "floor is a raw-sqlite scenario")
    sys.exit(0)

import dbos_state  # noqa: E402 - registers its workflows before DBOS.launch()
from dbos import DBOS, DBOSConfig  # noqa: E402

DB_PATH = Path(args.dir).resolve() / "dbos.sqlite"
config: DBOSConfig = {
    "name": "bench",
    "system_database_url": PG_URL if ON_PG else f"sqlite:///{DB_PATH}",
    "log_level": "WARNING",
    "application_version": "bench",
    "executor_id": "bench",
}
DBOS(config=config)

parked = 0


# ---------------------------------------------------------------- sync flavour
@DBOS.step()
def noop_step(i: int) -> int:
    return i


@DBOS.workflow()
def seq_wf(n: int) -> int:
    for i in range(n):
        noop_step(i)
    return n


@DBOS.workflow()
def wait_wf() -> object:
    global parked
    parked += 1
    return DBOS.recv("go", timeout_seconds=86400)


# ---------------------------------------------------------------- async flavour
@DBOS.step()
async def noop_step_async(i: int) -> int:
    return i


@DBOS.workflow()
async def seq_wf_async(n: int) -> int:
    for i in range(n):
        await noop_step_async(i)
    return n


@DBOS.workflow()
async def wait_wf_async() -> object:
    global parked
    parked += 1
    return await DBOS.recv_async("go", timeout_seconds=86400)


def waiters_registered() -> int:
    """How many recv() waits DBOS has registered in its listener map (best effort)."""
    try:
        from dbos._dbos import _dbos_global_instance as inst

        return len(inst._sys_db.notifications_map.snapshot())  # type: ignore[union-attr]
    except Exception:
        return -1


def emit_wait(measured: tuple[int, int, int, int, float, float, float], how: str) -> None:
    """One wait2000 row, the same for the sync and the async API."""
    rss0, rss1, disk0, disk1, cpu, idle, park_s = measured
    metrics = wait_metrics(
        rss0,
        rss1,
        disk0,
        disk1,
        cpu,
        idle,
        park_s=round(park_s, 2),
        pending_in_db=pending_in_db(),
        waiters_registered=waiters_registered(),
        threads=thread_count(),
    )
    emit(SYSTEM, VARIANT, "wait2000", metrics, note=f"{NOTE_BASE}; {how}", versions=VERSIONS)


def pending_in_db() -> int:
    con = sqlite3.connect(str(DB_PATH), timeout=30)
    try:
        return con.execute(
            "SELECT count(*) FROM workflow_status WHERE status = 'PENDING'"
        ).fetchone()[0]
    finally:
        con.close()


NOTE_BASE = (
    "PostgreSQL system DB (127.0.0.1, fresh database per run)"
    if ON_PG
    else "SQLite system DB (rollback journal, synchronous=FULL as shipped)"
)


# ---------------------------------------------------------------- scenarios
def run_sync() -> None:
    if args.scenario in STATE_SCENARIOS:
        emit(
            SYSTEM,
            VARIANT,
            args.scenario,
            dbos_state.run(args.scenario),
            note=f"{NOTE_BASE}; {dbos_state.NOTES[args.scenario]}",
            versions=VERSIONS,
        )
    elif args.scenario == "seq200":
        seq_wf(SEQ_STEPS)  # warm-up
        runs = []
        for _ in range(SEQ_RUNS):
            t0 = time.perf_counter()
            assert seq_wf(SEQ_STEPS) == SEQ_STEPS
            runs.append(time.perf_counter() - t0)
        emit(
            SYSTEM,
            VARIANT,
            "seq200",
            seq_metrics(runs),
            note=f"{NOTE_BASE}; sync workflow of {SEQ_STEPS} @DBOS.step; median of {SEQ_RUNS} "
            f"after 1 warm-up",
            versions=VERSIONS,
        )
    elif args.scenario == "conc200":

        def batch(n: int) -> float:
            t0 = time.perf_counter()
            handles = [DBOS.start_workflow(seq_wf, CONC_STEPS) for _ in range(n)]
            for h in handles:
                assert h.get_result() == CONC_STEPS
            return time.perf_counter() - t0

        batch(20)  # warm-up
        runs = [batch(CONC_WORKFLOWS) for _ in range(CONC_RUNS)]
        emit(
            SYSTEM,
            VARIANT,
            "conc200",
            conc_metrics(runs),
            note=f"{NOTE_BASE}; DBOS.start_workflow x{CONC_WORKFLOWS} (executor threads); "
            f"median of {CONC_RUNS} batches",
            versions=VERSIONS,
        )
    elif args.scenario == "wait2000":
        global parked
        h = DBOS.start_workflow(wait_wf)  # warm-up: one full park/release cycle
        while waiters_registered() < 1:
            time.sleep(0.01)
        DBOS.send(h.workflow_id, "x", "go")
        h.get_result()
        parked = 0
        time.sleep(1.0)
        rss0, disk0 = rss_bytes(), disk_bytes(args.dir)
        t0 = time.perf_counter()
        for _ in range(WAIT_COUNT):
            DBOS.start_workflow(wait_wf)
        while parked < WAIT_COUNT or (
            waiters_registered() not in (-1,) and waiters_registered() < WAIT_COUNT
        ):
            time.sleep(0.05)
        park_s = time.perf_counter() - t0
        time.sleep(1.0)
        rss1, disk1 = rss_bytes(), disk_bytes(args.dir)
        cpu, idle = idle_cpu_blocking(IDLE_SECONDS)
        emit_wait(
            (rss0, rss1, disk0, disk1, cpu, idle, park_s),
            "DBOS.recv(timeout=1 day) in sync workflows: one blocked executor "
            "thread per wait; SQLite listener polls every waiter each second",
        )
        sys.stdout.flush()
        os._exit(0)  # don't wait for 2,000 parked threads


async def run_async() -> None:
    if args.scenario == "seq200":
        await seq_wf_async(SEQ_STEPS)
        runs = []
        for _ in range(SEQ_RUNS):
            t0 = time.perf_counter()
            assert await seq_wf_async(SEQ_STEPS) == SEQ_STEPS
            runs.append(time.perf_counter() - t0)
        emit(
            SYSTEM,
            VARIANT,
            "seq200",
            seq_metrics(runs),
            note=f"{NOTE_BASE}; async workflow of {SEQ_STEPS} async @DBOS.step; median of "
            f"{SEQ_RUNS} after 1 warm-up",
            versions=VERSIONS,
        )
    elif args.scenario == "conc200":

        async def batch(n: int) -> float:
            t0 = time.perf_counter()
            res = await asyncio.gather(*(seq_wf_async(CONC_STEPS) for _ in range(n)))
            assert res == [CONC_STEPS] * n
            return time.perf_counter() - t0

        await batch(20)
        runs = [await batch(CONC_WORKFLOWS) for _ in range(CONC_RUNS)]
        emit(
            SYSTEM,
            VARIANT,
            "conc200",
            conc_metrics(runs),
            note=f"{NOTE_BASE}; asyncio.gather of {CONC_WORKFLOWS} async workflows; median of "
            f"{CONC_RUNS} batches",
            versions=VERSIONS,
        )
    elif args.scenario == "wait2000":
        global parked
        h = await DBOS.start_workflow_async(wait_wf_async)  # warm-up park/release
        while waiters_registered() < 1:
            await asyncio.sleep(0.01)
        await DBOS.send_async(h.workflow_id, "x", "go")
        await h.get_result()
        parked = 0
        await asyncio.sleep(1.0)
        rss0, disk0 = rss_bytes(), disk_bytes(args.dir)
        t0 = time.perf_counter()
        for _ in range(WAIT_COUNT):
            await DBOS.start_workflow_async(wait_wf_async)
        while parked < WAIT_COUNT or (
            waiters_registered() != -1 and waiters_registered() < WAIT_COUNT
        ):
            await asyncio.sleep(0.05)
        park_s = time.perf_counter() - t0
        await asyncio.sleep(1.0)
        rss1, disk1 = rss_bytes(), disk_bytes(args.dir)
        cpu, idle = await idle_cpu_async(IDLE_SECONDS)
        emit_wait(
            (rss0, rss1, disk0, disk1, cpu, idle, park_s),
            "await DBOS.recv_async(timeout=1 day) in async workflows "
            "(DBOS.start_workflow_async x2000); SQLite listener thread polls every waiter each "
            "second",
        )
        sys.stdout.flush()
        os._exit(0)


def main() -> None:
    DBOS.launch()
    # sanity: the system database really is the SQLite file (no PostgreSQL anywhere)
    from dbos._dbos import _dbos_global_instance as inst

    kind = type(inst._sys_db).__name__  # type: ignore[union-attr]
    if ON_PG:
        assert kind == "PostgresSystemDatabase", kind
    else:
        assert kind == "SQLiteSystemDatabase" and DB_PATH.exists(), (kind, DB_PATH)
    c0 = cpu_seconds()
    try:
        if VARIANT.endswith("sync") and not VARIANT.endswith("async"):
            run_sync()
        else:
            asyncio.run(run_async())
    finally:
        log(f"dbos {args.scenario}/{VARIANT}: cpu {cpu_seconds() - c0:.2f}s")
    DBOS.destroy(workflow_completion_timeout_sec=0)


if __name__ == "__main__":
    main()

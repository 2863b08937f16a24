"""agent-node ("ours") on the same scenarios as the peers.

    .venv/bin/python bench/ours.py <seq200|conc200|wait2000|import>
        [--store-kind sqlite|memory|postgres] --dir TMPDIR

The methodology is the one of ``bench/peers/*`` (``bench/common.py`` sizes,
warm-ups and medians); every run goes through ONE ``Runtime``:

  seq200    one workflow of 200 sequential no-op ``async def`` steps
            (``return None``); ``await rt.run(compiled, State())``; 1 warm-up
            workflow then 5 timed ones, median steps/s.  The engine commits
            each node's completion (and leases the next node in the same
            transaction) before the next node starts.
  conc200   ``asyncio.gather`` of 200 ``rt.run`` of a 5-step workflow;
            warm-up batch of 20, then 3 timed batches (median).
  wait2000  a workflow whose ONLY node is ``wf.wait("w", event="go")`` -- the
            closest to the peers (LangGraph: the only node calls
            ``interrupt()``; DBOS: the workflow body immediately awaits
            ``recv``).  One warm-up park/signal/resume cycle, then 2,000
            ``rt.run`` one after another (each returns once its execution is
            parked), as the LangGraph bench parks its 2,000.  The marginal
            probe parks 200 at a time and reports the first and the next
            2,000 separately (the first includes the allocator's one-time
            growth for 200 runs in flight).  RSS as the peers (gc, +1 s settle).  Disk
            (sqlite only): the runtime is closed, the WAL checkpointed
            (TRUNCATE) and db+wal+shm compared with the same store holding 0
            executions (a schema-only file created the same way).  Idle CPU:
            a worker ``Runtime(url, scope="all")`` is opened on the store and
            the process CPU is sampled over 5 s (``idle_cpu_pct``); the CPU of
            the runtime that parked them is reported too (``idle_cpu_pct_own``).
            ``restart_rss_bytes_per_wait`` (sqlite only): in fresh
            subprocesses, RSS after starting a ``scope="all"`` runtime on the
            store holding the 2,000 waits minus the same on an empty store
            (median of 3 each), / 2,000.
  import    ``import agent_node`` in fresh interpreters (common.measure_import).

``--store-kind``: ``sqlite`` (``sqlite:////<dir>/ours.db``, agent-node's
default ``synchronous=NORMAL`` in WAL -- survives a killed process, not a power
loss), ``sqlite-full`` (the same with ``?synchronous=full``, i.e. the peers'
SQLite setting), ``memory`` (``memory://``, nothing durable) and ``postgres``
(a fresh database ``an_bench_<random>`` created on
``$AGENT_NODE_BENCH_PG_URL``'s server, dropped afterwards).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    CONC_RUNS,
    CONC_STEPS,
    CONC_WORKFLOWS,
    IDLE_SECONDS,
    IMPORT_RUNS,
    SEQ_RUNS,
    SEQ_STEPS,
    WAIT_COUNT,
    block_network,
    checkpoint_sqlite,
    conc_metrics,
    emit,
    emit_unavailable,
    idle_cpu_async,
    log,
    measure_import,
    package_versions,
    parse_args,
    path_size,
    pg_admin,
    rss_bytes,
    seq_metrics,
    thread_count,
    wait_metrics,
)

SYSTEM = "ours"
KINDS = ("sqlite", "sqlite-full", "memory", "postgres")
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
PROBE = "_restart_probe"  # internal: ours.py _restart_probe <sqlite url>
MARGINAL = "_marginal_probe"  # internal: ours.py _marginal_probe <url>
WAIT_CHUNK = 200
#: Executions parked at once in the headline wait2000 measurement: one at a
#: time, like the LangGraph bench (the marginal probe uses WAIT_CHUNK).
PARK_IN_FLIGHT = 1
STORE_IMPORT = (
    "import agent_node; import agent_node.store.sqlite; "
    "from agent_node.store.schema import ddl; ddl('sqlite')"
)  # bounded concurrency while parking the 2,000 executions


# --------------------------------------------------------------------------- workflows


def build_workflows():  # -> (seq, conc, wait, State)
    from pydantic import BaseModel

    from agent_node import Workflow

    class State(BaseModel):
        n: int = 0

    async def s(state: State) -> None:  # the no-op step
        return None

    def chain(wf_id: str, steps: int):
        wf = Workflow(wf_id, version="1")
        wf.state(State)
        for i in range(steps):
            wf.step(s, name=f"s{i}")
        return wf.compile()

    wait_wf = Workflow("bench_wait", version="1")
    wait_wf.state(State)
    wait_wf.wait("w", event="go")
    return chain("bench_seq", SEQ_STEPS), chain("bench_conc", CONC_STEPS), wait_wf.compile(), State


# --------------------------------------------------------------------------- stores


def sqlite_url(path: Path, kind: str) -> str:
    url = f"sqlite:///{path.resolve()}"  # absolute path -> sqlite:////abs/path.db
    return url + ("?synchronous=full" if kind == "sqlite-full" else "")


class PgDatabase:
    """A fresh, uniquely named database on the benchmark PostgreSQL server."""

    def __init__(self) -> None:
        self.base = os.environ.get("AGENT_NODE_BENCH_PG_URL") or DEFAULT_PG_URL
        self.name = f"an_bench_{secrets.token_hex(6)}"
        parts = urlsplit(self.base)
        self.url = urlunsplit(parts._replace(path="/" + self.name))

    async def __aenter__(self) -> PgDatabase:
        await pg_admin(self.base, f'CREATE DATABASE "{self.name}"')
        return self

    async def __aexit__(self, *exc: object) -> None:
        await pg_admin(self.base, f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def store_note(kind: str) -> str:
    return {
        "sqlite": "SQLite file, WAL, synchronous=NORMAL (agent-node default: survives a killed "
        "process; the peers run synchronous=FULL)",
        "sqlite-full": "SQLite file, WAL, synchronous=FULL (?synchronous=full, as the peers)",
        "memory": "memory:// (nothing durable)",
        "postgres": "PostgreSQL 127.0.0.1, fresh database per run",
    }[kind]


# --------------------------------------------------------------------------- scenarios


async def seq200(url: str) -> list[float]:
    from agent_node import Runtime

    seq, _conc, _wait, State = build_workflows()
    async with Runtime(url) as rt:
        r = await rt.run(seq, State())  # warm-up
        assert r.status == "completed", r.status
        runs = []
        for _ in range(SEQ_RUNS):
            t0 = time.perf_counter()
            r = await rt.run(seq, State())
            runs.append(time.perf_counter() - t0)
            assert r.status == "completed", r.status
        # sanity: every step was committed as its own node completion
        done = [e for e in r.events if e.kind == "node_completed"]
        assert len(done) == SEQ_STEPS, f"{len(done)} node_completed events, {SEQ_STEPS} steps"
    return runs


async def conc200(url: str) -> list[float]:
    from agent_node import Runtime

    _seq, conc, _wait, State = build_workflows()
    async with Runtime(url) as rt:

        async def batch(n: int) -> float:
            t0 = time.perf_counter()
            res = await asyncio.gather(*(rt.run(conc, State()) for _ in range(n)))
            dt = time.perf_counter() - t0
            assert all(r.status == "completed" for r in res), {r.status for r in res}
            return dt

        await batch(20)  # warm-up
        return [await batch(CONC_WORKFLOWS) for _ in range(CONC_RUNS)]


def sqlite_disk(path: Path) -> int:
    """db + -wal + -shm of one SQLite store, after PRAGMA wal_checkpoint(TRUNCATE)."""
    checkpoint_sqlite(path.parent)
    return sum(path_size(p) for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists())


def dbstat(path: Path) -> dict[str, int]:
    """Bytes per table/index (``dbstat`` virtual table), empty if unsupported."""
    con = sqlite3.connect(str(path))
    try:
        rows = con.execute(
            "SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC"
        ).fetchall()
        return {n: int(b) for n, b in rows}
    except sqlite3.Error:
        return {}
    finally:
        con.close()


def sqlite_heap() -> int | None:
    """``sqlite3_memory_used()`` of the process's libsqlite3 (page + statement caches).

    Diagnostic only (best effort, via ctypes; None when unavailable)."""
    try:
        import ctypes
        import ctypes.util

        lib = ctypes.CDLL(ctypes.util.find_library("sqlite3") or "libsqlite3.so.0")
        lib.sqlite3_memory_used.restype = ctypes.c_int64
        return int(lib.sqlite3_memory_used())
    except Exception:
        return None


async def idle_cpu(seconds: float) -> tuple[float, float, float]:
    """common.idle_cpu_async (psutil, 10 ms ticks) plus time.process_time() (ns) over
    the same window: (cpu_s, wall_s, cpu_s_precise)."""
    p0 = time.process_time()
    cpu, idle = await idle_cpu_async(seconds)
    return cpu, idle, time.process_time() - p0


async def count_waiting(store) -> int:
    return len(await store.list_executions(status=["waiting"], limit=WAIT_COUNT * 2))


async def wait2000(kind: str, url: str, directory: Path) -> dict:
    from agent_node import Runtime

    _seq, _conc, wait_wf, State = build_workflows()
    is_sqlite = kind.startswith("sqlite")
    db = directory / "ours.db"
    empty_db = directory / "empty" / "ours.db"
    empty_url = sqlite_url(empty_db, kind) if is_sqlite else None

    rt = Runtime(url)
    await rt.start()
    # warm-up: one full park / signal / resume cycle
    r = await rt.run(wait_wf, State())
    assert r.status == "waiting", r.status
    await rt.engine.control.signal(r.execution_id, "go", True)
    r = await rt.run(wait_wf, execution_id=r.execution_id)
    assert r.status == "completed", r.status
    del r
    await asyncio.sleep(0.5)

    rss0, heap0, blocks0 = rss_bytes(), sqlite_heap(), sys.getallocatedblocks()
    t0 = time.perf_counter()
    for start in range(0, WAIT_COUNT, PARK_IN_FLIGHT):
        res = await asyncio.gather(
            *(rt.run(wait_wf, State()) for _ in range(min(PARK_IN_FLIGHT, WAIT_COUNT - start)))
        )
        assert all(x.status == "waiting" for x in res), {x.status for x in res}
    del res
    park_s = time.perf_counter() - t0
    await asyncio.sleep(1.0)
    rss1, heap1, blocks1 = rss_bytes(), sqlite_heap(), sys.getallocatedblocks()
    engine_tasks = len(rt.engine.running_visits)  # node tasks still alive in the engine (expect 0)
    cpu_own, idle_own, _ = await idle_cpu(IDLE_SECONDS)

    # close the runtime that parked them (memory: keep the store object alive)
    if is_sqlite:
        await rt.close()
        disk1 = sqlite_disk(db)
        tables = dbstat(db)
        # the same store with 0 executions: a schema-only file, created the same way
        async with Runtime(empty_url):
            pass
        disk0 = sqlite_disk(empty_db)
        tables0 = dbstat(empty_db)
        worker = Runtime(url, scope="all")
    else:
        await rt.engine.stop()
        disk0 = disk1 = 0
        tables = tables0 = {}
        worker = Runtime(rt.store, scope="all")

    # a worker engine watching everything holds the 2,000 parked executions
    await worker.start()
    await asyncio.sleep(1.0)  # let recovery and the first claim round settle
    cpu, idle, cpu_precise = await idle_cpu(IDLE_SECONDS)
    waiting = await count_waiting(worker.store)
    worker_tasks = len(worker.engine.running_visits)
    await worker.close()
    if not is_sqlite:
        await rt.close()
    assert waiting == WAIT_COUNT, waiting

    m = wait_metrics(
        rss0,
        rss1,
        disk0,
        disk1,
        cpu,
        idle,
        park_s=round(park_s, 2),
        idle_cpu_pct_own=round(100.0 * cpu_own / idle_own, 2),
        idle_cpu_pct_precise=round(100.0 * cpu_precise / idle, 3),
        sqlite_heap_bytes_per_wait=(
            round((heap1 - heap0) / WAIT_COUNT, 1)
            if heap0 is not None and heap1 is not None
            else None
        ),
        py_blocks_per_wait=round((blocks1 - blocks0) / WAIT_COUNT, 2),
        pending_in_db=waiting,
        engine_tasks=engine_tasks,
        worker_tasks=worker_tasks,
        threads=thread_count(),
    )
    m.update(
        marginal_probe(
            "memory://" if kind == "memory" else sqlite_url(directory / "m" / "m.db", kind)
        )
    )
    if not is_sqlite:
        m["disk_bytes_per_wait"] = None
        m["disk_note"] = "memory store: nothing on disk"
    else:
        m["dbstat_bytes"] = tables
        m["dbstat_bytes_empty"] = tables0
        m["disk_baseline"] = "schema-only store with 0 executions"
        m.update(restart_probe(url, empty_url))
    return m


def restart_probe(url: str, empty_url: str, repeats: int = 3) -> dict:
    """RSS of a fresh process after starting a scope="all" runtime: full store vs empty."""

    def one(u: str) -> int:
        out = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), PROBE, u],
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
        return json.loads(out.stdout.strip().splitlines()[-1])["rss"]

    full, empty = [], []
    for _ in range(repeats):  # interleaved, so drift hits both sides alike
        empty.append(one(empty_url))
        full.append(one(url))
    fm, em = statistics.median(full), statistics.median(empty)
    return {
        "restart_rss_bytes_per_wait": round((fm - em) / WAIT_COUNT, 1),
        "restart_rss_full": full,
        "restart_rss_empty": empty,
    }


def marginal_probe(url: str) -> dict:
    """RSS per wait of a SECOND batch of 2,000 parked in the same way, in a fresh process.

    Diagnostic: once the allocator has reached the high-water mark of 200 runs in
    flight, this is what one more waiting execution costs."""
    out = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), MARGINAL, url],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    r = json.loads(out.stdout.strip().splitlines()[-1])
    return {
        "rss_bytes_per_wait_first_2000": round((r["rss1"] - r["rss0"]) / WAIT_COUNT, 1),
        "rss_bytes_per_wait_next_2000": round((r["rss2"] - r["rss1"]) / WAIT_COUNT, 1),
    }


async def _marginal(url: str) -> None:
    from agent_node import Runtime

    _seq, _conc, wait_wf, State = build_workflows()
    async with Runtime(url) as rt:
        r = await rt.run(wait_wf, State())
        await rt.engine.control.signal(r.execution_id, "go", True)
        await rt.run(wait_wf, execution_id=r.execution_id)
        del r
        await asyncio.sleep(0.5)
        rss = [rss_bytes()]
        for _ in range(2):
            for _start in range(0, WAIT_COUNT, WAIT_CHUNK):
                res = await asyncio.gather(*(rt.run(wait_wf, State()) for _ in range(WAIT_CHUNK)))
                assert all(x.status == "waiting" for x in res)
            del res
            await asyncio.sleep(1.0)
            rss.append(rss_bytes())
    print(json.dumps({"rss0": rss[0], "rss1": rss[1], "rss2": rss[2]}), flush=True)


async def _probe(url: str) -> None:
    from agent_node import Runtime

    rt = Runtime(url, scope="all")
    await rt.start()
    await asyncio.sleep(1.0)  # recovery + a claim round or two
    rss = rss_bytes()
    tasks = len(rt.engine.running_visits)
    await rt.close()
    print(json.dumps({"rss": rss, "tasks": tasks}), flush=True)


# --------------------------------------------------------------------------- main


def git_head() -> str:
    """The checked-out commit of this repository (read-only ``git rev-parse``)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).resolve().parents[1],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == PROBE:
        block_network()
        asyncio.run(_probe(sys.argv[2]))
        return
    if len(sys.argv) == 3 and sys.argv[1] == MARGINAL:
        block_network()
        asyncio.run(_marginal(sys.argv[2]))
        return
    args = parse_args(default_variant="sqlite", variant_flag="--store-kind", variant_choices=KINDS)
    block_network()
    kind = args.variant
    versions = package_versions("agent-node", "pydantic", "asyncpg", "sqlalchemy")
    versions["agent-node-commit"] = git_head()
    directory = Path(args.dir).resolve()

    if args.scenario == "import":
        m = measure_import("import agent_node")
        # extra, for information: what a first run also loads lazily (the SQLite store and
        # SQLAlchemy, which compiles the schema DDL) -- the peers' statements include theirs
        full = measure_import(STORE_IMPORT)
        m.update(
            import_with_store_s=full["import_s"],
            rss_with_store_bytes=full["rss_bytes"],
            statement_with_store=STORE_IMPORT,
        )
        emit(
            SYSTEM,
            "-",
            "import",
            m,
            note=f"median of {IMPORT_RUNS} fresh interpreters: import agent_node (with the "
            f"SQLite store + schema: {full['import_s'] * 1000:.0f} ms, "
            f"{full['rss_bytes'] / 1048576:.1f} MiB)",
            versions=versions,
        )
        return
    if args.scenario == "floor":
        emit_unavailable(SYSTEM, kind, "floor", "floor is a raw-sqlite scenario")
        return
    if args.scenario == "wait2000" and kind == "postgres":
        emit_unavailable(SYSTEM, kind, "wait2000", "wait2000 is measured on sqlite and memory")
        return

    async def go():
        if kind == "postgres":
            async with PgDatabase() as pg:
                return await scenario(pg.url)
        url = "memory://" if kind == "memory" else sqlite_url(directory / "ours.db", kind)
        return await scenario(url)

    async def scenario(url: str):
        if args.scenario == "seq200":
            return await seq200(url)
        if args.scenario == "conc200":
            return await conc200(url)
        return await wait2000(kind, url, directory)

    c0 = time.process_time()
    result = asyncio.run(go())
    log(f"ours {args.scenario}/{kind}: cpu {time.process_time() - c0:.2f}s")
    base = store_note(kind)
    if args.scenario == "seq200":
        emit(
            SYSTEM,
            kind,
            "seq200",
            seq_metrics(result),
            note=f"{base}; one Runtime, workflow of {SEQ_STEPS} no-op async steps, one commit "
            f"per node; median of {SEQ_RUNS} after 1 warm-up",
            versions=versions,
        )
    elif args.scenario == "conc200":
        emit(
            SYSTEM,
            kind,
            "conc200",
            conc_metrics(result),
            note=f"{base}; one Runtime, asyncio.gather of {CONC_WORKFLOWS} rt.run of "
            f"{CONC_STEPS} no-op steps; median of {CONC_RUNS} batches",
            versions=versions,
        )
    else:
        emit(
            SYSTEM,
            kind,
            "wait2000",
            result,
            note=f"{base}; workflow = a single wf.wait(event=) node; 2,000 rt.run one at a time "
            "(as LangGraph), each returns when parked; idle CPU with a scope='all' worker "
            "Runtime open on the store",
            versions=versions,
        )


if __name__ == "__main__":
    main()

"""Shared helpers for the benchmark scripts (peers and ``bench/ours.py``).

Dependency-light on purpose: stdlib only, plus ``psutil`` when it is installed
(RSS / CPU time fall back to ``/proc`` and ``os.times`` without it).  Works on
Python 3.11 and 3.12, and from any interpreter/venv, so a script can do::

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # bench/
    from common import emit, rss_bytes, ...

Output protocol: every scenario script prints exactly ONE JSON object per
measured result on stdout (``emit``), e.g.::

    {"system": "dbos", "variant": "async", "scenario": "seq200",
     "metrics": {"steps_per_s": 650.1, ...}, "note": "...", "versions": {...}}

A script that cannot measure something prints a row with
``"unavailable": "reason"`` (``emit_unavailable``) instead of failing.
Anything else (logs) must go to stderr.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

try:  # optional
    import psutil as _psutil
except Exception:  # pragma: no cover - psutil missing
    _psutil = None

SCENARIOS = ("seq200", "conc200", "wait2000", "import", "floor")

# Scenario sizes (kept here so every system uses the same numbers).
SEQ_STEPS = 200  # steps in the sequential workflow
SEQ_RUNS = 5  # timed sequential workflows (after 1 warm-up)
CONC_WORKFLOWS = 200  # concurrent workflows ...
CONC_STEPS = 5  # ... of this many steps each
CONC_RUNS = 3  # timed batches (after 1 small warm-up batch)
WAIT_COUNT = 2000  # parked executions
IDLE_SECONDS = 5.0  # CPU is sampled over this long while parked
IMPORT_RUNS = 5  # fresh interpreters for the import scenario
FLOOR_COMMITS = 5000  # raw sqlite3 commits


# --------------------------------------------------------------------------- output


def emit(
    system: str,
    variant: str,
    scenario: str,
    metrics: dict[str, Any],
    note: str = "",
    **extra: Any,
) -> dict[str, Any]:
    """Print one result row as a JSON line on stdout (flushed) and return it."""
    row: dict[str, Any] = {
        "system": system,
        "variant": variant,
        "scenario": scenario,
        "metrics": metrics,
        "note": note,
    }
    row.update(extra)
    sys.stdout.write(json.dumps(row, default=str) + "\n")
    sys.stdout.flush()
    return row


def emit_unavailable(
    system: str, variant: str, scenario: str, reason: str, **extra: Any
) -> dict[str, Any]:
    """A row saying this system/variant cannot run this scenario, and why."""
    return emit(
        system, variant, scenario, {}, note=f"unavailable: {reason}", unavailable=reason, **extra
    )


def log(*args: Any) -> None:
    print(*args, file=sys.stderr, flush=True)


def package_versions(*names: str) -> dict[str, str]:
    """Installed versions of the given distributions (missing ones are skipped)."""
    from importlib import metadata

    out: dict[str, str] = {"python": platform.python_version(), "sqlite": sqlite3.sqlite_version}
    for n in names:
        try:
            out[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            pass
    return out


# --------------------------------------------------------------------------- CLI


def parse_args(
    default_variant: str = "default",
    argv: list[str] | None = None,
    variant_flag: str = "--variant",
    variant_choices: Iterable[str] | None = None,
    scenarios: Iterable[str] = SCENARIOS,
) -> argparse.Namespace:
    """Common CLI: ``<scenario> [--variant X] --dir TMPDIR`` (creates ``--dir``).

    ``bench/ours.py`` can use ``variant_flag="--store-kind"``; the value is
    always available as ``args.variant``. ``scenarios``: a script that also
    runs ``bench/state_bench.py``'s adds them.
    """
    p = argparse.ArgumentParser()
    p.add_argument("scenario", choices=list(scenarios))
    p.add_argument(
        variant_flag,
        dest="variant",
        default=default_variant,
        choices=list(variant_choices) if variant_choices else None,
    )
    p.add_argument("--dir", required=True, help="fresh scratch directory for database files")
    args = p.parse_args(argv)
    Path(args.dir).mkdir(parents=True, exist_ok=True)
    return args


# --------------------------------------------------------------------------- safety


def block_network() -> None:
    """Refuse any socket connect/sendto to a non-loopback address in this process.

    Benchmarks must never reach beyond loopback (telemetry, licence checks...).
    Implemented with an audit hook, so it covers every library in the process.
    """

    def _is_loopback(addr: Any) -> bool:
        if isinstance(addr, (str, bytes)):  # AF_UNIX path
            return True
        if isinstance(addr, tuple) and addr:
            host = str(addr[0])
            return host in ("localhost", "::1", "") or host.startswith(("127.", "::ffff:127."))
        return False

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if (
            event in ("socket.connect", "socket.sendto")
            and len(args) >= 2
            and not _is_loopback(args[1])
        ):
            raise PermissionError(
                f"benchmark: network access beyond loopback blocked ({event} {args[1]!r})"
            )
        if (
            event == "socket.getaddrinfo"
            and args
            and args[0] is not None
            and not _is_loopback((args[0],))
        ):
            raise PermissionError(f"benchmark: DNS lookup blocked ({args[0]!r})")

    sys.addaudithook(hook)


# --------------------------------------------------------------------------- process metrics


def rss_bytes(collect: bool = True) -> int:
    """Resident set size of this process (gc.collect() first by default)."""
    if collect:
        gc.collect()
    if _psutil is not None:
        return int(_psutil.Process().memory_info().rss)
    with open("/proc/self/statm") as f:  # Linux fallback
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def cpu_seconds() -> float:
    """User+system CPU time consumed by this process so far (all threads)."""
    if _psutil is not None:
        t = _psutil.Process().cpu_times()
        return float(t.user + t.system)
    t2 = os.times()
    return t2.user + t2.system


def thread_count() -> int:
    if _psutil is not None:
        return int(_psutil.Process().num_threads())
    import threading

    return threading.active_count()


def path_size(path: str | os.PathLike[str]) -> int:
    """Size in bytes of a file, or of every regular file under a directory."""
    p = Path(path)
    if p.is_file():
        return p.stat().st_size
    total = 0
    for root, _dirs, files in os.walk(p):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_size
            except FileNotFoundError:
                pass
    return total


def sqlite_files(directory: str | os.PathLike[str]) -> list[Path]:
    """Main SQLite database files under a directory (not their -wal/-shm/-journal)."""
    out = []
    for p in sorted(Path(directory).rglob("*")):
        if not p.is_file() or p.name.endswith(("-wal", "-shm", "-journal")):
            continue
        try:
            with open(p, "rb") as f:
                if f.read(16) == b"SQLite format 3\x00":
                    out.append(p)
        except OSError:
            pass
    return out


def checkpoint_sqlite(directory: str | os.PathLike[str]) -> None:
    """``PRAGMA wal_checkpoint(TRUNCATE)`` on every SQLite database under a directory.

    Folds the -wal content into the main file so that on-disk size reflects
    the data, not the WAL's high-water mark.  Best effort: a checkpoint that
    cannot complete (a reader holds a snapshot) is ignored.
    """
    for db in sqlite_files(directory):
        try:
            con = sqlite3.connect(str(db), timeout=10)
            try:
                con.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            finally:
                con.close()
        except sqlite3.Error as e:  # pragma: no cover
            log(f"checkpoint of {db} failed: {e}")


def disk_bytes(directory: str | os.PathLike[str], checkpoint: bool = True) -> int:
    """Bytes used by all files under ``directory`` (incl. -wal), after a WAL checkpoint."""
    if checkpoint:
        checkpoint_sqlite(directory)
    return path_size(directory)


# --------------------------------------------------------------------------- timing helpers


def summarize(values: Iterable[float]) -> dict[str, Any]:
    v = list(values)
    return {
        "median": statistics.median(v),
        "best": max(v),
        "worst": min(v),
        "runs": [round(x, 1) for x in v],
    }


def seq_metrics(elapsed_s: list[float], steps: int = SEQ_STEPS) -> dict[str, Any]:
    """seq200 metrics from the elapsed time of each timed workflow.

    ``steps_per_s`` is the MEDIAN over the timed runs; ``steps_per_s_best``
    the best one; ``runs`` each run's steps/s.
    """
    rates = [steps / e for e in elapsed_s]
    s = summarize(rates)
    return {
        "steps_per_s": round(s["median"], 1),
        "steps_per_s_best": round(s["best"], 1),
        "ms_per_step": round(1000.0 / s["median"], 3),
        "runs": s["runs"],
        "steps": steps,
    }


def conc_metrics(
    elapsed_s: list[float], workflows: int = CONC_WORKFLOWS, steps: int = CONC_STEPS
) -> dict[str, Any]:
    """conc200 metrics from the elapsed time of each timed batch (median batch reported)."""
    med = statistics.median(elapsed_s)
    return {
        "steps_per_s": round(workflows * steps / med, 1),
        "workflows_per_s": round(workflows / med, 1),
        "steps_per_s_best": round(workflows * steps / min(elapsed_s), 1),
        "batch_s": [round(e, 3) for e in elapsed_s],
        "workflows": workflows,
        "steps_per_workflow": steps,
    }


def wait_metrics(
    rss_before: int,
    rss_after: int,
    disk_before: int,
    disk_after: int,
    cpu_s: float,
    idle_s: float,
    count: int = WAIT_COUNT,
    **extra: Any,
) -> dict[str, Any]:
    m = {
        "rss_bytes_per_wait": round((rss_after - rss_before) / count, 1),
        "disk_bytes_per_wait": round((disk_after - disk_before) / count, 1),
        "idle_cpu_pct": round(100.0 * cpu_s / idle_s, 2),
        "rss_before": rss_before,
        "rss_after": rss_after,
        "disk_before": disk_before,
        "disk_after": disk_after,
        "waits": count,
        "idle_s": idle_s,
    }
    m.update(extra)
    return m


async def idle_cpu_async(seconds: float = IDLE_SECONDS) -> tuple[float, float]:
    """Sleep on the running event loop (so in-loop pollers keep running) and
    return (cpu seconds consumed by the whole process, wall seconds)."""
    import asyncio

    c0, t0 = cpu_seconds(), time.perf_counter()
    await asyncio.sleep(seconds)
    return cpu_seconds() - c0, time.perf_counter() - t0


def idle_cpu_blocking(seconds: float = IDLE_SECONDS) -> tuple[float, float]:
    c0, t0 = cpu_seconds(), time.perf_counter()
    time.sleep(seconds)
    return cpu_seconds() - c0, time.perf_counter() - t0


# --------------------------------------------------------------------------- import scenario

_IMPORT_CHILD = r"""
import os, sys, time, json
def _rss():
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')
r0 = _rss()
t0 = time.perf_counter()
{stmt}
dt = time.perf_counter() - t0
import gc; gc.collect()
print(json.dumps({{"import_s": dt, "rss_bytes": _rss(), "rss_before": r0}}))
"""


def measure_import(
    stmt: str,
    python: str | None = None,
    runs: int = IMPORT_RUNS,
    env: dict[str, str] | None = None,
    cwd: str | None = None,
) -> dict[str, Any]:
    """Time ``stmt`` (e.g. ``"import dbos"``) in ``runs`` fresh interpreters.

    Returns the median import wall time (measured inside the child around the
    statement only, so interpreter start-up is excluded), the median RSS of the
    child right after the import, and the same for a bare interpreter (``pass``)
    so the import's own cost is ``rss_bytes - rss_bare_bytes``.  RSS is read
    from /proc/self/statm in the child, so psutil's own footprint is not counted.
    """
    python = python or sys.executable
    env = dict(os.environ if env is None else env)
    env.pop("PYTHONSTARTUP", None)

    def one(s: str) -> dict[str, Any]:
        out = subprocess.run(
            [python, "-c", _IMPORT_CHILD.format(stmt=s)],
            capture_output=True,
            text=True,
            env=env,
            cwd=cwd,
            timeout=300,
            check=True,
        )
        return json.loads(out.stdout.strip().splitlines()[-1])

    one(stmt)  # warm the OS page cache / .pyc files
    res = [one(stmt) for _ in range(runs)]
    bare = [one("pass") for _ in range(3)]
    return {
        "import_s": round(statistics.median(r["import_s"] for r in res), 4),
        "import_s_runs": [round(r["import_s"], 4) for r in res],
        "rss_bytes": int(statistics.median(r["rss_bytes"] for r in res)),
        "rss_bare_bytes": int(statistics.median(r["rss_bytes"] for r in bare)),
        "import_rss_bytes": int(statistics.median(r["rss_bytes"] for r in res))
        - int(statistics.median(r["rss_bytes"] for r in bare)),
        "statement": stmt,
    }


def run_import_scenario(
    system: str, variant: str, stmt: str, versions: dict[str, str], note: str = ""
) -> None:
    m = measure_import(stmt)
    emit(
        system,
        variant,
        "import",
        m,
        note=note or f"median of {IMPORT_RUNS} fresh interpreters: {stmt}",
        versions=versions,
    )


def timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# -- latency of one call, path by path (bench/models, bench/tools) ----------------------

Timed = Callable[[], Awaitable[Any]]


async def atimed(call: Timed) -> float:
    """Seconds one awaited call takes."""
    started = time.perf_counter()
    await call()
    return time.perf_counter() - started


def latency_stats(samples: list[float]) -> dict[str, float]:
    """p50, p99 and mean in ms of ``samples`` (seconds)."""
    ms = sorted(s * 1000 for s in samples)
    return {
        "p50_ms": round(statistics.median(ms), 3),
        "p99_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 3),
        "mean_ms": round(statistics.fmean(ms), 3),
        "n": len(ms),
    }


def add_overheads(rows: dict[str, dict[str, float]], base: str, names: Iterable[str]) -> None:
    """Each of ``names`` gets its p50 and p99 minus those of row ``base``."""
    for name in names:
        rows[name]["overhead_p50_ms"] = round(rows[name]["p50_ms"] - rows[base]["p50_ms"], 3)
        rows[name]["overhead_p99_ms"] = round(rows[name]["p99_ms"] - rows[base]["p99_ms"], 3)


def latency_table(rows: dict[str, dict[str, float]], width: int = 18) -> str:
    """Rows of :func:`latency_stats` (with overheads, when added) as a table."""
    head = f"{'path':<{width}}{'p50 ms':>10}{'p99 ms':>10}{'mean ms':>10}{'+p50 ms':>10}"
    head += f"{'+p99 ms':>10}"
    lines = [head, "-" * len(head)]
    for name, row in rows.items():
        extra = (
            f"{row['overhead_p50_ms']:>10.3f}{row['overhead_p99_ms']:>10.3f}"
            if "overhead_p50_ms" in row
            else f"{'':>10}{'':>10}"
        )
        values = f"{row['p50_ms']:>10.3f}{row['p99_ms']:>10.3f}{row['mean_ms']:>10.3f}"
        lines.append(f"{name:<{width}}{values}{extra}")
    return "\n".join(lines)


async def pg_admin(base_url: str, sql: str) -> None:
    """Run ``sql`` (CREATE / DROP DATABASE) on the server of ``base_url``."""
    import asyncpg

    conn = await asyncpg.connect(base_url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()

"""Storage floor: raw sqlite3, one INSERT + COMMIT per step.

    python bench/peers/sqlite_floor.py floor  --variant normal|full --dir TMPDIR
    python bench/peers/sqlite_floor.py seq200 --variant normal|full --dir TMPDIR
    python bench/peers/sqlite_floor.py import --dir TMPDIR

``floor``: 5,000 commits (after 200 warm-up commits) on a WAL database with
``synchronous=NORMAL`` (variant ``normal``) or ``synchronous=FULL`` (``full``).
``seq200``: the same operation shaped like the seq200 scenario (200 commits per
"workflow", median of 5 after a warm-up), i.e. the best a step-per-commit
engine could possibly do on this disk.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import (
    FLOOR_COMMITS,
    SEQ_RUNS,
    SEQ_STEPS,
    block_network,
    emit,
    emit_unavailable,
    package_versions,
    parse_args,
    run_import_scenario,
    seq_metrics,
)

SYSTEM = "sqlite"
PAYLOAD = os.urandom(64).hex().encode()  # ~128 bytes, like a small step result


def open_db(path: Path, variant: str) -> sqlite3.Connection:
    sync = {"normal": "NORMAL", "full": "FULL"}[variant]
    con = sqlite3.connect(str(path), isolation_level=None)  # explicit transactions
    con.execute("PRAGMA journal_mode=WAL").fetchall()
    con.execute(f"PRAGMA synchronous={sync}")
    con.execute(
        "CREATE TABLE IF NOT EXISTS steps (wf TEXT NOT NULL, step INTEGER NOT NULL, "
        "result BLOB, PRIMARY KEY (wf, step))"
    )
    return con


def commit_n(con: sqlite3.Connection, wf: str, n: int) -> float:
    t0 = time.perf_counter()
    for i in range(n):
        con.execute("BEGIN")
        con.execute("INSERT INTO steps (wf, step, result) VALUES (?, ?, ?)", (wf, i, PAYLOAD))
        con.execute("COMMIT")
    return time.perf_counter() - t0


def main() -> None:
    args = parse_args(default_variant="normal")
    block_network()
    versions = package_versions()
    variant = args.variant
    if args.scenario == "import":
        run_import_scenario(SYSTEM, "-", "import sqlite3", versions)
        return
    if variant not in ("normal", "full"):
        raise SystemExit(f"unknown variant {variant!r} (normal|full)")
    con = open_db(Path(args.dir) / "floor.sqlite", variant)
    note = f"WAL + synchronous={variant.upper()}, 1 INSERT + COMMIT per step"
    if args.scenario == "floor":
        commit_n(con, "warmup", 200)
        elapsed = commit_n(con, "floor", FLOOR_COMMITS)
        emit(
            SYSTEM,
            variant,
            "floor",
            {
                "commits_per_s": round(FLOOR_COMMITS / elapsed, 1),
                "us_per_commit": round(1e6 * elapsed / FLOOR_COMMITS, 1),
                "commits": FLOOR_COMMITS,
            },
            note=note,
            versions=versions,
        )
    elif args.scenario == "seq200":
        commit_n(con, "warmup", SEQ_STEPS)
        runs = [commit_n(con, f"wf{r}", SEQ_STEPS) for r in range(SEQ_RUNS)]
        emit(
            SYSTEM,
            variant,
            "seq200",
            seq_metrics(runs),
            note=note + f"; median of {SEQ_RUNS}",
            versions=versions,
        )
    else:
        emit_unavailable(
            SYSTEM, variant, args.scenario, "the storage floor only has floor/seq200/import"
        )
    con.close()


if __name__ == "__main__":
    main()

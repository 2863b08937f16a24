#!/usr/bin/env python3
"""Benchmark orchestrator: agent-node ("ours") versus its peers.

    python3 bench/setup_peers.py        # once: creates bench/.venv-peers and bench/.venv-jamjet
    python3 bench/run.py [--scenarios seq200,conc200,wait2000,import,floor]
                         [--systems ours,dbos,langgraph,jamjet,sqlite]
                         [--json out.json] [--tmp-root DIR] [--keep-tmp] [--dry-run]

Every (system, variant, scenario) runs in a FRESH subprocess, with the right
interpreter, in a FRESH scratch directory (created under --tmp-root, default
bench/results/tmp/, i.e. on the project's disk rather than a possible tmpfs
/tmp, and deleted afterwards).  Each script prints JSON lines (see
bench/common.py); this script collects them, prints one table per scenario
and the "target" ratios of ours versus the best peer, and optionally writes
everything to --json.  Only the standard library is needed here.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
ALL_SCENARIOS = ["seq200", "conc200", "wait2000", "import", "floor"]
ALL_SYSTEMS = ["ours", "dbos", "langgraph", "jamjet", "sqlite"]
PEERS = ["dbos", "langgraph", "jamjet"]  # "best peer" candidates (sqlite is the floor, not a peer)
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"

PEERS_PY = BENCH / ".venv-peers" / "bin" / "python"
JAMJET_PY = BENCH / ".venv-jamjet" / "bin" / "python"
OURS_PY = ROOT / ".venv" / "bin" / "python"

# system -> interpreter, script, flag that selects the variant, variants per scenario
SYSTEMS: dict[str, dict[str, Any]] = {
    "ours": {
        "python": OURS_PY,
        "script": BENCH / "ours.py",
        "flag": "--store-kind",
        "variants": {
            "seq200": ["sqlite", "sqlite-full", "memory", "postgres"],
            "conc200": ["sqlite", "sqlite-full", "memory", "postgres"],
            "wait2000": ["sqlite", "memory"],
            "import": ["sqlite"],
        },
        "hint": "bench/ours.py is written separately; the project venv .venv must exist",
    },
    "dbos": {
        "python": PEERS_PY,
        "script": BENCH / "peers" / "dbos_bench.py",
        "flag": "--variant",
        "variants": {
            "seq200": ["sync", "async"],
            "conc200": ["sync", "async"],
            "wait2000": ["async", "sync"],
            "import": ["-"],
        },
        "hint": "run: python3 bench/setup_peers.py",
    },
    "langgraph": {
        "python": PEERS_PY,
        "script": BENCH / "peers" / "langgraph_bench.py",
        "flag": "--variant",
        "variants": {
            "seq200": ["sync", "default"],
            "conc200": ["sync", "default"],
            "wait2000": ["default"],
            "import": ["-"],
        },
        "hint": "run: python3 bench/setup_peers.py",
    },
    "jamjet": {
        "python": JAMJET_PY,
        "script": BENCH / "peers" / "jamjet_bench.py",
        "flag": "--variant",
        "variants": {
            "seq200": ["durable"],
            "conc200": ["durable"],
            "wait2000": ["durable"],
            "import": ["-"],
        },
        "hint": "run: python3 bench/setup_peers.py (needs a Python 3.12 interpreter)",
    },
    "sqlite": {
        "python": PEERS_PY,
        "script": BENCH / "peers" / "sqlite_floor.py",
        "flag": "--variant",
        "variants": {
            "floor": ["normal", "full"],
            "seq200": ["normal", "full"],
        },
        "hint": "run: python3 bench/setup_peers.py",
    },
}

# Columns per scenario: (metric key, header, format). The first one is the headline.
COLUMNS: dict[str, list[tuple[str, str, str]]] = {
    "seq200": [
        ("steps_per_s", "steps/s (median)", "{:,.0f}"),
        ("steps_per_s_best", "best", "{:,.0f}"),
        ("ms_per_step", "ms/step", "{:.3f}"),
    ],
    "conc200": [
        ("steps_per_s", "steps/s", "{:,.0f}"),
        ("workflows_per_s", "workflows/s", "{:,.1f}"),
        ("steps_per_s_best", "best steps/s", "{:,.0f}"),
    ],
    "wait2000": [
        ("rss_bytes_per_wait", "RSS B/wait", "{:,.0f}"),
        ("disk_bytes_per_wait", "disk B/wait", "{:,.0f}"),
        ("idle_cpu_pct", "idle CPU %", "{:.2f}"),
        ("park_s", "park s", "{:.1f}"),
        ("restart_rss_bytes_per_wait", "restart RSS B/wait", "{:,.0f}"),
    ],
    "import": [
        ("import_s", "import ms", "ms"),
        ("rss_bytes", "RSS after MiB", "mib"),
        ("import_rss_bytes", "RSS added MiB", "mib"),
    ],
    "floor": [("commits_per_s", "commits/s", "{:,.0f}"), ("us_per_commit", "us/commit", "{:.1f}")],
}

# Target ratios: (scenario, metric, higher_is_better)
TARGETS: list[tuple[str, str, bool]] = [
    ("seq200", "steps_per_s", True),
    ("conc200", "steps_per_s", True),
    ("conc200", "workflows_per_s", True),
    ("wait2000", "rss_bytes_per_wait", False),
    ("wait2000", "disk_bytes_per_wait", False),
    ("wait2000", "idle_cpu_pct", False),
    ("import", "import_s", False),
    ("import", "rss_bytes", False),
]


# The issues' goals for ours, per (scenario, metric), issue 18's where it raised
# the first's (seq200 2x -> 2.5x, conc200 5x -> 7x, RSS per wait 512 -> 400 B):
#   ("ratio", x): ratio to the best peer >= x;  ("below", v): ours' own value < v.
GOALS: dict[tuple[str, str], tuple[str, float, str]] = {
    ("seq200", "steps_per_s"): ("ratio", 2.5, ">= 2.5x best peer"),
    ("conc200", "steps_per_s"): ("ratio", 7.0, ">= 7x best peer"),
    ("conc200", "workflows_per_s"): ("ratio", 7.0, ">= 7x best peer"),
    ("wait2000", "rss_bytes_per_wait"): ("below", 400.0, "< 400 B"),
    ("wait2000", "disk_bytes_per_wait"): ("below", 1024.0, "< 1,024 B"),
    ("wait2000", "idle_cpu_pct"): ("below", 0.5, "~0 (< 0.5 % of a core)"),
    ("import", "import_s"): ("below", 0.300, "< 300 ms"),
    ("import", "rss_bytes"): ("below", 60 * 1048576, "< 60 MiB"),
}


def goal_met(scenario: str, metric: str, ours: float | None, ratio: float | None) -> bool | None:
    goal = GOALS.get((scenario, metric))
    if goal is None or ours is None:
        return None
    kind, value, _text = goal
    if kind == "ratio":
        return None if ratio is None else ratio >= value
    return ours < value


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def clean_env(system: str) -> dict[str, str]:
    """Environment for a child: no framework/cloud/tracing settings leaking in."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.upper().startswith(
            (
                "DBOS",
                "LANGCHAIN",
                "LANGSMITH",
                "JAMJET",
                "OTEL_",
                "PYTHONPATH",
                "PYTHONSTARTUP",
                "VIRTUAL_ENV",
            )
        )
    }
    env["PYTHONUNBUFFERED"] = "1"
    if system == "ours":
        env["AGENT_NODE_BENCH_PG_URL"] = os.environ.get("AGENT_NODE_BENCH_PG_URL", DEFAULT_PG_URL)
    return env


def unavailable(system: str, variant: str, scenario: str, reason: str) -> dict[str, Any]:
    return {
        "system": system,
        "variant": variant,
        "scenario": scenario,
        "metrics": {},
        "note": f"unavailable: {reason}",
        "unavailable": reason,
    }


def run_one(
    system: str, variant: str, scenario: str, tmp_root: Path, timeout: float, keep: bool
) -> list[dict]:
    spec = SYSTEMS[system]
    py, script = Path(spec["python"]), Path(spec["script"])
    if not script.exists() or not py.exists():
        what = (
            f"{script.relative_to(ROOT)} not found"
            if not script.exists()
            else f"interpreter {py} missing"
        )
        log(f"[run] {system:9s} {variant:8s} {scenario:8s}    -    unavailable: {what}")
        return [unavailable(system, variant, scenario, f"{what} ({spec['hint']})")]
    tmp = Path(
        tempfile.mkdtemp(prefix=f"{system}-{variant}-{scenario}-".replace("/", "_"), dir=tmp_root)
    )
    cmd = [str(py), str(script), scenario, spec["flag"], variant, "--dir", str(tmp)]
    cwd = (
        ROOT if system == "ours" else tmp
    )  # peers: a neutral cwd (no stray config files picked up)
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd, cwd=cwd, env=clean_env(system), capture_output=True, text=True, timeout=timeout
        )
        out, err, rc = proc.stdout, proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        err, rc = f"timeout after {timeout:.0f}s", -1
    finally:
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)
    wall = time.perf_counter() - t0
    rows = []
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            row.setdefault("system", system)
            row.setdefault("variant", variant)
            row.setdefault("scenario", scenario)
            row.setdefault("metrics", {})
            rows.append(row)
    if not rows:
        tail = " | ".join(err.strip().splitlines()[-3:]) if err.strip() else "(no output)"
        rows = [
            {
                "system": system,
                "variant": variant,
                "scenario": scenario,
                "metrics": {},
                "note": f"error: exit {rc}: {tail}",
                "error": err[-4000:],
                "returncode": rc,
            }
        ]
    for r in rows:
        r["wall_s"] = round(wall, 2)
        r["command"] = " ".join(cmd)
    status = "ok" if any(r["metrics"] for r in rows) else rows[0]["note"][:100]
    log(f"[run] {system:9s} {variant:8s} {scenario:8s} {wall:6.1f}s  {status}")
    return rows


# --------------------------------------------------------------------------- printing


def fmt(value: Any, f: str) -> str:
    if value is None:
        return "-"
    if f == "ms":
        return f"{value * 1000:,.1f}"
    if f == "mib":
        return f"{value / 1048576:,.1f}"
    try:
        return f.format(value)
    except (ValueError, TypeError):
        return str(value)


def print_table(scenario: str, rows: list[dict]) -> None:
    cols = COLUMNS[scenario]
    header = ["system", "variant"] + [c[1] for c in cols]
    body = []
    notes = []
    for r in rows:
        m = r.get("metrics") or {}
        if m:
            cells = [fmt(m.get(k), f) for k, _h, f in cols]
        else:
            cells = ["n/a"] * len(cols)
        body.append([r["system"], r["variant"], *cells])
        if r.get("note"):
            notes.append(f"  {r['system']}/{r['variant']}: {r['note']}")
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body, strict=False)]
    line = "  ".join(
        h.ljust(w) if i < 2 else h.rjust(w)
        for i, (h, w) in enumerate(zip(header, widths, strict=False))
    )
    print(f"\n== {scenario} " + "=" * max(0, len(line) - len(scenario) - 4))
    print(line)
    print("  ".join("-" * w for w in widths))
    for b in body:
        print(
            "  ".join(
                str(x).ljust(w) if i < 2 else str(x).rjust(w)
                for i, (x, w) in enumerate(zip(b, widths, strict=False))
            )
        )
    for n in notes:
        print(n)


def targets(rows: list[dict]) -> list[dict]:
    """ours (every variant present) versus the best peer, per headline metric.

    ratio = ours/peer when higher is better, peer/ours when lower is better,
    so ratio > 1 always means ours is better.
    """
    out = []
    for scenario, metric, higher in TARGETS:
        peer_rows = [
            r
            for r in rows
            if r["scenario"] == scenario
            and r["system"] in PEERS
            and isinstance((r.get("metrics") or {}).get(metric), (int, float))
        ]
        ours_rows = [
            r
            for r in rows
            if r["scenario"] == scenario
            and r["system"] == "ours"
            and isinstance((r.get("metrics") or {}).get(metric), (int, float))
        ]
        if not peer_rows:
            continue
        best = (max if higher else min)(peer_rows, key=lambda r: r["metrics"][metric])
        pv = best["metrics"][metric]
        for o in ours_rows or [None]:
            ov = o["metrics"][metric] if o else None
            ratio = None
            if ov is not None:
                num, den = (ov, pv) if higher else (pv, ov)
                ratio = (num / den) if den else (float("inf") if num else 1.0)
            out.append(
                {
                    "scenario": scenario,
                    "metric": metric,
                    "higher_is_better": higher,
                    "ours_variant": o["variant"] if o else None,
                    "ours": ov,
                    "best_peer": f"{best['system']}/{best['variant']}",
                    "best_peer_value": pv,
                    "ratio": ratio,
                    "goal": GOALS.get((scenario, metric), ("", 0, ""))[2] or None,
                    "goal_met": goal_met(scenario, metric, ov, ratio),
                }
            )
    return out


def num(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.4g}"


def print_targets(tg: list[dict]) -> None:
    if not tg:
        return
    print("\n== targets: ours vs best peer (ratio > 1 means ours is better) ==")
    for t in tg:
        arrow = "higher=better" if t["higher_is_better"] else "lower=better"
        ours = "n/a" if t["ours"] is None else num(t["ours"])
        ratio = "n/a" if t["ratio"] is None else f"{t['ratio']:.2f}x"
        if t["ratio"] == 0 and not t["best_peer_value"]:
            ratio += " (best peer is 0)"
        label = f"ours[{t['ours_variant']}]" if t["ours_variant"] else "ours"
        goal = ""
        if t.get("goal"):
            verdict = {True: "MET", False: "MISSED", None: "n/a"}[t.get("goal_met")]
            goal = f"   goal {t['goal']}: {verdict}"
        print(
            f"  {t['scenario']:8s} {t['metric']:20s} ({arrow}): {label} {ours} vs "
            f"{t['best_peer']} {num(t['best_peer_value'])} -> {ratio}{goal}"
        )


# --------------------------------------------------------------------------- main


def parse_cli() -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--scenarios", default=",".join(ALL_SCENARIOS))
    ap.add_argument("--systems", default=",".join(ALL_SYSTEMS))
    ap.add_argument(
        "--variants", default="", help="optional filter, e.g. dbos:async,langgraph:sync,ours:sqlite"
    )
    ap.add_argument("--json", help="write all rows + target ratios to this file")
    ap.add_argument(
        "--tmp-root",
        default=str(BENCH / "results" / "tmp"),
        help="parent of the per-run scratch dirs (default bench/results/tmp)",
    )
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per subprocess")
    ap.add_argument(
        "--keep-tmp", action="store_true", help="keep the scratch dirs (for inspection)"
    )
    ap.add_argument("--dry-run", action="store_true", help="print the commands only")
    a = ap.parse_args()
    a.scenarios = [s for s in a.scenarios.split(",") if s]
    a.systems = [s for s in a.systems.split(",") if s]
    bad = [s for s in a.scenarios if s not in ALL_SCENARIOS]
    if bad:
        ap.error(f"unknown scenario(s) {bad} (choose from {','.join(ALL_SCENARIOS)})")
    bad = [s for s in a.systems if s not in ALL_SYSTEMS]
    if bad:
        ap.error(f"unknown system(s) {bad} (choose from {','.join(ALL_SYSTEMS)})")
    a.vfilter = {}
    for item in filter(None, a.variants.split(",")):
        sysname, _, var = item.partition(":")
        a.vfilter.setdefault(sysname, set()).add(var)
    return a


def build_plan(a: argparse.Namespace) -> list[tuple[str, str, str]]:
    plan = []
    for scenario in a.scenarios:
        for system in a.systems:
            for variant in SYSTEMS[system]["variants"].get(scenario, []):
                if system in a.vfilter and variant not in a.vfilter[system]:
                    continue
                plan.append((system, variant, scenario))
    return plan


def print_hints(systems: list[str]) -> None:
    """Hints for missing venvs / scripts, once, up front."""
    for s in systems:
        py = Path(SYSTEMS[s]["python"])
        if not py.exists():
            log(f"[run] NOTE: {s}: {py} not found -> {SYSTEMS[s]['hint']}")
        if s == "ours" and not Path(SYSTEMS[s]["script"]).exists():
            log("[run] NOTE: ours: bench/ours.py not found -> skipped")


def report(a: argparse.Namespace, rows: list[dict], total_s: float) -> None:
    print(
        f"\nagent-node benchmarks - {platform.node()} - {os.cpu_count()} cpus - "
        f"{_dt.datetime.now().isoformat(timespec='seconds')} - total {total_s:.0f}s"
    )
    for scenario in a.scenarios:
        srows = [r for r in rows if r["scenario"] == scenario]
        if srows:
            print_table(scenario, srows)
    tg = targets(rows)
    print_targets(tg)

    versions: dict[str, dict] = {}
    for r in rows:
        if r.get("versions"):
            versions.setdefault(r["system"], r["versions"])
    if versions:
        print("\n== versions ==")
        for s, v in versions.items():
            print(f"  {s}: " + ", ".join(f"{k} {val}" for k, val in v.items()))

    if a.json:
        meta = {
            "date": _dt.datetime.now().isoformat(timespec="seconds"),
            "host": platform.node(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "argv": sys.argv,
            "tmp_root": a.tmp_root,
            "versions": versions,
        }
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(
            json.dumps({"meta": meta, "rows": rows, "targets": tg}, indent=2, default=str)
        )
        log(f"[run] wrote {a.json}")


def main() -> int:
    a = parse_cli()
    print_hints(a.systems)
    plan = build_plan(a)
    if a.dry_run:
        for system, variant, scenario in plan:
            spec = SYSTEMS[system]
            print(
                f"{spec['python']} {spec['script']} {scenario} {spec['flag']} {variant} --dir DIR"
            )
        return 0

    tmp_root = Path(a.tmp_root)
    tmp_root.mkdir(parents=True, exist_ok=True)
    log(f"[run] {len(plan)} runs; scratch dirs under {tmp_root}")
    rows: list[dict] = []
    t_all = time.perf_counter()
    for system, variant, scenario in plan:
        rows.extend(run_one(system, variant, scenario, tmp_root, a.timeout, a.keep_tmp))
    try:
        tmp_root.rmdir()  # only if empty
    except OSError:
        pass
    report(a, rows, time.perf_counter() - t_all)
    return 1 if any(r.get("error") for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())

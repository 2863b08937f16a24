"""The runs of ``bench/state_bench.py``: ours, its peers, and the table of both.

Each run is a fresh subprocess with a fresh scratch directory under
``bench/``. Ours: ``state_bench.py _one`` with the project's interpreter from
the repository root. The peers (``--peers``, scenarios ``big`` and
``append``): ``bench/peers/dbos_bench.py`` and ``langgraph_bench.py`` with
``bench/.venv-peers``'s interpreter, their scratch directory as cwd and
``run.py``'s cleaned environment (no ``DBOS*``, ``LANGCHAIN*``, ... variables),
as ``bench/run.py`` runs them; each prints one JSON row (``common.emit``).
Standard library only.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from run import clean_env

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PEERS_PY = BENCH / ".venv-peers" / "bin" / "python"
PEER_SCENARIOS = ("big", "append")
#: Peer -> its script and the variant measured (each step committed before
#: the next one starts, as ours).
PEERS = {
    "dbos": (BENCH / "peers" / "dbos_bench.py", "sync"),
    "langgraph": (BENCH / "peers" / "langgraph_bench.py", "sync"),
}
#: (scenario, metric key, header, higher is better)
COLUMNS = (
    ("big", "steps_per_s", "big steps/s", True),
    ("big", "bytes_per_step", "big B/step", False),
    ("append", "steps_per_s", "append steps/s", True),
    ("append", "steps_per_s_at_10", "at step 10", True),
    ("append", "steps_per_s_at_end", "at the end", True),
    ("append", "bytes_per_step", "append B/step", False),
)


def ours_row(script: Path, scenario: str, kind: str, wal: bool) -> dict[str, Any]:
    row: dict[str, Any] = {"scenario": scenario, "system": "ours", "store": kind}
    with tempfile.TemporaryDirectory(dir=BENCH) as tmp:
        proc = subprocess.run(
            [sys.executable, str(script), "_one", scenario, kind, tmp, "1" if wal else "0"],
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
    if proc.returncode != 0:
        return {**row, "error": proc.stderr[-1500:]}
    return {**row, **json.loads(proc.stdout)}


def peer_row(system: str, scenario: str) -> dict[str, Any]:
    script, variant = PEERS[system]
    row: dict[str, Any] = {"scenario": scenario, "system": system, "variant": variant}
    if not PEERS_PY.exists():
        return {**row, "error": "no bench/.venv-peers: run python3 bench/setup_peers.py"}
    with tempfile.TemporaryDirectory(dir=BENCH) as tmp:
        proc = subprocess.run(
            [str(PEERS_PY), str(script), scenario, "--variant", variant, "--dir", tmp],
            capture_output=True,
            text=True,
            cwd=tmp,
            env=clean_env(system),
        )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {**row, "error": proc.stderr[-1500:] or f"exit {proc.returncode}"}
    emitted = json.loads(lines[-1])
    if not emitted["metrics"]:
        return {**row, "error": emitted.get("note", "no metrics")}
    return {**row, **emitted["metrics"], "versions": emitted.get("versions", {})}


def label(row: dict[str, Any]) -> str:
    if row["system"] == "ours":
        return f"ours {row['store']}"
    return f"{row['system']} {row['variant']}"


def table(rows: list[dict[str, Any]]) -> str:
    """One line per system, a column per figure; then, for each of our
    stores, each figure against the best peer's (> 1: ours is better)."""
    figures: dict[str, dict[str, float]] = {}
    for row in rows:
        line = figures.setdefault(label(row), {})
        for scenario, key, header, _ in COLUMNS:
            if row["scenario"] == scenario and isinstance(row.get(key), (int, float)):
                line[header] = row[key]
    headers = [header for _, _, header, _ in COLUMNS]
    width = max(len(name) for name in [*figures, "ours sqlite / best peer"])
    out = [" | ".join([" " * width, *(f"{h:>14}" for h in headers)])]
    for name, line in figures.items():
        cells = (f"{line[h]:>14,.0f}" if h in line else f"{'-':>14}" for h in headers)
        out.append(" | ".join([f"{name:<{width}}", *cells]))
    peers = [name for name in figures if not name.startswith("ours ")]
    for name in figures:
        if not name.startswith("ours ") or not peers:
            continue
        cells = []
        for _, _, header, higher in COLUMNS:
            seen = [figures[p][header] for p in peers if header in figures[p]]
            ours = figures[name].get(header)
            if not seen or not ours:
                cells.append(f"{'-':>14}")
                continue
            ratio = ours / max(seen) if higher else min(seen) / ours
            cells.append(f"{ratio:>13.2f}x")
        out.append(" | ".join([f"{name + ' / best peer':<{width}}", *cells]))
    return "\n".join(out)

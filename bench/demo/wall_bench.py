"""``agent-node demo`` wall time, offline, from a fresh start to the final answer.

    .venv/bin/python bench/demo/wall_bench.py [--runs 5] [--json FILE|-]

Each run is a new process ``agent-node demo --offline --no-live`` in a new,
empty home directory — so it makes a dev CA and four certificates, writes the
configurations, starts the three agents (three Python processes that import
the package and open their SQLite stores), asks the question, follows the
network through the coordinator's delegations (research, a draft, the
judge's low score, the revision, the second verdict) and stops the agents.
The scripted model answers at once (``--pace 0``), so what is measured is the
runtime, not a model.

Reported, each as median and max over ``--runs``, in seconds from spawning the
command: ``to_question`` (the three agents listen; the question is sent),
``to_answer`` (the answer is printed: the issue's target, under 10 s) and
``to_exit`` (the three agents stopped too). A second row does the same in a
home kept from the previous run (``warm``: certificates and stores exist),
and a third (``resumed``) runs ``demo --resume`` in a home whose demo was
stopped with Ctrl-C a second after asking (scripted answers paced at 1 s, so
the question was unanswered): the time to finish the question it resumes.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import emit

ROOT = Path(__file__).resolve().parents[2]


def ports() -> int:
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = int(probe.getsockname()[1])
        try:
            for port in range(base, base + 3):
                with socket.socket() as taken:
                    taken.bind(("127.0.0.1", port))
        except OSError:
            continue
        if base < 65000:
            return base


def one(home: Path, *flags: str) -> dict[str, float]:
    command = [sys.executable, "-m", "agent_node.cli.main", "demo", "--offline", "--no-live"]
    command += ["--home", str(home), "--port", str(ports()), "--pace", "0", *flags]
    started = time.perf_counter()
    child = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT
    )
    marks: dict[str, float] = {}
    assert child.stdout is not None
    for line in child.stdout:
        now = time.perf_counter() - started
        if line.startswith("question:"):
            marks.setdefault("to_question", now)
        elif line.startswith("answered in"):
            marks.setdefault("to_answer", now)
    child.wait(timeout=120)
    marks["to_exit"] = time.perf_counter() - started
    if child.returncode != 0 or "to_answer" not in marks:
        raise SystemExit(f"the demo failed (exit {child.returncode})")
    return marks


def interrupted(home: Path) -> None:
    """A demo stopped with Ctrl-C (SIGINT) a second after it asked, its
    question unanswered (the scripted model paced to take longer)."""
    command = [sys.executable, "-m", "agent_node.cli.main", "demo", "--offline", "--no-live"]
    command += ["--home", str(home), "--port", str(ports()), "--pace", "1", "--fresh"]
    child = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT
    )
    assert child.stdout is not None
    for line in child.stdout:
        if line.startswith("question:"):
            time.sleep(1.0)
            child.send_signal(signal.SIGINT)
            break
    child.communicate(timeout=60)


def summary(runs: list[dict[str, float]]) -> dict[str, Any]:
    metrics: dict[str, Any] = {}
    for key in ("to_question", "to_answer", "to_exit"):
        values = [run[key] for run in runs]
        metrics[f"{key}_median_s"] = round(statistics.median(values), 3)
        metrics[f"{key}_max_s"] = round(max(values), 3)
    metrics["runs"] = len(runs)
    return metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", default=None, help="also write the rows to FILE (- = stdout)")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="demo-bench-") as scratch:
        fresh = [one(Path(scratch) / f"fresh{i}") for i in range(args.runs)]
        kept = Path(scratch) / "kept"
        one(kept)
        warm = [one(kept) for _ in range(args.runs)]
        resumed = []
        for i in range(args.runs):
            interrupted(Path(scratch) / f"stopped{i}")
            resumed.append(one(Path(scratch) / f"stopped{i}", "--resume"))
    for variant, runs in (("fresh", fresh), ("warm", warm), ("resumed", resumed)):
        metrics = summary(runs)
        rows.append(emit("agent-node", scenario="demo-offline", variant=variant, metrics=metrics))
        answer, worst = metrics["to_answer_median_s"], metrics["to_answer_max_s"]
        up, done = metrics["to_question_median_s"], metrics["to_exit_median_s"]
        print(
            f"{variant:>7}: answer {answer:.2f} s median (max {worst:.2f}),"
            f" agents up {up:.2f} s, exit {done:.2f} s",
            file=sys.stderr,
        )
    if args.json:
        text = json.dumps(rows, indent=2)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(text)


if __name__ == "__main__":
    main()

"""Peers down for minutes: what parked delegations cost, and how fast they finish.

    .venv/bin/python bench/delegation/outage_bench.py [--outage 120] [--count 1000] \
        [--json bench/results/delegation_outage.json]

Runs the outage scenario of ``tests/e2e/test_outage.py`` (real processes
over mutual TLS: A delegates ``--count`` tasks to a peer that is down from
the start, and ``--count`` to a peer that takes them and is then SIGKILLed;
both stay down ``--outage`` seconds, then come back) and reports what the
test prints: A's CPU while the peers were down, and the time until every
delegation completed after they returned. The test's assertions hold too:
every task completed with its own answer, one remote task per delegation.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIGURES = re.compile(
    r"outage (?P<outage>[\d.]+) s with (?P<parked>\d+) delegations parked: A used"
    r" (?P<cpu>[\d.]+) s CPU \((?P<share>[\d.]+) % of a core\); all completed"
    r" (?P<after>[\d.]+) s after the peers returned"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outage", type=float, default=120.0)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    env = {
        **os.environ,
        "AGENT_NODE_OUTAGE_SECONDS": str(args.outage),
        "AGENT_NODE_OUTAGE_COUNT": str(args.count),
    }
    test = [sys.executable, "-m", "pytest", "tests/e2e/test_outage.py", "-q", "-s"]
    done = subprocess.run(test, cwd=ROOT, env=env, capture_output=True, text=True)
    found = FIGURES.search(done.stdout)
    if done.returncode != 0 or found is None:
        print(done.stdout[-4000:], done.stderr[-2000:], sep="\n")
        raise SystemExit(f"the outage scenario failed (exit {done.returncode})")
    figures = {k: float(v) for k, v in found.groupdict().items()}
    print(
        f"{int(figures['parked'])} delegations parked for {figures['outage']:.0f} s:"
        f" A's CPU {figures['cpu']:.2f} s ({figures['share']:.1f} % of a core);"
        f" all completed {figures['after']:.1f} s after the peers returned;"
        " 0 failed, 0 duplicated (asserted)"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""How long starting takes: ``import agent_node`` and ``agent-node --help``.

    .venv/bin/python bench/startup/startup_bench.py [--fresh] [--runs 10] [--no-cold]
        [--python PATH] [--json FILE|-]

Each figure is the median wall time of ``--runs`` new processes, from spawning
to exit, with a warm page cache and with a cold one (the page cache is dropped
before each run: ``sync; echo 3 > /proc/sys/vm/drop_caches``, which needs root;
without it the cold column says so). Measured:

* ``python -c pass`` — the interpreter alone, the floor under everything;
* ``import agent_node`` (target < 150 ms);
* ``agent-node --help``, the console script of the install (target < 250 ms);
* ``from agent_node import Workflow`` — what a script needs, for information.

``--fresh`` measures a fresh, non-editable install of this working tree: a
wheel is built from it (pip fetches the build backend) and installed into a
new virtual environment, whose dependencies are the measuring interpreter's
(a ``.pth`` line points at its site-packages) — what ``pip install
agent-node`` leaves, without downloading the dependencies.
``--tree`` names another source tree to install (a commit's, from ``git
archive``), to compare. Otherwise ``--python`` (default: this interpreter) is
measured as installed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DROP_CACHES = Path("/proc/sys/vm/drop_caches")

#: (name, what to run given the install's bin directory, target in ms or None).
CASES: list[tuple[str, list[str], float | None]] = [
    ("python -c pass", ["{python}", "-c", "pass"], None),
    ("import agent_node", ["{python}", "-c", "import agent_node"], 150.0),
    ("agent-node --help", ["{bin}/agent-node", "--help"], 250.0),
    (
        "from agent_node import Workflow",
        ["{python}", "-c", "from agent_node import Workflow"],
        None,
    ),
]


def fresh_install(workdir: Path, tree: Path) -> Path:
    """Build a wheel of ``tree``, install it into a new venv; its python."""
    source = workdir / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (tree / name).exists():
            shutil.copy2(tree / name, source / name)
    shutil.copytree(tree / "agent_node", source / "agent_node", ignore=_caches)
    wheels = workdir / "wheels"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "-w", str(wheels), str(source)],
        check=True,
    )
    venv = workdir / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    [wheel] = wheels.glob("*.whl")
    subprocess.run([*pip, "--python", str(python), "install", "--no-deps", str(wheel)], check=True)
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(purelib) / "bench_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


def _caches(directory: str, names: list[str]) -> list[str]:
    return [n for n in names if n == "__pycache__"]


def drop_caches() -> bool:
    os.sync()
    try:
        DROP_CACHES.write_text("3\n")
    except OSError:
        return False
    return True


def timed(command: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=cwd, stdout=subprocess.DEVNULL, check=True)
    return (time.perf_counter() - started) * 1000


def measure(command: list[str], runs: int, cold: bool, cwd: Path) -> float | None:
    timed(command, cwd)  # compiles .pyc files once, as a first start of an install does
    times = []
    for _ in range(runs):
        if cold and not drop_caches():
            return None
        times.append(timed(command, cwd))
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", default=sys.executable, help="interpreter of the install")
    parser.add_argument("--fresh", action="store_true", help="measure a fresh wheel install")
    parser.add_argument(
        "--tree",
        type=Path,
        default=ROOT,
        help="source tree --fresh installs (e.g. an older commit's, from git archive)",
    )
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--no-cold", dest="cold", action="store_false")
    parser.add_argument("--json", metavar="FILE|-", help="also write the rows as JSON lines")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="startup-bench-") as tmp:
        workdir = Path(tmp)
        python = fresh_install(workdir, args.tree) if args.fresh else Path(args.python)
        where = {"python": str(python), "bin": str(python.parent)}
        rows: list[dict[str, Any]] = []
        for name, template, target in CASES:
            command = [part.format(**where) for part in template]
            warm = measure(command, args.runs, False, workdir)
            cold = measure(command, args.runs, True, workdir) if args.cold else None
            rows.append({"case": name, "warm_ms": warm, "cold_ms": cold, "target_ms": target})
    show(rows, args)
    if args.json:
        text = "".join(json.dumps(row) + "\n" for row in rows)
        sys.stdout.write(text) if args.json == "-" else Path(args.json).write_text(text)


def show(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    install = f"fresh wheel install of {args.tree}" if args.fresh else "as installed"
    cold = "cold: page cache dropped before each run" if args.cold else "cold: not measured"
    print(f"median of {args.runs} runs, {install}; {cold}")
    print(f"{'case':34} {'warm ms':>8} {'cold ms':>8} {'target':>8}")
    for row in rows:
        cold_ms = _ms(row["cold_ms"]) if args.cold else "-"
        if args.cold and row["cold_ms"] is None:
            cold_ms = "denied"
        target = f"< {row['target_ms']:.0f}" if row["target_ms"] else ""
        print(f"{row['case']:34} {_ms(row['warm_ms']):>8} {cold_ms:>8} {target:>8}")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Create the virtualenvs the peer benchmarks run in (idempotent).

    python3 bench/setup_peers.py            # create/complete what is missing
    python3 bench/setup_peers.py --force    # reinstall both venvs from scratch
    python3 bench/setup_peers.py --only jamjet

* ``bench/.venv-peers``  (Python 3.11, this interpreter by default):
  DBOS Transact, LangGraph + SQLite checkpointer, aiosqlite, psutil.
  Also used for the raw-sqlite3 floor.
* ``bench/.venv-jamjet`` (Python 3.12: jamjet requires >= 3.12): jamjet, psutil.
  The 3.12 interpreter is found via ``$BENCH_PYTHON312``, ``python3.12`` on
  PATH, or ``~/.pyenv/versions/3.12*/bin/python3.12``.  If there is none, or the
  install fails, a warning is printed and ``bench/run.py`` reports jamjet as
  unavailable instead of failing.

Versions are pinned to the ones the numbers in bench/README.md were measured
with; set ``BENCH_UNPINNED=1`` to install the newest versions instead.
A venv is considered complete when its ``.bench-requirements`` marker matches
the requirement list below, so re-running is a no-op.
Installs go through pip (the configured package index), nothing else.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent

PINNED = {
    "peers": [
        "dbos==3.4.0",
        "langgraph==1.2.22",
        "langgraph-checkpoint==4.3.2",
        "langgraph-checkpoint-sqlite==3.1.2",
        "aiosqlite==0.22.1",
        "psutil==7.2.2",
    ],
    "jamjet": [
        "jamjet==0.12.0",
        "psutil==7.2.2",
    ],
}
UNPINNED = {
    "peers": [
        "dbos>=2.0",
        "langgraph>=1.0",
        "langgraph-checkpoint-sqlite>=3.0",
        "aiosqlite",
        "psutil",
    ],
    "jamjet": ["jamjet>=0.12", "psutil"],
}
VENV_DIR = {"peers": BENCH / ".venv-peers", "jamjet": BENCH / ".venv-jamjet"}
MARKER = ".bench-requirements"


def find_python(kind: str) -> str | None:
    if kind == "peers":
        cand = [os.environ.get("BENCH_PYTHON311"), shutil.which("python3.11")]
        if sys.version_info[:2] == (3, 11):
            cand.insert(0, sys.executable)
        want = (3, 11)
    else:
        cand = [os.environ.get("BENCH_PYTHON312"), shutil.which("python3.12")]
        cand += sorted(
            glob.glob(os.path.expanduser("~/.pyenv/versions/3.12*/bin/python3.12")), reverse=True
        )
        cand += ["/usr/bin/python3.12", "/usr/local/bin/python3.12"]
        want = (3, 12)
    for c in cand:
        if not c or not os.path.exists(c):
            continue
        try:
            out = subprocess.run(
                [c, "-c", "import sys; print(sys.version_info[0], sys.version_info[1])"],
                capture_output=True,
                text=True,
                timeout=30,
                check=True,
            ).stdout.split()
        except Exception:
            continue
        if tuple(map(int, out)) == want:
            return c
    return None


def venv_python(kind: str) -> Path:
    return VENV_DIR[kind] / "bin" / "python"


def setup(kind: str, force: bool) -> bool:
    reqs = (UNPINNED if os.environ.get("BENCH_UNPINNED") else PINNED)[kind]
    venv = VENV_DIR[kind]
    marker = venv / MARKER
    wanted = "\n".join(reqs) + "\n"
    if force and venv.exists():
        shutil.rmtree(venv)
    if marker.exists() and marker.read_text() == wanted and venv_python(kind).exists():
        print(f"[setup_peers] {venv.name}: up to date ({', '.join(reqs)})")
        return True
    py = find_python(kind)
    if py is None:
        need = "3.11" if kind == "peers" else "3.12 (set BENCH_PYTHON312=/path/to/python3.12)"
        print(
            f"[setup_peers] WARNING: no Python {need} found; {venv.name} not created",
            file=sys.stderr,
        )
        return False
    if not venv_python(kind).exists():
        print(f"[setup_peers] creating {venv} with {py}")
        subprocess.run([py, "-m", "venv", str(venv)], check=True)
    pip = [str(venv_python(kind)), "-m", "pip", "--disable-pip-version-check"]
    print(f"[setup_peers] {venv.name}: pip install {' '.join(reqs)}")
    r = subprocess.run([*pip, "install", "-q", *reqs])
    if r.returncode != 0:
        print(
            f"[setup_peers] WARNING: pip install failed for {venv.name} (exit {r.returncode})",
            file=sys.stderr,
        )
        return False
    marker.write_text(wanted)
    freeze = subprocess.run([*pip, "freeze"], capture_output=True, text=True).stdout
    (venv / "bench-freeze.txt").write_text(freeze)
    print(f"[setup_peers] {venv.name}: ready (full list in {venv.name}/bench-freeze.txt)")
    return True


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--force", action="store_true", help="delete and recreate the venvs")
    ap.add_argument("--only", choices=("peers", "jamjet"), help="set up only one venv")
    a = ap.parse_args()
    kinds = [a.only] if a.only else ["peers", "jamjet"]
    ok = {k: setup(k, a.force) for k in kinds}
    if not ok.get("peers", True):
        return 1  # dbos/langgraph/sqlite cannot run at all
    if not ok.get("jamjet", True):
        print(
            "[setup_peers] jamjet venv unavailable: bench/run.py will report jamjet as unavailable",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

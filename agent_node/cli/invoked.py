"""How the user started ``agent-node``, for the commands our hints print.

The quickstart installs into ``.venv`` without activating it, so the
console script is ``.venv/bin/agent-node``, not on ``PATH``: a hint that
says ``agent-node serve …`` would fail when pasted. Hints are printed with
the command as it was typed instead — ``agent-node`` when that is what
``PATH`` finds anyway.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path

__all__ = ["PROGRAM", "command_name", "shown_path"]

PROGRAM = "agent-node"


def command_name() -> str:
    """``agent-node``, or the path it was started by when ``PATH`` would not find it."""
    typed = sys.argv[0] if sys.argv else ""
    if Path(typed).name != PROGRAM or os.sep not in typed:
        # Typed bare (PATH found it), or not the console script at all
        # (python -m, a test runner): the plain name.
        return PROGRAM
    found = shutil.which(PROGRAM)
    if found is not None and _same(found, typed):
        return PROGRAM
    return shlex.quote(typed)


def _same(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def shown_path(path: Path) -> str:
    """``path`` as a hint prints it: relative to the working directory when
    it is under it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)

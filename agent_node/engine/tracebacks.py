"""Where a step failed: the traceback of a user's code, kept in its failure event.

A ``node_failed`` event of a python node carries the traceback of the error
(``data.traceback``) so that ``run``, ``inspect`` and ``events`` can show the
file and line that raised, long after the process that ran the step is gone.
Only the user's frames are kept — the engine's own (this package) say nothing
to the author of the step — and the text is bounded: the innermost frames,
and a long message is cut in its middle.
"""

from __future__ import annotations

import os
import traceback
from pathlib import Path

__all__ = ["MAX_CHARS", "MAX_FRAMES", "step_traceback"]

#: The innermost frames kept, and the most characters stored.
MAX_FRAMES = 20
MAX_CHARS = 4000

_PACKAGE = str(Path(__file__).resolve().parents[1]) + os.sep


def step_traceback(error: BaseException) -> str | None:
    """The traceback of ``error`` without this package's frames; ``None``
    when no other frame raised it (an error of the engine's own making)."""
    frames = [
        frame
        for frame in traceback.extract_tb(error.__traceback__)
        if not str(Path(frame.filename).resolve()).startswith(_PACKAGE)
    ]
    if not frames:
        return None
    kept = frames[-MAX_FRAMES:]
    lines = ["Traceback (most recent call last):\n"]
    if len(frames) > len(kept):
        lines.append(f"  ... {len(frames) - len(kept)} outer frames left out\n")
    lines += traceback.StackSummary.from_list(kept).format()
    lines += traceback.format_exception_only(type(error), error)
    return _bounded("".join(lines).rstrip("\n"))


def _bounded(text: str) -> str:
    if len(text) <= MAX_CHARS:
        return text
    head, tail = MAX_CHARS // 4, MAX_CHARS * 3 // 4
    cut = len(text) - head - tail
    return f"{text[:head]}\n  ... {cut} characters left out ...\n{text[-tail:]}"

"""Text from outside, made safe to print on a terminal or in a log line.

A client's message, a peer's answer, a JWT's subject, a request's path: any
of them may hold a line feed that forges a log line, or an escape sequence
that a terminal obeys (OSC 52 writes the clipboard, OSC 0 the window title,
CR overwrites what was printed). :func:`printable` shows every control
character escaped, as Python writes it in a string literal (``\\n``,
``\\x1b``); :func:`printable_json` writes JSON whose text holds none raw.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["printable", "printable_json"]

#: C0 controls, DEL, C1 controls, and the two Unicode line and paragraph
#: separators (``str.splitlines`` and some log viewers break lines there).
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
#: The same but the line feed: a block of lines (a traceback) keeps its lines.
_CONTROLS_BUT_LF = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")
#: What JSON leaves raw of those (it escapes C0 itself).
_JSON_RAW = re.compile("[\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def printable(text: str, *, lines: bool = False) -> str:
    """``text`` with its control characters shown escaped; ``lines``: line
    feeds kept (a traceback, a model's prose), every other one escaped."""
    return (_CONTROLS_BUT_LF if lines else _CONTROLS).sub(_escaped, text)


def printable_json(value: Any, *, indent: int | None = None, **options: Any) -> str:
    """``value`` as JSON (non-ASCII text as it is) with no control character
    raw: the ones JSON allows in a string (DEL, C1, U+2028/9) as ``\\uXXXX``."""
    text = json.dumps(value, ensure_ascii=False, indent=indent, **options)
    return _JSON_RAW.sub(lambda found: f"\\u{ord(found.group()):04x}", text)


def _escaped(found: re.Match[str]) -> str:
    char = found.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"

"""Text from outside, made safe to print on a terminal or in a log line.

A client's message, a peer's answer, a JWT's subject, a request's path: any
of them may hold a line feed that forges a log line, or an escape sequence
that a terminal obeys (OSC 52 writes the clipboard, OSC 0 the window title,
CR overwrites what was printed), or a Unicode bidirectional control that
shows what follows it reversed or moved (after a U+202E, ``gpj.exe`` reads
``exe.jpg``; "Trojan Source", CVE-2021-42574). :func:`printable`
shows every such character escaped, as Python writes it in a string literal
(``\\n``, ``\\x1b``, ``\\u202e``); :func:`printable_json` writes JSON whose
text holds none raw.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["printable", "printable_json"]

#: Unicode's bidirectional controls: the marks (ALM, LRM, RLM), embeddings
#: and overrides (LRE, RLE, PDF, LRO, RLO) and isolates (LRI, RLI, FSI, PDI).
_BIDI = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
#: C0 controls, DEL, C1 controls, the two Unicode line and paragraph
#: separators (``str.splitlines`` and some log viewers break lines there),
#: and the bidirectional controls.
_CONTROLS = re.compile(f"[\x00-\x1f\x7f-\x9f\u2028\u2029{_BIDI}]")
#: The same but the line feed: a block of lines (a traceback) keeps its lines.
_CONTROLS_BUT_LF = re.compile(f"[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029{_BIDI}]")
#: What JSON leaves raw of those (it escapes C0 itself).
_JSON_RAW = re.compile(f"[\x7f-\x9f\u2028\u2029{_BIDI}]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def printable(text: str, *, lines: bool = False) -> str:
    """``text`` with its control characters shown escaped; ``lines``: line
    feeds kept (a traceback, a model's prose), every other one escaped."""
    return (_CONTROLS_BUT_LF if lines else _CONTROLS).sub(_escaped, text)


def printable_json(value: Any, *, indent: int | None = None, **options: Any) -> str:
    """``value`` as JSON (non-ASCII text as it is) with no control character
    raw: the ones JSON allows in a string (DEL, C1, U+2028/9, bidirectional
    controls) as ``\\uXXXX`` — the same value to a JSON reader."""
    text = json.dumps(value, ensure_ascii=False, indent=indent, **options)
    return _JSON_RAW.sub(lambda found: f"\\u{ord(found.group()):04x}", text)


def _escaped(found: re.Match[str]) -> str:
    char = found.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"

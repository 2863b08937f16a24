"""JSON as A2A's peers must send it (I-JSON, RFC 7493): what Python's reader
takes besides is refused.

Python's :func:`json.loads` takes ``NaN``, ``Infinity`` and ``-Infinity``,
numbers past a float's range (``1e999`` reads as infinity), and unpaired
surrogates (``"\\ud800"``), none of which JSON allows, a store can keep, or
an answer can carry; and it raises :class:`RecursionError`, not a
``ValueError``, for an array nested a few thousand deep. :func:`loads` reads
what a client or a peer sent and raises :class:`ValueError` for all of them,
saying which.
"""

from __future__ import annotations

import json
import math
from typing import Any

__all__ = ["NestedTooDeeply", "loads"]


class NestedTooDeeply(ValueError):
    """The text nests arrays or objects deeper than the reader can follow."""


def loads(text: str | bytes) -> Any:
    """The JSON value of ``text``; :class:`ValueError` (a
    :class:`json.JSONDecodeError`, :class:`UnicodeError` or
    :class:`NestedTooDeeply`) for anything I-JSON does not allow."""
    try:
        value = json.loads(text, parse_constant=_refuse, parse_float=_finite)
    except RecursionError:
        raise NestedTooDeeply("JSON nested too deeply") from None
    # Unpaired surrogates parse, but cannot be stored or sent on as UTF-8.
    json.dumps(value, ensure_ascii=False).encode("utf-8")
    return value


def _refuse(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of range")
    return value

"""JSON Canonicalization Scheme (RFC 8785): one JSON value, one byte string.

What an Agent Card signature covers (:mod:`agent_node.a2a.peers.signing`): object
members sorted by the UTF-16 code units of their names, no whitespace,
strings escaped as ECMAScript's ``JSON.stringify`` does, numbers written as
ECMAScript's ``Number.prototype.toString`` (I-JSON: integers beyond 2**53 as
the double they become).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

__all__ = ["canonical"]

#: ECMAScript writes integers exactly up to here; beyond, as the double they become.
_SAFE_INTEGER = 2**53


def canonical(value: Any) -> bytes:
    """``value`` (parsed JSON) in the RFC 8785 canonical form, as UTF-8.

    Object members sorted by the UTF-16 code units of their names, no
    whitespace, strings escaped as ECMAScript's ``JSON.stringify`` does and
    numbers written as ECMAScript's ``Number.prototype.toString``. Raises
    ``ValueError`` for what I-JSON forbids (NaN, infinities, lone surrogates)
    and ``TypeError`` for what JSON cannot hold.
    """
    out: list[str] = []
    _write(value, out)
    return "".join(out).encode("utf-8")


def _write(value: Any, out: list[str]) -> None:
    if value is None or isinstance(value, bool):
        out.append({None: "null", True: "true", False: "false"}[value])
    elif isinstance(value, str):
        out.append(json.dumps(value, ensure_ascii=False))
    elif isinstance(value, int):
        out.append(str(value) if abs(value) <= _SAFE_INTEGER else _number(float(value)))
    elif isinstance(value, float):
        out.append(_number(value))
    elif isinstance(value, Mapping):
        _write_object(value, out)
    elif isinstance(value, list | tuple):
        out.append("[")
        for index, item in enumerate(value):
            out.append("," if index else "")
            _write(item, out)
        out.append("]")
    else:
        raise TypeError(f"JCS: {type(value).__name__} is not a JSON value")


def _write_object(value: Mapping[Any, Any], out: list[str]) -> None:
    if not all(isinstance(key, str) for key in value):
        raise TypeError("JCS: object member names must be strings")
    # UTF-16 big-endian bytes compare as the code units do (RFC 8785 §3.2.3).
    members = sorted(value.items(), key=lambda item: item[0].encode("utf-16-be", "surrogatepass"))
    out.append("{")
    for index, (key, item) in enumerate(members):
        out.append(("," if index else "") + json.dumps(key, ensure_ascii=False) + ":")
        _write(item, out)
    out.append("}")


def _number(value: float) -> str:
    """ECMAScript's Number::toString for a finite double (ECMA-262 §6.1.6.1.20)."""
    if not math.isfinite(value):
        raise ValueError(f"JCS: {value} is not a JSON number")
    if value == 0:
        return "0"  # -0 too
    digits, n = _shortest(abs(value))
    k = len(digits)
    if k <= n <= 21:
        text = digits + "0" * (n - k)
    elif 0 < n <= 21:
        text = f"{digits[:n]}.{digits[n:]}"
    elif -6 < n <= 0:
        text = "0." + "0" * -n + digits
    else:
        mantissa = digits if k == 1 else f"{digits[0]}.{digits[1:]}"
        text = f"{mantissa}e{'+' if n > 0 else '-'}{abs(n - 1)}"
    return ("-" if value < 0 else "") + text


def _shortest(value: float) -> tuple[str, int]:
    """Digits ``s`` and exponent ``n`` with ``value == 0.s * 10**n``, ``s`` the
    shortest that round-trips: what Python's ``repr`` finds too."""
    mantissa, _, exponent = repr(value).partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = whole + fraction
    significant = digits.lstrip("0")
    n = len(whole) + int(exponent or 0) - (len(digits) - len(significant))
    return significant.rstrip("0"), n

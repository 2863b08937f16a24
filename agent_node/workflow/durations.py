"""Durations as authors write them: ``30``, ``1.5``, ``"500ms"``, ``"2s"``,
``"5m"``, ``"1h"`` — and as servers send them (``Retry-After``)."""

from __future__ import annotations

import email.utils
import re
import time

__all__ = ["as_duration", "parse_age", "parse_duration", "parse_retry_after"]

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")


def parse_duration(value: object) -> float:
    """Seconds as a float; raises ``ValueError`` naming the accepted forms."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _PATTERN.match(value)):
        seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    else:
        raise ValueError(
            f"not a duration: {value!r}"
            " (use seconds as a number, or '500ms', '2s', '5m', '1h', '1d')"
        )
    if seconds < 0:
        raise ValueError(f"a duration cannot be negative: {value!r}")
    return seconds


def as_duration(value: object) -> object:
    """:func:`parse_duration` as a pydantic ``before`` validator of an
    optional field: None stays None, and a refusal is the plain message."""
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise ValueError(str(exc)) from None


def parse_age(value: object) -> float:
    """An age past which things are deleted (``prune --older-than``,
    ``retention.finished``), in seconds: its unit must be written. A bare
    ``30`` is seconds to :func:`parse_duration`, and who writes it here
    most likely means days: read as seconds, it deletes today's work."""
    hint = "(write '30d', '12h', '90m' or '45s')"
    if isinstance(value, str) and (match := _PATTERN.match(value)) and match.group(2):
        seconds = parse_duration(value)
        if seconds > 0:
            return seconds
        raise ValueError(f"an age must be longer than zero: {value!r} {hint}")
    raise ValueError(f"not an age with its unit: {value!r} {hint}")


def parse_retry_after(value: str | None) -> float | None:
    """An HTTP ``Retry-After`` in seconds from now (delta-seconds or an HTTP
    date); None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())

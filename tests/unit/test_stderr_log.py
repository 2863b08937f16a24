"""The text log: a record's message on one line whatever its arguments hold
(found by a hostile walk: a request's path, or a JWT's subject, with a line
feed wrote a forged line into the node's log); its traceback follows as the
block of lines it is."""

from __future__ import annotations

import logging
import re
import sys

from agent_node.telemetry.stderr_log import TextFormatter


def record(message: str, *args: object, failed: bool = False) -> logging.LogRecord:
    error = None
    if failed:
        try:
            raise ValueError("bad\nvalue\x1b[2J")
        except ValueError:
            error = sys.exc_info()
    return logging.LogRecord("agent_node.x", logging.WARNING, __file__, 1, message, args, error)


def test_a_line_starts_with_its_time_level_and_logger() -> None:
    line = TextFormatter().format(record("refused %s", "bob"))
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00 WARNING agent_node.x: refused bob", line
    )


def test_what_the_arguments_bring_stays_on_the_line() -> None:
    sub = "bob\n2026-12-07 19:45:00 WARNING forged\r\x1b]0;owned\x07\x9b"
    line = TextFormatter().format(record("denied: %s may not", sub))
    assert "\n" not in line and line.isprintable()
    assert line.endswith(
        "denied: bob\\n2026-12-07 19:45:00 WARNING forged\\r\\x1b]0;owned\\x07\\x9b may not"
    )


def test_a_traceback_keeps_its_lines_and_loses_its_escapes() -> None:
    text = TextFormatter().format(record("step %s failed", "a\nb", failed=True))
    first, *rest = text.splitlines()
    assert first.endswith("step a\\nb failed")
    assert rest[0] == "Traceback (most recent call last):"
    assert rest[-2:] == ["ValueError: bad", "value\\x1b[2J"]
    assert "\x1b" not in text


def test_a_bidirectional_control_in_the_arguments_is_shown_escaped() -> None:
    """A task id holding U+202E would show the rest of the line reversed
    ("Trojan Source"): it is shown as ``\\u202e``, in the traceback too."""
    line = TextFormatter().format(record("task %s: %s", "t-\u202eevil\u2066", "refused"))
    assert line.endswith("task t-\\u202eevil\\u2066: refused")
    assert "\u202e" not in line and "\u2066" not in line
    try:
        raise ValueError("path /x\u202ey")
    except ValueError:
        failed = logging.LogRecord(
            "agent_node.x", logging.ERROR, __file__, 1, "m", (), sys.exc_info()
        )
    text = TextFormatter().format(failed)
    assert text.endswith("ValueError: path /x\\u202ey") and "\u202e" not in text

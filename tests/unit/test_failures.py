"""A loop's repeated failures: logged once (with a traceback, unless the
store is out of reach or said what failed), then a line a minute, then once
when it works again; the tries spaced out, doubling."""

from __future__ import annotations

import logging

import pytest

from agent_node.errors import StoreError
from agent_node.failures import Failures

log = logging.getLogger("tests.failures")


def test_a_failure_that_goes_on_is_logged_once_a_while_and_tried_less_often(
    caplog: pytest.LogCaptureFixture,
) -> None:
    failures = Failures(log, "push sender", first=0.5, most=4.0)
    down = ConnectionRefusedError("connection refused")
    with caplog.at_level(logging.INFO, logger="tests.failures"):
        pauses = [failures.failed(down) for _ in range(20)]
        failures.worked()
        failures.worked()  # working on: nothing more to say
    assert pauses[:5] == [0.5, 1.0, 2.0, 4.0, 4.0] and set(pauses[4:]) == {4.0}
    said = [(r.levelname, r.getMessage(), r.exc_info is not None) for r in caplog.records]
    # An outage says all there is to say in its line: no traceback.
    assert said[0] == ("ERROR", "push sender: connection refused; trying again", False)
    assert said[1][0] == "WARNING" and said[1][1].startswith("push sender: works again after 20")
    assert len(said) == 2


def test_while_it_goes_on_a_line_says_how_long(caplog: pytest.LogCaptureFixture) -> None:
    failures = Failures(log, "delegation watchdog", first=1.0, every=0.0)
    with caplog.at_level(logging.INFO, logger="tests.failures"):
        for _ in range(3):
            failures.failed(OSError("the database is down"))
    lines = [r.getMessage() for r in caplog.records]
    assert lines[1].startswith("delegation watchdog: still failing (2 times in ")
    assert lines[2].startswith("delegation watchdog: still failing (3 times in ")
    assert all(r.exc_info is None for r in caplog.records[1:])  # the traceback once


def test_a_failure_of_our_own_is_logged_with_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    failures = Failures(log, "claiming work", first=0.5)
    with caplog.at_level(logging.INFO, logger="tests.failures"):
        failures.failed(KeyError("cursor"))
    (record,) = caplog.records
    assert record.exc_info is not None and "claiming work: 'cursor'" in record.getMessage()


def test_a_new_failure_in_a_run_is_logged_once_with_the_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A claim loop that failed on one error and then on another said only
    the first until a minute passed: the second — the cause of its staying
    stuck — is logged at once, once, with the count so far."""
    failures = Failures(log, "claiming work", first=0.5)
    locked = StoreError("database is locked")
    column = StoreError("table events has no column named execution_id")
    with caplog.at_level(logging.INFO, logger="tests.failures"):
        for exc in (locked, locked, column, locked, column, column):
            failures.failed(exc)
    lines = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert lines == [
        ("ERROR", "claiming work: database is locked; trying again"),
        (
            "ERROR",
            "claiming work: now failing otherwise (3 failures in 0 s):"
            " table events has no column named execution_id; trying again",
        ),
    ]

"""JSON log lines carry the execution, node and visit a line is about as
fields, also for the engine's and the delegation watchdog's lines about a
visit, logged outside its attempt (found by an operator's walk: none of
4,357 such lines had the id but in its text)."""

from __future__ import annotations

import json
import logging

from agent_node.telemetry.logs import JsonFormatter


def formatted(logger: str, message: str, *args: object, **extra: object) -> dict[str, object]:
    record = logging.LogRecord(logger, logging.WARNING, __file__, 1, message, args, None)
    record.__dict__.update(extra)
    line: dict[str, object] = json.loads(JsonFormatter().format(record))
    return line


def test_a_visit_named_first_becomes_fields() -> None:
    key = "01a2516d-c245-7b62-a1b8-8852f66901dc/ask/2"
    line = formatted("agent_node.a2a.peers.watchdog", "delegation %s: %s", key, "peer down")
    assert line["message"] == f"delegation {key}: peer down"
    execution = "01a2516d-c245-7b62-a1b8-8852f66901dc"
    assert (line["execution_id"], line["task_id"]) == (execution, execution)
    assert (line["node"], line["visit"]) == ("ask", 2)
    keyed = formatted("agent_node.engine", "node task %s failed", ("e1", "step", 3))
    assert (keyed["execution_id"], keyed["node"], keyed["visit"]) == ("e1", "step", 3)


def test_other_lines_are_left_as_they_are() -> None:
    elsewhere = formatted("agent_node.serve", "listening on %s", "a/b/1")
    assert "execution_id" not in elsewhere
    plain = formatted("agent_node.engine", "reclaimed %d lease(s)", 2)
    assert "execution_id" not in plain
    given = formatted("agent_node.engine", "dropped %s", "x/y/1", execution_id="e9")
    assert given["execution_id"] == "e9" and "node" not in given


def test_a_bidirectional_control_is_escaped_in_the_json_line() -> None:
    """json.dumps(ensure_ascii=False) writes U+202E raw: a log viewer would
    show the rest of the line reversed ("Trojan Source")."""
    record = logging.LogRecord(
        "agent_node.x", logging.WARNING, __file__, 1, "refused %s", ("/a2a/\u202etxt.exe",), None
    )
    text = JsonFormatter().format(record)
    assert "\u202e" not in text and "/a2a/\\u202etxt.exe" in text
    assert json.loads(text)["message"] == "refused /a2a/\u202etxt.exe"

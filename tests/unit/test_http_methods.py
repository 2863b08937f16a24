"""The HTTP methods telemetry names as they are, and the standard variable
that replaces their list."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest

from agent_node.telemetry.http_methods import DEFAULT_METHODS, known_methods


def test_unset_is_rfc_9110_and_patch() -> None:
    assert known_methods(None) == frozenset(DEFAULT_METHODS)
    assert "PATCH" in known_methods(None) and "PROPFIND" not in known_methods(None)


def test_the_variable_replaces_the_list_whole(caplog: pytest.LogCaptureFixture) -> None:
    assert known_methods("GET, PROPFIND ,POST,") == {"GET", "PROPFIND", "POST"}
    assert known_methods("") == frozenset()  # set and empty: nothing is known
    with caplog.at_level(logging.WARNING):
        assert known_methods("GET,BAD METHOD,x" + "y" * 40) == {"GET"}
    assert "left out what is no HTTP method: 'BAD METHOD', 'x" in caplog.text


def test_a_node_reads_it_for_metrics_and_spans() -> None:
    code = (
        "from agent_node.telemetry import metrics, traces_http\n"
        "from agent_node.telemetry.http_methods import HTTP_METHODS\n"
        "print(sorted(HTTP_METHODS))\n"
        "print(traces_http.HTTP_METHODS is HTTP_METHODS, metrics.HTTP_METHODS is HTTP_METHODS)\n"
    )
    env = {**os.environ, "OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS": "GET,POST,PROPFIND"}
    ran = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.splitlines() == ["['GET', 'POST', 'PROPFIND']", "True True"]

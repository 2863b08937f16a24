"""Sandboxed templates: rendering, compile-time checks, and the sandbox's refusals."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from agent_node.errors import NodeFailed
from agent_node.workflow.templates import TemplateError, compile_template

STATE: dict[str, Any] = {
    "name": "Ann",
    "items": [1, 2, 3],
    "user": {"email": "ann@example.com", "keys": "k"},
    "html": "<b>",
}
KEYS = ["name", "items", "user", "html"]


def render(source: str, state: dict[str, Any] | None = None) -> str:
    return compile_template(source, KEYS).render(STATE if state is None else state)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("Hello {{ state.name }}", "Hello Ann"),
        ("{{ state['name'] | upper }}", "ANN"),
        ("{{ state.items | join(', ') }}", "1, 2, 3"),
        ("{% for i in state.items %}[{{ i }}]{% endfor %}", "[1][2][3]"),
        ("{% if state.items | length > 2 %}many{% else %}few{% endif %}", "many"),
        ("{{ state.user.email }} {{ state.user.keys }}", "ann@example.com k"),
        ("{{ state.html }}", "<b>"),
        ("{{ 'ab' * 2 }}{{ 2 ** 10 }}", "abab1024"),
        ("{% set greeting = 'Hi' %}{{ greeting }} {{ state.name }}", "Hi Ann"),
        ("no placeholders", "no placeholders"),
    ],
)
def test_renders(source: str, expected: str) -> None:
    assert render(source) == expected


def test_mappings_lists_and_json_constants_render_as_json() -> None:
    source = "rejected: {{ state.d }} {{ state.l }} {{ state.b }} {{ state.n }} {{ state.d.ok }}"
    state = {"d": {"ok": False, "by": "Zoë"}, "l": [1, "x", None], "b": True, "n": None}
    rendered = compile_template(source).render(state)
    assert rendered == 'rejected: {"ok": false, "by": "Zoë"} [1, "x", null] true null false'
    # Inside an expression, Python's values as ever: only what is printed is JSON.
    assert compile_template("{{ state.b ~ '' }} {{ state.l | length }}").render(state) == "True 3"


def test_source_is_kept() -> None:
    template = compile_template("{{ state.name }}!")
    assert template.source == "{{ state.name }}!"
    assert template.render({"name": "Bo"}) == "Bo!"


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("{{ state.nme }}", "unknown state key 'nme' (known: html, items, name, user) at line 1"),
        ("a\n{{ state['other'] }}", "unknown state key 'other'"),
        ("{{ foo }}", "unknown name 'foo'; templates see only 'state'"),
        ("{{ cycler.__init__.__globals__ }}", "unknown name 'cycler'"),
        ("{{ range(10) | list }}", "unknown name 'range'"),
        ("{% include 'secrets.txt' %}", "'include' is not allowed"),
        ("{% extends 'base.html' %}", "'extends' is not allowed"),
        ("{% import 'macros' as m %}", "'import' is not allowed"),
        ("{{ state.name", "template syntax error at line 1"),
        ("line one\n{% if %}", "template syntax error at line 2"),
        ("{{ state.name | nosuchfilter }}", "No filter named 'nosuchfilter'"),
    ],
)
def test_refuses_at_compile_time(source: str, fragment: str) -> None:
    with pytest.raises(TemplateError) as caught:
        compile_template(source, KEYS)
    assert fragment in str(caught.value)


def test_without_state_keys_only_free_names_are_checked() -> None:
    assert compile_template("{{ state.anything }}").source
    with pytest.raises(TemplateError, match="unknown name 'x'"):
        compile_template("{{ x }}")


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("{{ ''.__class__ }}", "SecurityError"),
        ("{{ state.name.__class__.__mro__ }}", "SecurityError"),
        ("{{ state.items.append(4) }}", "SecurityError"),
        ("{{ state.user.missing }}", "UndefinedError"),
        ("{{ 1 / 0 }}", "ZeroDivisionError"),
        ("{{ 'a' * 10**9 }}", "'*' would build more than 1,000,000 items"),
        ("{{ 7 ** 100000 }}", "'**' would build an integer"),
        ("{{ '%999999999d' % 1 }}", "'%' formatting of strings is not allowed"),
        ("{{ 'a' * 999999 }}{{ 'b' * 999999 }}", "longer than 1,000,000 characters"),
    ],
)
def test_runtime_failures_are_node_failed(source: str, fragment: str) -> None:
    with pytest.raises(NodeFailed) as caught:
        render(source)
    assert str(caught.value).startswith("template ")
    assert fragment in str(caught.value)


def test_immutable_sandbox_keeps_the_state_unchanged() -> None:
    state = {"items": [1]}
    with pytest.raises(NodeFailed, match="SecurityError"):
        compile_template("{{ state['items'].pop() }}").render(state)
    assert state == {"items": [1]}


def test_importing_the_package_does_not_import_jinja2() -> None:
    code = "import sys, agent_node.workflow.templates; print('jinja2' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr

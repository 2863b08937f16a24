"""Values a YAML node builds from the state: a tool's ``arguments``, the new
input of an ``end`` that continues as new.

How a value is built from what is written:

* a string that is exactly one ``{{ … }}`` holding a safe expression (see
  :mod:`agent_node.workflow.expressions`) is that expression's value, with
  its type: ``"{{ state.limit }}"`` is the number, ``"{{ state.tags }}"``
  the list, ``"{{ state.round + 1 }}"`` a new number;
* any other string with ``{{``, ``{%`` or ``{#`` is a template, rendered to
  text;
* everything else is taken as written; lists and mappings are walked, so
  expressions and templates may sit anywhere inside them (fields ``a.b``,
  ``a[0]`` below the value's own field).

A node reports what :func:`expressions_in` and :func:`templates_in` find
through its ``expressions`` and ``templates`` hooks, so the workflow
compiles them once (an unknown state key is a compile-time error), and
builds the value with :func:`build` when it runs.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any, Literal, Protocol

from agent_node.workflow.expressions import ExpressionError, compile_expression

__all__ = ["build", "expressions_in", "templates_in"]

_WHOLE = re.compile(r"^\s*\{\{(?P<inner>(?:(?!\{\{|\}\}).)*)\}\}\s*$", re.DOTALL)
_TEMPLATE_MARKS = ("{{", "{%", "{#")


def expressions_in(value: Any, field: str) -> list[tuple[str, str]]:
    """``(field, source)`` of every expression in ``value`` written at ``field``."""
    found = _leaves(value, field)
    return [(f, _inner(text)) for f, text in found if _kind(text) == "expression"]


def templates_in(value: Any, field: str) -> list[tuple[str, str]]:
    """``(field, source)`` of every template in ``value`` written at ``field``."""
    return [(f, text) for f, text in _leaves(value, field) if _kind(text) == "template"]


class Compiled(Protocol):
    """What :func:`build` reads of a compiled workflow (its expressions and
    templates by node and field) — a protocol, so that this module, which
    the IR reads, does not point back up at the compiled workflow."""

    @property
    def expressions(self) -> Mapping[tuple[str, str], Any]: ...

    @property
    def templates(self) -> Mapping[tuple[str, str], Any]: ...


def build(workflow: Compiled, node: str, field: str, value: Any, state: Mapping[str, Any]) -> Any:
    """``value`` (written at ``field`` of ``node``) built from ``state``."""
    if isinstance(value, str):
        key = (node, field)
        if key in workflow.expressions:
            return workflow.expressions[key].evaluate(state)
        if key in workflow.templates:
            return workflow.templates[key].render(state)
        return value
    if isinstance(value, Mapping):
        return {k: build(workflow, node, f"{field}.{k}", v, state) for k, v in value.items()}
    if isinstance(value, list):
        return [build(workflow, node, f"{field}[{i}]", v, state) for i, v in enumerate(value)]
    return value


def _kind(text: str) -> Literal["expression", "template", "literal"]:
    whole = _WHOLE.match(text)
    if whole is not None:
        try:
            compile_expression(whole["inner"])
        except ExpressionError:
            pass  # Jinja-only syntax (filters, `~`): rendered as text
        else:
            return "expression"
    return "template" if any(mark in text for mark in _TEMPLATE_MARKS) else "literal"


def _inner(text: str) -> str:
    whole = _WHOLE.match(text)
    return whole["inner"].strip() if whole else text


def _leaves(value: Any, field: str) -> Iterator[tuple[str, str]]:
    """``(field, text)`` of every string in ``value``, walking lists and mappings."""
    if isinstance(value, str):
        yield field, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _leaves(item, f"{field}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _leaves(item, f"{field}[{index}]")

"""Sandboxed templates: ``"Hello {{ state.name }}"``.

Templates are Jinja2, rendered by an ``ImmutableSandboxedEnvironment`` with
``StrictUndefined`` and autoescape off. A template sees one name, ``state``:
the environment has no globals and no loader (so no ``include``, ``extends``
or ``import``). ``x.key`` on a mapping reads the key first, so ``state.items``
is the state key, as in expressions, not ``dict.items``. What a ``{{ }}``
prints is JSON when it is a mapping, a list, a boolean or None
(``{"approved": false}``, not Python's ``{'approved': False}``). The
operators that could build huge values (``*``, ``**``, ``%`` on strings)
are checked before they run, and output beyond 1,000,000 characters fails
the render.

Jinja2 is imported on first use, never at ``import agent_node``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Collection, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from agent_node.errors import NodeFailed

if TYPE_CHECKING:
    from jinja2 import Template as JinjaTemplate
    from jinja2.nodes import Template as TemplateTree
    from jinja2.runtime import Context
    from jinja2.sandbox import ImmutableSandboxedEnvironment

__all__ = ["CompiledTemplate", "TemplateError", "compile_template"]

MAX_OUTPUT = 1_000_000
_MAX_POWER_BITS = 10_000


class TemplateError(ValueError):
    """A template that does not compile."""


class _Refused(Exception):
    """An operation the sandbox refuses because of the size it would build."""


class CompiledTemplate:
    """A template compiled once; satisfies the ``Template`` protocol."""

    __slots__ = ("_template", "source")

    def __init__(self, source: str, template: JinjaTemplate) -> None:
        self.source = source
        self._template = template

    def __repr__(self) -> str:
        return f"CompiledTemplate({self.source!r})"

    def render(self, state: Mapping[str, Any]) -> str:
        """The rendered text; any failure is a ``NodeFailed`` naming the template."""
        parts: list[str] = []
        size = 0
        try:
            for chunk in self._template.generate(state=state):
                size += len(chunk)
                if size > MAX_OUTPUT:
                    raise _Refused(f"the output is longer than {MAX_OUTPUT:,} characters")
                parts.append(chunk)
        except _Refused as exc:
            raise NodeFailed(f"template {_excerpt(self.source)}: {exc}") from None
        except Exception as exc:
            problem = f"{type(exc).__name__}: {exc}"
            raise NodeFailed(f"template {_excerpt(self.source)}: {problem}") from exc
        return "".join(parts)


def compile_template(source: str, state_keys: Collection[str] | None = None) -> CompiledTemplate:
    """Parse and check ``source``; ``state_keys`` (when given) are the known top-level keys."""
    from jinja2 import TemplateSyntaxError

    if not isinstance(source, str):
        raise TemplateError(f"a template must be a string, not {type(source).__name__}")
    environment = _environment()
    try:
        tree = environment.parse(source)
        _check_names(tree, state_keys)
        template = environment.from_string(tree)
    except TemplateSyntaxError as exc:
        raise TemplateError(f"template syntax error at line {exc.lineno}: {exc.message}") from None
    return CompiledTemplate(source, template)


def _check_names(tree: TemplateTree, state_keys: Collection[str] | None) -> None:
    from jinja2 import meta, nodes

    loading = (nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport)
    for node in tree.find_all(loading):
        tag = type(node).__name__.lower()
        raise TemplateError(f"'{tag}' is not allowed in templates (line {node.lineno})")
    names = sorted(meta.find_undeclared_variables(tree) - {"state"})
    if names:
        raise TemplateError(f"unknown name {names[0]!r}; templates see only 'state'")
    if state_keys is None:
        return
    for key, line in _state_keys(tree):
        if key not in state_keys:
            known = ", ".join(sorted(state_keys))
            raise TemplateError(f"unknown state key {key!r} (known: {known}) at line {line}")


def _state_keys(tree: TemplateTree) -> Iterator[tuple[str, int]]:
    """``(key, line)`` of every ``state.key``, then of every ``state['key']``."""
    from jinja2 import nodes

    for attribute in tree.find_all(nodes.Getattr):
        if _is_state(attribute.node):
            yield attribute.attr, attribute.lineno
    for item in tree.find_all(nodes.Getitem):
        if _is_state(item.node) and isinstance(item.arg, nodes.Const):
            if isinstance(item.arg.value, str):
                yield item.arg.value, item.lineno


def _is_state(node: object) -> bool:
    from jinja2 import nodes

    return isinstance(node, nodes.Name) and node.name == "state"


def _check_operation(operator: str, left: Any, right: Any) -> None:
    if operator == "*":
        for sequence, times in ((left, right), (right, left)):
            if isinstance(sequence, str | list | tuple) and isinstance(times, int):
                if len(sequence) * times > MAX_OUTPUT:
                    raise _Refused(f"'*' would build more than {MAX_OUTPUT:,} items")
    elif operator == "**":
        if isinstance(left, int) and isinstance(right, int) and right > 0:
            if left.bit_length() * right > _MAX_POWER_BITS:
                raise _Refused(f"'**' would build an integer of more than {_MAX_POWER_BITS} bits")
    elif operator == "%" and isinstance(left, str):
        raise _Refused("'%' formatting of strings is not allowed; use the format filter")


@functools.cache
def _environment() -> ImmutableSandboxedEnvironment:
    """The one environment every template compiles in (built on first use)."""
    from jinja2 import StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class _Sandbox(ImmutableSandboxedEnvironment):
        intercepted_binops = frozenset({"*", "**", "%"})

        def getattr(self, obj: Any, attribute: str) -> Any:
            # ``state.items`` is the key "items", not ``dict.items``: as in expressions.
            if isinstance(obj, Mapping) and attribute in obj:
                return obj[attribute]
            return super().getattr(obj, attribute)

        def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
            _check_operation(operator, left, right)
            return super().call_binop(context, operator, left, right)

    environment = _Sandbox(undefined=StrictUndefined, autoescape=False, finalize=_printed)
    environment.globals.clear()
    return environment


def _printed(value: Any) -> Any:
    """What ``{{ value }}`` prints: JSON for what Python would print as its
    own repr (the state is JSON data, and a prompt or a message reads it so)."""
    if isinstance(value, Mapping | list | tuple | bool) or value is None:
        return json.dumps(value, ensure_ascii=False, default=str)
    return value


def _excerpt(source: str) -> str:
    return repr(source if len(source) <= 60 else source[:57] + "...")

"""Safe expressions for branch conditions: a small subset of Python, never ``eval``.

The source is parsed with :func:`ast.parse` and every node becomes a closure,
so evaluating an expression runs only code written in this module. Allowed:

* literals (``true``/``false``/``null`` too) and list, tuple, dict, set displays;
* ``and``/``or``/``not``, comparisons (``is``/``is not`` only against ``None``),
  ``+ - * / // %``, unary ``-``/``+``, and ``a if c else b``;
* ``state`` with ``state.key.sub``, ``state["key"]`` and ``state.items[0]``
  (attribute access on a mapping is key lookup, never ``getattr``);
* calls of the functions in :data:`FUNCTIONS` and the string methods in
  :data:`METHODS`.

Anything else is an :class:`ExpressionError` at compile time, naming the
construct and its column. Evaluation refuses to build an int beyond 10**100
or a sequence (by ``*``, ``+`` or ``str()``) beyond 100,000 items, and
reports every failure as :class:`~agent_node.errors.NodeFailed`.
"""

from __future__ import annotations

import ast
import re
import warnings
from collections.abc import Callable, Collection, Mapping
from typing import Any

from agent_node.errors import NodeFailed
from agent_node.workflow._expression_ops import (
    _BINARY,
    _COMPARE,
    FUNCTIONS,
    MAX_INT,
    METHODS,
    _attribute,
    _call_method,
    _checked,
    _Failure,
    _lookup,
)

__all__ = ["FUNCTIONS", "METHODS", "CompiledExpression", "ExpressionError", "compile_expression"]

MAX_SOURCE = 2_000
MAX_NODES = 500
MAX_DEPTH = 50

_Eval = Callable[[Mapping[str, Any]], Any]
_RUNTIME_ERRORS = (TypeError, ValueError, ArithmeticError, LookupError, RecursionError)
_CONSTANT_NAMES: dict[str, object] = {"true": True, "false": False, "null": None}
_LINES = re.compile(r"\r\n|\r|\n")
_FORBIDDEN = {
    ast.Lambda: "lambda",
    ast.ListComp: "a comprehension",
    ast.SetComp: "a comprehension",
    ast.DictComp: "a comprehension",
    ast.GeneratorExp: "a generator expression",
    ast.NamedExpr: "':=' (assignment)",
    ast.JoinedStr: "an f-string",
    ast.FormattedValue: "an f-string",
    ast.Starred: "'*' unpacking",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield",
    ast.Slice: "a slice",
}
_OPERATORS = {
    ast.Pow: "**",
    ast.MatMult: "@",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.BitOr: "|",
    ast.BitXor: "^",
    ast.BitAnd: "&",
    ast.Invert: "~",
}


class ExpressionError(ValueError):
    """An expression that does not compile; ``column`` is 1-based when known."""

    def __init__(self, message: str, column: int | None = None) -> None:
        self.column = column
        super().__init__(message)


class CompiledExpression:
    """An expression compiled to closures; satisfies the ``Expression`` protocol."""

    __slots__ = ("_run", "source")

    def __init__(self, source: str, run: _Eval) -> None:
        self.source = source
        self._run = run

    def __repr__(self) -> str:
        return f"CompiledExpression({self.source!r})"

    def evaluate(self, state: Mapping[str, Any]) -> Any:
        """The value of the expression; any failure is a ``NodeFailed``."""
        try:
            return self._run(state)
        except _Failure as exc:
            raise NodeFailed(f"expression {self.source!r}: {exc}") from None
        except _RUNTIME_ERRORS as exc:
            raise NodeFailed(f"expression {self.source!r}: {type(exc).__name__}: {exc}") from exc


def compile_expression(
    source: str, state_keys: Collection[str] | None = None
) -> CompiledExpression:
    """Parse and check ``source``; ``state_keys`` (when given) are the known top-level keys."""
    if not isinstance(source, str):
        raise ExpressionError(f"an expression must be a string, not {type(source).__name__}")
    if len(source) > MAX_SOURCE:
        raise ExpressionError(f"expression is longer than {MAX_SOURCE} characters")
    tree = _parse(source)
    _check_size(tree)
    keys = None if state_keys is None else frozenset(state_keys)
    return CompiledExpression(source, _Compiler(source, keys).compile(tree.body))


def _parse(source: str) -> ast.Expression:
    try:
        # The parser warns about things like "\d"; warnings are not our output.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ast.parse(source.strip(), mode="eval")
    except SyntaxError as exc:
        detail = "" if exc.msg == "invalid syntax" else f": {exc.msg}"
        if not exc.offset:  # the parser met the end: nothing to point at but it
            raise ExpressionError(f"invalid syntax{detail}: the expression ends too soon") from None
        line, lines, hint = exc.lineno or 1, _LINES.split(source.strip()), ""
        if line < len(lines) and exc.offset > len(lines[line - 1]):
            hint = "; an expression goes on to another line only inside brackets"
        where, column = _position(source, line, exc.offset)
        raise ExpressionError(f"invalid syntax{detail} at {where}{hint}", column) from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise ExpressionError(f"invalid expression: {exc}") from None


def _position(source: str, line: int, column: int) -> tuple[str, int]:
    """Where ``line`` and 1-based ``column`` of the stripped ``source`` (what
    is parsed) are in ``source`` as written: said, and the column."""
    lead = _LINES.split(source[: len(source) - len(source.lstrip())])
    if line == 1:
        column += len(lead[-1])
    line += len(lead) - 1
    one_line = len(_LINES.split(source.strip())) == 1 and len(lead) == 1
    return (f"column {column}" if one_line else f"line {line}, column {column}"), column


def _check_size(tree: ast.Expression) -> None:
    count = 0
    stack: list[tuple[ast.AST, int]] = [(tree.body, 1)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise ExpressionError(f"expression is too large (more than {MAX_NODES} syntax nodes)")
        if depth > MAX_DEPTH:
            raise ExpressionError(f"expression is nested more than {MAX_DEPTH} levels deep")
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))


class _Compiler:
    """Turns checked AST nodes into closures; one instance per expression."""

    def __init__(self, source: str, state_keys: frozenset[str] | None) -> None:
        self.source = source
        self.state_keys = state_keys

    def error(self, message: str, node: ast.AST, offset: int | None = None) -> ExpressionError:
        """``message`` at ``node`` (or at byte ``offset`` of its line, as the AST counts)."""
        line = getattr(node, "lineno", 1)
        lines = _LINES.split(self.source.strip())
        text = lines[line - 1] if 0 < line <= len(lines) else ""
        offset = getattr(node, "col_offset", 0) if offset is None else offset
        prefix = text.encode("utf-8", "surrogatepass")[:offset]
        where, column = _position(self.source, line, len(prefix.decode("utf-8", "ignore")) + 1)
        return ExpressionError(f"{message} at {where}", column)

    def compile(self, node: ast.AST) -> _Eval:
        handler = _HANDLERS.get(type(node))
        if handler is None:
            what = _FORBIDDEN.get(type(node), type(node).__name__)
            raise self.error(f"{what} is not allowed", node)
        return handler(self, node)

    def constant(self, node: ast.Constant) -> _Eval:
        value = node.value
        if isinstance(value, bytes):
            raise self.error("bytes literals are not allowed", node)
        if not isinstance(value, str | int | float | None):
            raise self.error(f"the literal {ast.unparse(node)} is not allowed", node)
        if isinstance(value, int) and abs(value) > MAX_INT:
            raise self.error("integer literals beyond 10**100 are not allowed", node)
        return lambda _state: value

    def name(self, node: ast.Name) -> _Eval:
        if node.id == "state":
            return lambda state: state
        if node.id in _CONSTANT_NAMES:
            value = _CONSTANT_NAMES[node.id]
            return lambda _state: value
        if node.id in FUNCTIONS:
            raise self.error(f"function {node.id!r} can only be called", node)
        raise self.error(
            f"name {node.id!r} is not allowed; expressions see only 'state' "
            "(and true, false, null)",
            node,
        )

    def check_key(self, key: object, node: ast.AST, at: int | None = None) -> None:
        if self.state_keys is None or not isinstance(key, str) or key in self.state_keys:
            return
        known = ", ".join(sorted(self.state_keys))
        raise self.error(f"unknown state key {key!r} (known: {known})", node, at)

    def attribute(self, node: ast.Attribute) -> _Eval:
        name = node.attr
        at = (
            (node.end_col_offset or 0) - len(name.encode())
            if node.end_lineno == node.lineno
            else None
        )
        if name.startswith("_"):
            message = f"attribute {name!r} is not allowed (names starting with '_')"
            raise self.error(message, node, at)
        if _is_state(node.value):
            self.check_key(name, node, at)
        value, where = self.compile(node.value), ast.unparse(node.value)
        return lambda state: _attribute(value(state), name, where)

    def subscript(self, node: ast.Subscript) -> _Eval:
        if _is_state(node.value) and isinstance(node.slice, ast.Constant):
            self.check_key(node.slice.value, node)
        value, key = self.compile(node.value), self.compile(node.slice)
        where = ast.unparse(node.value)
        return lambda state: _lookup(value(state), key(state), where)

    def sequence(self, node: ast.List | ast.Tuple | ast.Set) -> _Eval:
        items = [self.compile(item) for item in node.elts]
        build = {ast.List: list, ast.Tuple: tuple, ast.Set: set}[type(node)]
        return lambda state: build(item(state) for item in items)

    def mapping(self, node: ast.Dict) -> _Eval:
        if any(key is None for key in node.keys):
            raise self.error("'**' unpacking is not allowed", node)
        keys = [self.compile(key) for key in node.keys if key is not None]
        values = [self.compile(value) for value in node.values]
        pairs = list(zip(keys, values, strict=True))
        return lambda state: {key(state): value(state) for key, value in pairs}

    def boolean(self, node: ast.BoolOp) -> _Eval:
        operands = [self.compile(value) for value in node.values]
        stop_when = isinstance(node.op, ast.Or)

        def run(state: Mapping[str, Any]) -> Any:
            result: Any = None
            for operand in operands:
                result = operand(state)
                if bool(result) is stop_when:
                    return result
            return result

        return run

    def unary(self, node: ast.UnaryOp) -> _Eval:
        operand = self.compile(node.operand)
        if isinstance(node.op, ast.Not):
            return lambda state: not operand(state)
        if isinstance(node.op, ast.USub):
            return lambda state: _checked(-operand(state))
        if isinstance(node.op, ast.UAdd):
            return lambda state: _checked(+operand(state))
        raise self.error(f"operator {_OPERATORS.get(type(node.op), '?')!r} is not allowed", node)

    def binary(self, node: ast.BinOp) -> _Eval:
        apply = _BINARY.get(type(node.op))
        if apply is None:
            symbol = _OPERATORS.get(type(node.op), type(node.op).__name__)
            raise self.error(f"operator {symbol!r} is not allowed", node)
        left, right = self.compile(node.left), self.compile(node.right)
        return lambda state: apply(left(state), right(state))

    def compare(self, node: ast.Compare) -> _Eval:
        first = self.compile(node.left)
        steps = []
        for op, comparator in zip(node.ops, node.comparators, strict=True):
            if isinstance(op, ast.Is | ast.IsNot) and not _is_none(comparator):
                raise self.error("'is' and 'is not' compare only with None", comparator)
            steps.append((_COMPARE[type(op)], self.compile(comparator)))

        def run(state: Mapping[str, Any]) -> bool:
            left = first(state)
            for test, operand in steps:
                right = operand(state)
                if not test(left, right):
                    return False
                left = right
            return True

        return run

    def conditional(self, node: ast.IfExp) -> _Eval:
        test, body, orelse = (
            self.compile(node.test),
            self.compile(node.body),
            self.compile(node.orelse),
        )
        return lambda state: body(state) if test(state) else orelse(state)

    def call(self, node: ast.Call) -> _Eval:
        if node.keywords:
            raise self.error("keyword arguments are not allowed", node.keywords[0])
        args = [self.compile(arg) for arg in node.args]
        func = node.func
        if isinstance(func, ast.Name) and func.id in FUNCTIONS:
            return self.function(func.id, args, node)
        if isinstance(func, ast.Attribute) and func.attr in METHODS:
            return self.method(func, args, node)
        functions = ", ".join(sorted(FUNCTIONS))
        methods = ", ".join(f".{name}()" for name in sorted(METHODS))
        raise self.error(
            f"calling {ast.unparse(func)} is not allowed (functions: {functions}; "
            f"string methods: {methods})",
            node,
        )

    def function(self, name: str, args: list[_Eval], node: ast.Call) -> _Eval:
        spec = FUNCTIONS[name]
        if not spec.accepts(len(args)):
            raise self.error(f"{name}() takes {spec.arity()}, got {len(args)}", node)
        impl = spec.impl
        return lambda state: _checked(impl(*(arg(state) for arg in args)))

    def method(self, func: ast.Attribute, args: list[_Eval], node: ast.Call) -> _Eval:
        name, spec = func.attr, METHODS[func.attr]
        if not spec.accepts(len(args)):
            raise self.error(f".{name}() takes {spec.arity()}, got {len(args)}", node)
        receiver = self.compile(func.value)
        return lambda state: _call_method(name, receiver(state), [arg(state) for arg in args])


def _is_state(node: ast.AST) -> bool:
    return isinstance(node, ast.Name) and node.id == "state"


def _is_none(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant):
        return node.value is None
    return isinstance(node, ast.Name) and node.id == "null"


_HANDLERS: dict[type[ast.AST], Callable[[_Compiler, Any], _Eval]] = {
    ast.Constant: _Compiler.constant,
    ast.Name: _Compiler.name,
    ast.Attribute: _Compiler.attribute,
    ast.Subscript: _Compiler.subscript,
    ast.List: _Compiler.sequence,
    ast.Tuple: _Compiler.sequence,
    ast.Set: _Compiler.sequence,
    ast.Dict: _Compiler.mapping,
    ast.BoolOp: _Compiler.boolean,
    ast.UnaryOp: _Compiler.unary,
    ast.BinOp: _Compiler.binary,
    ast.Compare: _Compiler.compare,
    ast.IfExp: _Compiler.conditional,
    ast.Call: _Compiler.call,
}

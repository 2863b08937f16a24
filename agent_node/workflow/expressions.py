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
import itertools
import operator
import re
import warnings
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from agent_node.errors import NodeFailed

__all__ = ["FUNCTIONS", "METHODS", "CompiledExpression", "ExpressionError", "compile_expression"]

MAX_SOURCE = 2_000
MAX_NODES = 500
MAX_DEPTH = 50
MAX_INT = 10**100
MAX_ITEMS = 100_000

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


# --- evaluation: every operation that could be abused checks its result -----


class _Failure(Exception):
    """A problem while evaluating; reported as ``NodeFailed``."""


_END = object()
_SEQUENCES = (str, list, tuple)
_CONTAINERS = (list, tuple, set, frozenset)


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _checked(value: Any) -> Any:
    if isinstance(value, int) and abs(value) > MAX_INT:
        raise _Failure("the result is an integer beyond 10**100")
    return value


def _children(value: object) -> Iterator[Any]:
    if isinstance(value, Mapping):
        return itertools.chain.from_iterable(value.items())
    return iter(value) if isinstance(value, _CONTAINERS) else iter(())


def _weight(value: object) -> int:
    """Items and characters inside ``value``, counted up to just past ``MAX_ITEMS``."""
    if isinstance(value, str):
        return len(value)
    total = 0
    stack = [_children(value)]
    while stack and total <= MAX_ITEMS:
        item = next(stack[-1], _END)
        if item is _END:
            stack.pop()
            continue
        total += max(1, len(item)) if isinstance(item, str) else 1
        stack.append(_children(item))
    return total


def _limit(weight: int) -> None:
    if weight > MAX_ITEMS:
        raise _Failure(f"the result would hold more than {MAX_ITEMS:,} items or characters")


def _add(left: Any, right: Any) -> Any:
    if isinstance(left, _SEQUENCES) and isinstance(right, _SEQUENCES):
        _limit(_weight(left) + _weight(right))
    return _checked(left + right)


def _multiply(left: Any, right: Any) -> Any:
    for sequence, times in ((left, right), (right, left)):
        if isinstance(sequence, _SEQUENCES) and isinstance(times, int) and times > 0:
            _limit(_weight(sequence) * times)
    return _checked(left * right)


def _modulo(left: Any, right: Any) -> Any:
    # Not string formatting: "%999999999d" % 1 would build a gigabyte.
    if not (isinstance(left, int | float) and isinstance(right, int | float)):
        raise _Failure(f"'%' needs numbers, not {_kind(left)} and {_kind(right)}")
    return _checked(left % right)


def _arithmetic(apply: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    return lambda left, right: _checked(apply(left, right))


_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: _add,
    ast.Sub: _arithmetic(operator.sub),
    ast.Mult: _multiply,
    ast.Div: _arithmetic(operator.truediv),
    ast.FloorDiv: _arithmetic(operator.floordiv),
    ast.Mod: _modulo,
}
_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda left, right: left in right,
    ast.NotIn: lambda left, right: left not in right,
    ast.Is: operator.is_,
    ast.IsNot: operator.is_not,
}


def _lookup(container: Any, key: Any, where: str) -> Any:
    if isinstance(container, Mapping):
        if key in container:
            return container[key]
        raise _Failure(f"{where} has no key {key!r}")
    if not isinstance(container, _SEQUENCES):
        raise _Failure(f"{where} is {_kind(container)}, which has no keys or items")
    if not isinstance(key, int) or isinstance(key, bool):
        raise _Failure(
            f"{where} is a {_kind(container)}: index it with an integer, not {_kind(key)}"
        )
    if -len(container) <= key < len(container):
        return container[key]
    raise _Failure(f"index {key} is out of range for {where} (length {len(container)})")


def _attribute(container: Any, name: str, where: str) -> Any:
    if not isinstance(container, Mapping):
        raise _Failure(f"cannot read .{name} of {where}: it is {_kind(container)}, not a mapping")
    if name in container:
        return container[name]
    raise _Failure(f"{where} has no key {name!r}")


@dataclass(frozen=True)
class _Callable:
    impl: Callable[..., Any]
    min_args: int
    max_args: int | None

    def accepts(self, count: int) -> bool:
        return count >= self.min_args and (self.max_args is None or count <= self.max_args)

    def arity(self) -> str:
        if self.max_args is None:
            return f"at least {self.min_args} argument(s)"
        if self.max_args == self.min_args:
            return f"{self.min_args} argument{'' if self.min_args == 1 else 's'}"
        return f"{self.min_args} to {self.max_args} arguments"


def _string(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise _Failure(f"{name}() applies to strings, not {_kind(value)}")
    return value


def _str(value: object = "") -> str:
    if isinstance(value, Mapping) or isinstance(value, _CONTAINERS):
        _limit(_weight(value))
    return str(value)


def _round(value: Any, ndigits: object = None) -> Any:
    if ndigits is None:
        return round(value)
    if not isinstance(ndigits, int) or abs(ndigits) > 100:
        raise _Failure("round() takes a whole number of digits between -100 and 100")
    return round(value, ndigits)


def _sum(values: Any) -> int | float:
    total: int | float = 0
    for value in values:
        if not isinstance(value, int | float):
            raise _Failure(f"sum() adds numbers, not {_kind(value)}")
        total = _checked(total + value)
    return total


#: The functions an expression may call, with how many arguments each takes.
FUNCTIONS: Mapping[str, _Callable] = {
    "len": _Callable(len, 1, 1),
    "min": _Callable(min, 1, None),
    "max": _Callable(max, 1, None),
    "abs": _Callable(abs, 1, 1),
    "round": _Callable(_round, 1, 2),
    "int": _Callable(int, 0, 2),
    "float": _Callable(float, 0, 1),
    "str": _Callable(_str, 0, 1),
    "bool": _Callable(bool, 0, 1),
    "sum": _Callable(_sum, 1, 1),
    "any": _Callable(any, 1, 1),
    "all": _Callable(all, 1, 1),
    "lower": _Callable(lambda value: _string(value, "lower").lower(), 1, 1),
    "upper": _Callable(lambda value: _string(value, "upper").upper(), 1, 1),
}
#: The string methods an expression may call on a value.
METHODS: Mapping[str, _Callable] = {
    "lower": _Callable(str.lower, 0, 0),
    "upper": _Callable(str.upper, 0, 0),
    "strip": _Callable(str.strip, 0, 1),
    "startswith": _Callable(str.startswith, 1, 1),
    "endswith": _Callable(str.endswith, 1, 1),
}


def _call_method(name: str, receiver: object, args: list[Any]) -> Any:
    if not isinstance(receiver, str):
        raise _Failure(f".{name}() applies to strings, not {_kind(receiver)}")
    return METHODS[name].impl(receiver, *args)


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
        where = f" at column {exc.offset}" if exc.offset else ""
        raise ExpressionError(f"invalid syntax{detail}{where}", exc.offset) from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise ExpressionError(f"invalid expression: {exc}") from None


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
        column = len(prefix.decode("utf-8", "ignore")) + 1
        where = f"column {column}" if line == 1 else f"line {line}, column {column}"
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

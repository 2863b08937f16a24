"""Evaluation helpers for :mod:`agent_node.workflow.expressions`.

Every operation an expression can perform that could be abused (repetition,
concatenation, ``%``, ``str()`` of containers, huge ints) checks the size of
its result here; the whitelisted functions and methods live here too.
"""

from __future__ import annotations

import ast
import itertools
import operator
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

MAX_INT = 10**100
MAX_ITEMS = 100_000

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

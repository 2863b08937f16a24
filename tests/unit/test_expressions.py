"""Safe expressions: what they compute, what they refuse, and how they fail."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent_node.errors import NodeFailed
from agent_node.workflow.expressions import ExpressionError, compile_expression

STATE: dict[str, Any] = {
    "score": 0.9,
    "count": 3,
    "user": {"name": " Ann ", "tags": ["vip", "new"], "age": None},
    "items": [10, 20, 30],
    "label": "Urgent",
}


def run(source: str, state: dict[str, Any] | None = None) -> Any:
    return compile_expression(source).evaluate(STATE if state is None else state)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("state.score > 0.8", True),
        ("state.score > 0.8 and state.count >= 3", True),
        ("not state.count or false", False),
        ("state['count'] * 2 + 1", 7),
        ("state.items[0]", 10),
        ("state.items[-1]", 30),
        ("state.user.tags[1]", "new"),
        ("state['user']['name'].strip().lower()", "ann"),
        ("state.label.upper()", "URGENT"),
        ("state.label.startswith('Ur') and state.label.endswith('nt')", True),
        ("'vip' in state.user.tags", True),
        ("'gold' not in state.user.tags", True),
        ("'user' in state", True),
        ("state.user.age is None", True),
        ("state.user.age is not null", False),
        ("1 < state.count < 5", True),
        ("3 < state.count < 5", False),
        ("'high' if state.score > 0.5 else 'low'", "high"),
        ("len(state.items) == 3", True),
        ("min(state.items) + max(3, 4)", 14),
        ("sum(state.items) / 4", 15.0),
        ("state.count // 2 + state.count % 2 - 1", 1),
        ("abs(-state.count)", 3),
        ("round(2.567, 2)", 2.57),
        ("int('12') + int(2.9) + float('0.5')", 14.5),
        ("str(state.count) + '!'", "3!"),
        ("bool(0) or any([0, 1]) and all([1, 2])", True),
        ("lower('ABC') + upper('d')", "abcD"),
        ("[1, 2] + [3]", [1, 2, 3]),
        ("(1, 2)", (1, 2)),
        ("{'a': 1, 'b': state.count}['b']", 3),
        ("{1, 2, 2}", {1, 2}),
        ("'ab' * 3", "ababab"),
        ("true and not null", True),
        ("None", None),
        ("state.count or 99", 3),
        ("0 or ''", ""),
        ("  state.count  ", 3),
    ],
)
def test_evaluates(source: str, expected: Any) -> None:
    assert run(source) == expected


def test_source_is_kept_and_state_is_read_at_evaluation() -> None:
    expression = compile_expression("state.score > 0.5")
    assert expression.source == "state.score > 0.5"
    assert expression.evaluate({"score": 0.7}) is True
    assert expression.evaluate({"score": 0.2}) is False


def test_short_circuit_skips_the_failing_side() -> None:
    assert run("false and state.missing") is False
    assert run("true or state.missing") is True
    assert run("1 if true else state.missing") == 1


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("__import__('os')", "calling __import__ is not allowed"),
        ("open('/etc/passwd')", "calling open is not allowed"),
        ("().__class__.__bases__", "attribute '__bases__' is not allowed"),
        ("state.__dict__", "attribute '__dict__' is not allowed"),
        ("state.user._private", "attribute '_private' is not allowed"),
        ("'a' * 10**9", "operator '**' is not allowed at column 7"),
        ("10**10**10", "operator '**' is not allowed"),
        ("lambda: 1", "lambda is not allowed at column 1"),
        ("[x for x in state.items]", "a comprehension is not allowed"),
        ("{k: 1 for k in state}", "a comprehension is not allowed"),
        ("(x := 1)", "':=' (assignment) is not allowed at column 2"),
        ("f'{state}'", "an f-string is not allowed"),
        ("len(*state.items)", "'*' unpacking is not allowed"),
        ("{**state}", "'**' unpacking is not allowed"),
        ("import os", "invalid syntax at column 1"),
        ("state.items[0:2]", "a slice is not allowed"),
        ("x + 1", "name 'x' is not allowed; expressions see only 'state'"),
        ("len", "function 'len' can only be called"),
        ("len(1, 2)", "len() takes 1 argument, got 2"),
        ("state.label.strip(1, 2)", ".strip() takes 0 to 1 arguments, got 2"),
        ("max(state.items, key=abs)", "keyword arguments are not allowed"),
        ("state.label.format(1)", "calling state.label.format is not allowed"),
        ("1 is 1", "'is' and 'is not' compare only with None"),
        ("b'x'", "bytes literals are not allowed"),
        ("1j", "the literal 1j is not allowed"),
        ("~1", "operator '~' is not allowed"),
        ("1 << 2", "operator '<<' is not allowed"),
        ("9" * 102, "integer literals beyond 10**100 are not allowed"),
        ("state.", "invalid syntax"),
        ("", "invalid syntax"),
    ],
)
def test_refuses(source: str, fragment: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        compile_expression(source)
    assert fragment in str(caught.value)


def test_error_points_at_the_column() -> None:
    with pytest.raises(ExpressionError) as caught:
        compile_expression("state.score + nope")
    assert str(caught.value).endswith("at column 15")
    assert caught.value.column == 15


def test_limits_on_size() -> None:
    with pytest.raises(ExpressionError, match="longer than 2000 characters"):
        compile_expression("1" + " " * 2000)
    with pytest.raises(ExpressionError, match="more than 500 syntax nodes"):
        compile_expression(", ".join(["[1, 2]"] * 200))
    with pytest.raises(ExpressionError, match="nested more than 50 levels"):
        compile_expression("-" * 60 + "1")


def test_unknown_state_keys_are_compile_errors() -> None:
    keys = ["score", "user"]
    assert compile_expression("state.score > 1 and state['user'].x", keys).source
    with pytest.raises(ExpressionError) as caught:
        compile_expression("state.scor > 1", keys)
    assert "unknown state key 'scor' (known: score, user)" in str(caught.value)
    with pytest.raises(ExpressionError, match="unknown state key 'other'"):
        compile_expression("state['other']", keys)


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("state.missing", "state has no key 'missing'"),
        ("state['user']['email']", "state['user'] has no key 'email'"),
        ("state.items[7]", "index 7 is out of range for state.items (length 3)"),
        ("state.items['a']", "index it with an integer"),
        ("state.count.x", "cannot read .x of state.count: it is int"),
        ("state.user.age > 1", "TypeError"),
        ("state.count / 0", "ZeroDivisionError"),
        ("state.count.lower()", ".lower() applies to strings, not int"),
        ("int('x')", "ValueError"),
        ("min([])", "ValueError"),
        ("sum(['a'])", "sum() adds numbers, not str"),
        ("'%999999999d' % 1", "'%' needs numbers"),
        ("'a' * 100001", "more than 100,000 items or characters"),
        ("[0] * 50000 + [1] * 50001", "more than 100,000 items or characters"),
        ("[[0] * 1000] * 1000", "more than 100,000 items or characters"),
        ("str([['a' * 1000] * 50] * 50)", "more than 100,000 items or characters"),
        ("int('9' * 101)", "an integer beyond 10**100"),
        ("99999999999999999999 * 99999999999999999999 * 1" + "0" * 80, "beyond 10**100"),
        ("round(1.5, 1000)", "round() takes a whole number of digits"),
    ],
)
def test_runtime_failures_are_node_failed(source: str, fragment: str) -> None:
    with pytest.raises(NodeFailed) as caught:
        run(source)
    message = str(caught.value)
    assert message.startswith(f"expression {source!r}")
    assert fragment in message


def test_repetition_at_the_limit_is_allowed() -> None:
    assert len(run("'a' * 100000")) == 100_000
    assert len(run("[0] * 100000")) == 100_000


_TOKENS = st.sampled_from(
    [
        *"state.[]()'\"0123456789+-*/%<>=!,:{}_ \n",
        *["and ", "or ", "not ", " if ", " else ", "in ", "is ", "true", "null"],
        *["state.", "len(", "str(", "__class__", ".lower()"],
    ]
)


@settings(max_examples=400, deadline=timedelta(seconds=2))
@given(st.one_of(st.text(max_size=2100), st.lists(_TOKENS, max_size=80).map("".join)))
def test_any_text_compiles_or_raises_expression_error(source: str) -> None:
    try:
        expression = compile_expression(source)
    except ExpressionError:
        return
    try:
        expression.evaluate(STATE)
    except NodeFailed:
        pass


@pytest.mark.parametrize(
    ("source", "said", "column"),
    [
        # Columns count in the source as written: its leading spaces too.
        ("  nope + 1", "at column 3", 3),
        ("\n  (state.a and\n  nope)", "at line 3, column 3", 3),
        ("(state.x\n + )", "invalid syntax at line 2, column 4", 4),
        ("  (state.x\n + )", "invalid syntax at line 2, column 4", 4),
        ('"ééé" + nope', "at column 9", 9),
        # A syntax error met at the end points nowhere, and says so.
        ("state.x +", "invalid syntax: the expression ends too soon", None),
        ("  state.x if", "invalid syntax: the expression ends too soon", None),
        # A line break outside brackets: why, where the line ends.
        (
            "state.a and\n  nope",
            "invalid syntax at line 1, column 12; an expression goes on to another"
            " line only inside brackets",
            12,
        ),
    ],
)
def test_errors_point_where_the_author_wrote(source: str, said: str, column: int | None) -> None:
    with pytest.raises(ExpressionError) as caught:
        compile_expression(source)
    assert str(caught.value).endswith(said), str(caught.value)
    assert caught.value.column == column

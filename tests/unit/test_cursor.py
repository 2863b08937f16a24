"""The execution's cursor (visits per node, open joins) as its column's text:
what a load gives back is what the text says, whether it was parsed or kept
from the dump of an execution going on at once."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from agent_node.engine.outcomes import Cursor
from agent_node.store.patches import dumps


def test_a_kept_cursor_loads_as_its_text_says() -> None:
    cursor = Cursor({"a": 1, "b": 2}, {"j": [2, 1]})
    text = cursor.dump(keep="e1")
    cursor.visits["a"] = 99  # the dumped object changes afterwards: the text holds
    loaded = Cursor.load(text, "e1")
    assert (loaded.visits, loaded.joins) == ({"a": 1, "b": 2}, {"j": [2, 1]})
    assert json.loads(text) == {"v": {"a": 1, "b": 2}, "j": {"j": [2, 1]}}


def test_a_loaded_cursor_is_its_own() -> None:
    text = Cursor({"a": 1}, {"j": [2, 0]}).dump(keep="e1")
    first = Cursor.load(text, "e1")
    first.visits["a"] = 2
    first.joins["j"][1] = 1
    again = Cursor.load(text, "e1")  # a plan run twice loads the same text twice
    assert (again.visits, again.joins) == ({"a": 1}, {"j": [2, 0]})
    assert again is not first


def test_executions_at_the_same_point_share_a_text_not_a_cursor() -> None:
    one = Cursor({"s0": 1}).dump(keep="e1")
    two = Cursor({"s0": 1}).dump(keep="e2")
    assert one == two
    mine, theirs = Cursor.load(one, "e1"), Cursor.load(two, "e2")
    assert mine is not theirs
    mine.visits["s1"] = 1
    assert theirs.visits == {"s0": 1}


def test_an_unkept_dump_and_an_empty_text_parse() -> None:
    text = Cursor({"x": 3}).dump()
    assert Cursor.load(text).visits == {"x": 3}
    empty = Cursor.load("")
    assert (empty.visits, empty.joins) == ({}, {})


def _expected(visits: dict[str, int], joins: dict[str, list[int]]) -> str:
    return dumps({"v": visits, "j": joins} if joins else {"v": visits})


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("visit"), st.sampled_from(["a", "b", "c", "d", "é", 'q"', "e\\"])),
            st.tuples(st.just("join"), st.sampled_from(["j", "k"])),
            st.tuples(st.just("unjoin"), st.sampled_from(["j", "k"])),
            st.tuples(st.just("dump"), st.sampled_from(["", "e1"])),
        ),
        max_size=40,
    ),
    st.sampled_from(
        ["", '{"v":{}}', '{"v":{"a":2}}', '{"v": {"b": 1}}', '{"v":{},"j":{"j":[2,0]}}']
    ),
)
def test_a_dump_says_what_a_whole_dump_would_after_any_visits(
    steps: list[tuple[str, str]], start: str
) -> None:
    # The text a step writes is spliced from the last one when it only adds
    # nodes' first visits: it must be the text a whole dump gives, whatever
    # ran in between (loops, joins, loads of a kept or a parsed cursor).
    cursor = Cursor.load(start)
    for op, arg in steps:
        if op == "visit":
            cursor.visit(arg)
        elif op == "join":
            cursor.joins[arg] = [2, 0]
        elif op == "unjoin":
            cursor.joins.pop(arg, None)
        else:
            visits, joins = dict(cursor.visits), {k: list(v) for k, v in cursor.joins.items()}
            text = cursor.dump(keep=arg)
            assert text == _expected(visits, joins)
            cursor = Cursor.load(text, arg)
            assert (cursor.visits, cursor.joins) == (visits, joins)


def test_a_sequence_appends_to_the_text_it_loaded() -> None:
    text = Cursor.load("").dump()
    for node in ("s0", "s1", "s2"):
        cursor = Cursor.load(text)
        assert cursor.visit(node) == 1
        text = cursor.dump()
    assert text == '{"v":{"s0":1,"s1":1,"s2":1}}'
    cursor = Cursor.load(text)
    assert cursor.visit("s1") == 2  # a loop: counted again, the whole text written
    assert cursor.dump() == '{"v":{"s0":1,"s1":2,"s2":1}}'

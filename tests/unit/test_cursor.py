"""The execution's cursor (visits per node, open joins) as its column's text:
what a load gives back is what the text says, whether it was parsed or kept
from the dump of an execution going on at once."""

from __future__ import annotations

import json

from agent_node.engine.outcomes import Cursor


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

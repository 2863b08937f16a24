"""State patches: what a step changed, and folding them back into a state."""

from __future__ import annotations

import copy
import json
import random
from typing import Any

import pytest

from agent_node.store.patches import StatePatch, apply_patch, diff, dumps, fold, patch_of

LONG = "t" * 300


def test_unchanged_values_are_not_in_the_patch() -> None:
    blob = "b" * 1_000_000
    assert not diff({"blob": blob, "n": 1}, {"blob": blob, "n": 1})
    assert diff({"blob": blob, "n": 1}, {"blob": blob, "n": 2}) == StatePatch({"n": 2})


def test_a_list_that_grew_at_its_end_is_an_append_of_the_new_items() -> None:
    old = {"items": ["a", "b"], "n": 0}
    patch = diff(old, {"items": ["a", "b", "c", "d"], "n": 0})
    assert patch == StatePatch(append={"items": ["c", "d"]})
    assert patch.event_fields() == {"append": {"items": ["c", "d"]}}


def test_lists_changed_otherwise_are_replaced() -> None:
    assert diff({"l": ["a", "b"]}, {"l": ["b", "a", "c"]}) == StatePatch({"l": ["b", "a", "c"]})
    assert diff({"l": ["a", "b"]}, {"l": ["a"]}) == StatePatch({"l": ["a"]})
    assert diff({"l": []}, {"l": ["a"]}) == StatePatch({"l": ["a"]})  # nothing kept: a value


def test_a_long_string_that_grew_is_an_append_a_short_one_is_replaced() -> None:
    assert diff({"t": LONG}, {"t": LONG + "more"}) == StatePatch(append={"t": "more"})
    assert diff({"t": "run"}, {"t": "running"}) == StatePatch({"t": "running"})


def test_none_is_a_value_and_missing_keys_are_removed() -> None:
    patch = diff({"a": 1, "gone": 2}, {"a": None, "new": 3})
    assert patch == StatePatch({"a": None, "new": 3}, remove=("gone",))
    data = {"a": 1, "gone": 2}
    apply_patch(data, patch)
    assert data == {"a": None, "new": 3}


def test_applying_a_diff_gives_the_new_state() -> None:
    rng = random.Random(7)
    for _ in range(300):
        old = _random_state(rng)
        new = _mutated(rng, old)
        data = copy.deepcopy(old)
        apply_patch(data, diff(old, new))
        assert data == new


def test_fold_applies_event_patches_in_order() -> None:
    events = [
        dumps({"patch": {"n": 1}, "next": "b"}),
        None,
        dumps({"next": "c", "output": {"patch": "not at the top: not a patch"}}),
        dumps({"append": {"items": ["x"]}, "next": "d"}),
        dumps({"append": {"items": ["y"]}, "patch": {"n": 2}, "remove": ["old"]}),
    ]
    state = fold({"n": 0, "items": ["w"], "old": True}, events, StatePatch({"n": 3}))
    assert json.loads(state) == {"n": 3, "items": ["w", "x", "y"]}


def test_a_patch_is_read_back_from_its_event() -> None:
    patch = StatePatch({"a": None}, {"l": [1]}, ("z",))
    assert patch_of(json.loads(dumps({"next": None, **patch.event_fields()}))) == patch
    assert patch_of({"next": None, "duration": 0.1}) is None


def _random_state(rng: random.Random) -> dict[str, Any]:
    state: dict[str, Any] = {}
    for key in rng.sample("abcdefg", rng.randint(0, 7)):
        state[key] = _random_value(rng)
    return state


def _random_value(rng: random.Random) -> Any:
    kind = rng.randrange(5)
    if kind == 0:
        return rng.choice([None, 0, 1, True, 2.5])
    if kind == 1:
        return [rng.randrange(3) for _ in range(rng.randrange(4))]
    if kind == 2:
        return "s" * rng.choice([0, 5, 300])
    if kind == 3:
        return {"k": rng.randrange(3)}
    return [{"i": i} for i in range(rng.randrange(3))]


def _mutated(rng: random.Random, old: dict[str, Any]) -> dict[str, Any]:
    new = copy.deepcopy(old)
    for key in list(new):
        roll = rng.randrange(5)
        if roll == 0:
            del new[key]
        elif roll == 1:
            new[key] = _random_value(rng)
        elif roll == 2 and isinstance(new[key], list | str):
            new[key] = new[key] + (new[key][:1] if new[key] else new[key])
    if rng.randrange(2):
        new[rng.choice("hijk")] = _random_value(rng)
    return new


@pytest.mark.parametrize(
    "value",
    [
        {"a": 1, "b": [1, 2.5, None, True, False], "c": 'é"\\\n\u2028x'},
        {"nested": {"list": [{}, [], {"k": "v"}]}, "big": 10**30, "neg": -0.0},
        [float("nan"), float("inf")],
        "text",
        1.5,
        None,
        {1: "int key", "s": "str key"},
    ],
)
def test_dumps_writes_what_json_dumps_writes(value: object) -> None:
    assert dumps(value) == json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def test_dumps_refuses_what_json_cannot_hold() -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        dumps({"when": object()})

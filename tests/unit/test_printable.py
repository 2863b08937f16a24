"""Text from outside, printed: every control character shown escaped."""

from __future__ import annotations

import json

from agent_node.printable import printable, printable_json


def test_control_characters_are_shown_escaped() -> None:
    hostile = "Rome\x1b]52;c;aGk=\x07\x1b]0;owned\x07\rFAKE\nline\t\x00\x7f\x9b\u2028"
    shown = printable(hostile)
    assert shown == (
        "Rome\\x1b]52;c;aGk=\\x07\\x1b]0;owned\\x07\\rFAKE\\nline\\t\\x00\\x7f\\x9b\\u2028"
    )
    assert shown.isprintable()


def test_other_text_is_left_as_it_is() -> None:
    words = "Zürich — 東京 [red]x[/red] \\n"
    assert printable(words) == words


def test_lines_keeps_line_feeds_only() -> None:
    assert printable("one\ntwo\r\x1b[2J", lines=True) == "one\ntwo\\r\\x1b[2J"


def test_json_holds_no_control_character_and_the_same_value() -> None:
    value = {"text": "a\x1b\n\x7f\x9b\u2028b", "name": "Zürich"}
    text = printable_json(value)
    assert text.isprintable() and "Zürich" in text
    assert json.loads(text) == value

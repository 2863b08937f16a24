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


#: Every bidirectional control: ALM, LRM, RLM, LRE, RLE, PDF, LRO, RLO, LRI, RLI, FSI, PDI.
BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"


def test_bidirectional_controls_are_shown_escaped() -> None:
    """Trojan Source (CVE-2021-42574): a U+202E in a task id or a path shows
    what follows it reversed on a terminal."""
    shown = printable(f"task-\u202egpj.exe {BIDI}")
    assert shown == (
        "task-\\u202egpj.exe \\u061c\\u200e\\u200f\\u202a\\u202b\\u202c\\u202d\\u202e"
        "\\u2066\\u2067\\u2068\\u2069"
    )
    assert printable("one\ntwo\u2067", lines=True) == "one\ntwo\\u2067"


def test_right_to_left_text_itself_is_left_as_it_is() -> None:
    words = "שלום مرحبا — Zürich"
    assert printable(words) == words and printable(words, lines=True) == words


def test_json_holds_no_bidirectional_control_and_the_same_value() -> None:
    value = {"path": f"/a2a/\u202egpj.exe{BIDI}", "name": "مرحبا"}
    text = printable_json(value, indent=2)
    assert not any(char in text for char in BIDI), text
    assert "\\u202egpj.exe" in text and "مرحبا" in text
    assert json.loads(text) == value

"""JCS (RFC 8785) against the RFC's own examples and its Appendix B numbers."""

from __future__ import annotations

import json
import struct
from typing import Any

import pytest

from agent_node.a2a.protocol.jcs import canonical


def test_jcs_the_rfc_values_example() -> None:
    text = (
        '{"numbers": [1E30, 4.50, 333333333.33333329, 2e-3, 0.000000000000000000000000001],'
        ' "escaping": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",'
        ' "literals": [null, true, false]}'
    )
    assert (
        canonical(json.loads(text))
        == (
            '{"escaping":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/","literals":[null,true,false],'
            '"numbers":[1e+30,4.5,333333333.3333333,0.002,1e-27]}'
        ).encode()
    )


def test_jcs_sorts_names_by_utf16_code_units() -> None:
    text = (
        '{"\\u20ac": "Euro Sign", "1": "One", "\\u0080": "Control\\u007f",'
        ' "\\ud83d\\ude02": "Smiley", "\\u00f6": "Latin Small Letter O With Diaeresis",'
        ' "\\ufb33": "Hebrew Letter Dalet With Dagesh", "</script>": "Browser Challenge"}'
    )
    expected = (
        '{"1":"One","</script>":"Browser Challenge","\u0080":"Control\u007f",'
        '"ö":"Latin Small Letter O With Diaeresis","€":"Euro Sign","😂":"Smiley",'
        '"\ufb33":"Hebrew Letter Dalet With Dagesh"}'
    )
    # U+1F602 (a surrogate pair, D83D DE02) sorts before U+FB33 in UTF-16, after it in code points.
    assert canonical(json.loads(text)) == expected.encode()


@pytest.mark.parametrize(
    ("ieee_754", "expected"),
    [
        ("0000000000000000", "0"),
        ("8000000000000000", "0"),
        ("0000000000000001", "5e-324"),
        ("8000000000000001", "-5e-324"),
        ("7fefffffffffffff", "1.7976931348623157e+308"),
        ("ffefffffffffffff", "-1.7976931348623157e+308"),
        ("4340000000000000", "9007199254740992"),
        ("c340000000000000", "-9007199254740992"),
        ("4430000000000000", "295147905179352830000"),
        ("44b52d02c7e14af5", "9.999999999999997e+22"),
        ("44b52d02c7e14af6", "1e+23"),
        ("44b52d02c7e14af7", "1.0000000000000001e+23"),
        ("444b1ae4d6e2ef4e", "999999999999999700000"),
        ("444b1ae4d6e2ef4f", "999999999999999900000"),
        ("444b1ae4d6e2ef50", "1e+21"),
        ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
        ("3eb0c6f7a0b5ed8d", "0.000001"),
        ("41b3de4355555553", "333333333.3333332"),
        ("41b3de4355555554", "333333333.33333325"),
        ("41b3de4355555555", "333333333.3333333"),
        ("41b3de4355555556", "333333333.3333334"),
        ("41b3de4355555557", "333333333.33333343"),
        ("becbf647612f3696", "-0.0000033333333333333333"),
        ("43143ff3c1cb0959", "1424953923781206.2"),
    ],
)
def test_jcs_numbers_of_rfc_appendix_b(ieee_754: str, expected: str) -> None:
    (value,) = struct.unpack(">d", bytes.fromhex(ieee_754))
    assert canonical(value) == expected.encode()


def test_jcs_integers_are_exact_up_to_2_53_then_doubles() -> None:
    assert canonical([0, -7, 2**53, 10**21, 1.0, -0.0]) == (b"[0,-7,9007199254740992,1e+21,1,0]")


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "\ud800", {"k": [float("-inf")]}])
def test_jcs_refuses_what_i_json_forbids(bad: Any) -> None:
    with pytest.raises(ValueError):
        canonical(bad)


def test_jcs_refuses_what_json_cannot_hold() -> None:
    with pytest.raises(TypeError):
        canonical({1: "a"})
    with pytest.raises(TypeError):
        canonical({"a": {1, 2}})

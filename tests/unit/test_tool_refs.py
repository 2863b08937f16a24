"""A model node's tool entries and the function names its model sees."""

from __future__ import annotations

import pytest

from agent_node.nodes.tool_refs import FUNCTION_NAME, ToolRef, problem


@pytest.mark.parametrize(
    ("entry", "server", "tool", "function"),
    [
        ("search", None, "search", "search"),
        ("web/search", "web", "search", "web__search"),
        ("github.create_issue", None, "github.create_issue", "github_create_issue"),
        ("fs/read/file", "fs", "read/file", "fs__read_file"),
        ("t/ünï cødé", "t", "ünï cødé", "t___n__c_d_"),
    ],
)
def test_an_entry_names_its_server_and_tool_and_a_valid_function(
    entry: str, server: str | None, tool: str, function: str
) -> None:
    ref = ToolRef.parse(entry)
    assert (ref.server, ref.tool, ref.function) == (server, tool, function)
    assert FUNCTION_NAME.match(ref.function)


def test_a_long_name_is_cut_to_64_and_kept_apart_by_a_digest() -> None:
    one, two = ToolRef.parse("s/" + "a" * 80), ToolRef.parse("s/" + "a" * 81)
    assert len(one.function) == len(two.function) == 64
    assert FUNCTION_NAME.match(one.function) and one.function != two.function


def test_entries_the_model_could_not_tell_apart_are_a_problem() -> None:
    assert problem(["search", "web/search", "fs/search"]) is None
    assert problem(["a.b", "a_b"]) == (
        "'a.b' and 'a_b' would both be shown to the model as 'a_b':"
        " name one with its server ('server/tool')"
    )
    assert problem(["/search"]) == "'/search' names no tool (write 'tool' or 'server/tool')"

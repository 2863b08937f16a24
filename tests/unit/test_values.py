"""Values a YAML node builds from the state: what is an expression, what a
template, what is taken as written, and the value each gives."""

from __future__ import annotations

from agent_node.workflow.ir import EndNode
from agent_node.workflow.values import build, expressions_in, templates_in
from agent_node.workflow.yaml_loader import load_yaml_text

WRITTEN = {
    "n": "{{ state.n + 1 }}",
    "text": "n is {{ state.n }}",
    "shout": "{{ state.name | upper }}",
    "nested": {"list": ["{{ state.tags }}", 3, "plain"]},
    "none": None,
}


def test_one_expression_is_typed_a_template_is_text_the_rest_as_written() -> None:
    assert expressions_in(WRITTEN, "x") == [
        ("x.n", "state.n + 1"),
        ("x.nested.list[0]", "state.tags"),
    ]
    assert templates_in(WRITTEN, "x") == [
        ("x.text", "n is {{ state.n }}"),
        ("x.shout", "{{ state.name | upper }}"),  # a Jinja filter: rendered as text
    ]
    assert expressions_in("plain", "x") == templates_in(7, "x") == []


def test_build_evaluates_what_the_workflow_compiled() -> None:
    workflow = load_yaml_text(
        """\
workflow:
  id: values
  version: "1"
  start: again
  state_schema: {n: integer, name: string, tags: array}
nodes:
  again:
    type: end
    continue_as_new: {n: "{{ state.n + 1 }}", name: "{{ state.name | upper }}",
                      tags: ["{{ state.tags }}", "n={{ state.n }}", 3]}
"""
    )
    state = {"n": 1, "name": "ada", "tags": ["a"]}
    spec = workflow.node("again")
    assert isinstance(spec, EndNode)
    assert build(workflow, "again", "continue_as_new", spec.continue_as_new, state) == {
        "n": 2,
        "name": "ADA",
        "tags": [["a"], "n=1", 3],
    }

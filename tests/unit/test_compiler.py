"""Compile-time validation of workflows, shared by the SDK and YAML."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from agent_node import Workflow
from agent_node.errors import WorkflowDefinitionError
from agent_node.workflow.compiled import StepFn
from agent_node.workflow.compiler import compile_workflow
from agent_node.workflow.ir import WorkflowIR, parse_node


class State(BaseModel):
    score: float = 0.0
    decision: str | None = None
    name: str = ""


async def step(state: Any) -> None:
    return None


def route(state: Any) -> str | None:
    return "done"


def workflow(nodes: dict[str, Any], start: str = "a") -> WorkflowIR:
    specs = {node_id: parse_node(node_id, raw) for node_id, raw in nodes.items()}
    return WorkflowIR(id="wf", version="1", state_schema={}, start=start, nodes=specs)


def compile_nodes(
    nodes: dict[str, Any], functions: dict[str, StepFn] | None = None, **kw: Any
) -> Any:
    return compile_workflow(workflow(nodes, **kw), State, functions=functions, file="wf.yaml")


def failure(nodes: dict[str, Any], **kw: Any) -> WorkflowDefinitionError:
    with pytest.raises(WorkflowDefinitionError) as caught:
        compile_nodes(nodes, **kw)
    return caught.value


TRIAGE: dict[str, dict[str, Any]] = {
    "a": {"type": "python", "next": "route"},
    "route": {
        "type": "branch",
        "cases": [{"when": "state.score > 0.8", "next": "done"}],
        "default": "review",
    },
    "review": {
        "type": "wait",
        "event": "approval-{{ state.name }}",
        "timeout": "1h",
        "output": "decision",
        "on_timeout": "done",
        "next": "done",
    },
    "done": {"type": "end", "message": "decided {{ state.decision }}", "output": ["decision"]},
}


def test_compiles_and_binds_expressions_and_templates() -> None:
    compiled = compile_workflow(
        workflow(TRIAGE), State, functions={"a": step}, routers={"a": route}, ref="here"
    )
    assert compiled.ref == "here"
    assert compiled.functions == {"a": step}
    assert compiled.routers == {"a": route}
    assert set(compiled.expressions) == {("route", "cases[0].when")}
    assert set(compiled.templates) == {("review", "event"), ("done", "message")}
    assert compiled.expression("route", "cases[0].when").evaluate({"score": 0.9}) is True
    assert compiled.template("review", "event").render({"name": "x"}) == "approval-x"


def test_parallel_with_join_compiles() -> None:
    nodes = {
        "a": {"type": "parallel", "branches": ["b", "c"], "join": "j"},
        "b": {"type": "python", "next": "j"},
        "c": {"type": "python", "next": "j"},
        "j": {"type": "join"},
    }
    assert compile_nodes(nodes, functions={"b": step, "c": step}).ir.start == "a"


#: The walk's parallel_lost_join.yaml: when ``state.score`` is low, ``b1``
#: goes to ``side``, which has no ``next``; the branch stopped there, ``j``
#: waited for it for ever and the execution hung, "waiting" for nothing.
LOST_JOIN: dict[str, dict[str, Any]] = {
    "a": {"type": "parallel", "branches": ["b1", "b2"], "join": "j"},
    "b1": {
        "type": "branch",
        "cases": [{"when": "state.score > 5", "next": "j"}],
        "default": "side",
    },
    "side": {"type": "wait", "duration": 0.1},
    "b2": {"type": "wait", "duration": 0.5, "next": "j"},
    "j": {"type": "join", "next": "after"},
    "after": {"type": "python", "next": "done"},
    "done": {"type": "end"},
}


def test_a_branch_that_can_stop_before_its_join_is_refused() -> None:
    error = failure(LOST_JOIN, functions={"after": step})
    assert (error.node, error.field) == ("side", "next")
    assert "the branches of parallel 'a' can stop here without reaching its join 'j'" in str(error)


def test_the_python_api_refuses_it_too() -> None:
    wf = Workflow("lost", version="1")
    wf.state(State)
    wf.parallel("a", ["b1", "b2"], join="j")
    wf.branch("b1", {"j": "state.score > 5"}, default="side")
    wf.wait("side", duration=0.1, next=None)
    wf.wait("b2", duration=0.5, next="j")
    wf.join("j")
    with pytest.raises(WorkflowDefinitionError) as caught:
        wf.compile()
    assert (caught.value.node, caught.value.field) == ("side", "next")
    assert "parallel 'a' can stop here without reaching its join 'j'" in str(caught.value)


def test_a_nested_join_without_next_stops_the_outer_branch() -> None:
    nodes = {
        "a": {"type": "parallel", "branches": ["inner", "c"], "join": "j"},
        "inner": {"type": "parallel", "branches": ["d", "e"], "join": "j2"},
        "d": {"type": "python", "next": "j2"},
        "e": {"type": "python", "next": "j2"},
        "j2": {"type": "join"},
        "c": {"type": "python", "next": "j"},
        "j": {"type": "join"},
    }
    error = failure(nodes, functions={"c": step, "d": step, "e": step})
    assert error.node == "j2"
    assert "parallel 'a'" in str(error) and "join 'j'" in str(error)


@pytest.mark.parametrize(
    ("nodes", "routers"),
    [
        pytest.param(  # through a branch's cases and default, and a loop
            {
                "a": {"type": "parallel", "branches": ["b1", "b2"], "join": "j"},
                "b1": {
                    "type": "branch",
                    "cases": [{"when": "state.score > 5", "next": "j"}],
                    "default": "again",
                },
                "again": {"type": "python", "next": "b1"},
                "b2": {"type": "wait", "event": "e", "on_timeout": "j", "next": "j"},
                "j": {"type": "join", "next": "done"},
                "done": {"type": "end"},
            },
            {},
            id="cases",
        ),
        pytest.param(  # an inner parallel inside a branch, meeting at its own join first
            {
                "a": {"type": "parallel", "branches": ["inner", "c"], "join": "j"},
                "inner": {"type": "parallel", "branches": ["d", "again"], "join": "j2"},
                "d": {"type": "python", "next": "j2"},
                "again": {"type": "python", "next": "j2"},
                "j2": {"type": "join", "next": "j"},
                "c": {"type": "python", "next": "j"},
                "j": {"type": "join"},
            },
            {},
            id="nested",
        ),
        pytest.param(  # an end node ends the whole execution: no join waits
            {
                "a": {"type": "parallel", "branches": ["b1", "b2"], "join": "j"},
                "b1": {
                    "type": "branch",
                    "cases": [{"when": "state.score > 5", "next": "j"}],
                    "default": "done",
                },
                "b2": {"type": "wait", "duration": 1, "next": "j"},
                "j": {"type": "join", "next": "done"},
                "done": {"type": "end"},
            },
            {},
            id="end",
        ),
        pytest.param(  # a route chosen when the node runs: checked then
            {
                "a": {"type": "parallel", "branches": ["again", "c"], "join": "j"},
                "again": {"type": "python", "dynamic_next": True, "routes": ["j"]},
                "c": {"type": "python", "next": "j"},
                "j": {"type": "join"},
            },
            {"again": route},
            id="routed",
        ),
    ],
)
def test_branches_that_reach_their_join_or_an_end_compile(
    nodes: dict[str, Any], routers: dict[str, Any]
) -> None:
    functions = {node_id: step for node_id, raw in nodes.items() if raw["type"] == "python"}
    compiled = compile_workflow(workflow(nodes), State, functions=functions, routers=routers)
    assert compiled.ir.start == "a"


def test_start_must_be_a_node_and_the_known_ones_are_listed() -> None:
    error = failure({"a": {"type": "python", "next": "b"}, "b": {"type": "end"}}, start="nope")
    assert (error.node, error.field, error.file) == (None, "start", "wf.yaml")
    assert str(error) == "file 'wf.yaml', field 'start': 'nope' is not a node (known: a, b)"


@pytest.mark.parametrize(
    ("nodes", "field"),
    [
        ({"a": {"type": "join", "next": "ghost"}}, "next"),
        (
            {
                "a": {
                    "type": "branch",
                    "cases": [{"when": "true", "next": "z"}, {"when": "false", "next": "ghost"}],
                    "default": "z",
                },
                "z": {"type": "end"},
            },
            "cases[1].next",
        ),
        (
            {"a": {"type": "branch", "cases": [{"when": "true", "next": "z"}], "default": "ghost"}},
            "default",
        ),
        (
            {"a": {"type": "wait", "event": "e", "on_timeout": "ghost", "next": "z"}},
            "on_timeout",
        ),
        ({"a": {"type": "parallel", "branches": ["z", "ghost"], "join": "z"}}, "branches[1]"),
        ({"a": {"type": "python", "description": "ghost", "routes": ["ghost"]}}, "routes[0]"),
    ],
)
def test_unknown_successor_names_the_field(nodes: dict[str, Any], field: str) -> None:
    nodes.setdefault("z", {"type": "end"})
    error = failure(nodes)
    assert (error.node, error.field) == ("a", field)
    assert "'ghost' is not a node" in str(error)


def test_router_targets_must_be_nodes() -> None:
    nodes = {"a": {"type": "python", "routes": ["z", "ghost"]}, "z": {"type": "end"}}
    error = failure(nodes, functions={"a": step})
    assert (error.node, error.field) == ("a", "routes[1]")


def test_join_of_a_parallel_must_be_a_join() -> None:
    nodes = {
        "a": {"type": "parallel", "branches": ["b"], "join": "b"},
        "b": {"type": "end"},
    }
    error = failure(nodes)
    assert (error.node, error.field) == ("a", "join")
    assert "is not a node of type join" in str(error)


def test_unreachable_node() -> None:
    error = failure({"a": {"type": "end"}, "island": {"type": "end"}})
    assert error.node == "island"
    assert "unreachable from start 'a'" in str(error)


def test_loop_without_exit_has_no_path_to_an_end() -> None:
    nodes = {
        "a": {"type": "python", "next": "b"},
        "b": {"type": "branch", "cases": [{"when": "true", "next": "a"}], "default": "a"},
    }
    error = failure(nodes, functions={"a": step})
    assert error.node == "a"
    assert "no path from this node to an end" in str(error)


def test_loop_with_exit_compiles() -> None:
    nodes = {
        "a": {"type": "python", "next": "b"},
        "b": {
            "type": "branch",
            "cases": [{"when": "state.score < 1", "next": "a"}],
            "default": "z",
        },
        "z": {"type": "end"},
    }
    assert compile_nodes(nodes, functions={"a": step})


def test_unknown_state_key_in_wait_output() -> None:
    nodes = {"a": {"type": "wait", "event": "e", "output": "verdict"}}
    error = failure(nodes)
    assert (error.node, error.field) == ("a", "output")
    assert "unknown state key 'verdict' (known: decision, name, score)" in str(error)


def test_unknown_state_key_in_end_output() -> None:
    error = failure({"a": {"type": "end", "output": ["score", "total"]}})
    assert (error.node, error.field) == ("a", "output[1]")


def test_unknown_state_key_in_expression() -> None:
    nodes = {
        "a": {"type": "branch", "cases": [{"when": "state.scor > 1", "next": "z"}]},
        "z": {"type": "end"},
    }
    error = failure(nodes)
    assert (error.node, error.field) == ("a", "cases[0].when")
    assert "unknown state key 'scor'" in str(error)


def test_bad_expression_syntax() -> None:
    nodes = {
        "a": {"type": "branch", "cases": [{"when": "state.score >", "next": "z"}]},
        "z": {"type": "end"},
    }
    assert "invalid syntax" in str(failure(nodes))


def test_unknown_state_key_in_template() -> None:
    error = failure({"a": {"type": "end", "message": "bad {{ state.nam }}"}})
    assert (error.node, error.field) == ("a", "message")
    assert "unknown state key 'nam'" in str(error)


def test_python_node_needs_a_function() -> None:
    error = failure({"a": {"type": "python"}})
    assert (error.node, error.field) == ("a", "function")


def test_functions_bind_only_python_nodes() -> None:
    error = failure({"a": {"type": "end"}}, functions={"a": step})
    assert (error.node, error.field) == ("a", "function")
    error = failure({"a": {"type": "end"}}, functions={"ghost": step})
    assert error.node == "ghost"


def test_an_auth_wait_is_one_kind_with_its_prompt_checked() -> None:
    nodes = {"a": {"type": "wait", "auth": "Sign in as {{ state.name }}", "output": "decision"}}
    compiled = compile_nodes(nodes)
    assert compiled.ir.nodes["a"].awaited == "input"  # the caller's next message answers it
    assert compiled.template("a", "auth").render({"name": "Ada"}) == "Sign in as Ada"
    with pytest.raises(ValueError, match="exactly one of 'event', 'input', 'auth'"):
        parse_node("a", {"type": "wait", "auth": "Sign in", "input": "Name?"})
    error = failure({"a": {"type": "wait", "auth": "Sign in as {{ state.nam }}"}})
    assert (error.node, error.field) == ("a", "auth")

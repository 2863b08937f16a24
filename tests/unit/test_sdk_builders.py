"""The SDK builders of the node types that reach out (delegate, model, tool,
http) compile to the same IR as their YAML."""

from __future__ import annotations

import inspect

from pydantic import BaseModel

from agent_node import Workflow
from agent_node.nodes.delegate import DelegateNode
from agent_node.nodes.eval import EvalNode
from agent_node.nodes.http import HttpNode
from agent_node.nodes.model_spec import ModelNode
from agent_node.nodes.tool import ToolNode
from agent_node.workflow.ir import WaitNode


class Answer(BaseModel):
    title: str


def test_the_builders_compile_to_their_node_specs() -> None:
    wf = Workflow("builders", version="1")

    @wf.state
    class State(BaseModel):
        topic: str = ""
        summary: str = ""
        draft: dict[str, str] | None = None
        found: str = ""
        status: int = 0

    wf.delegate(
        "ask",
        peer="writer",
        data=["topic"],
        fields={"summary": "data.summary"},
        timeout="5m",
        on_timeout="fetch",
        next="fetch",
    )
    wf.http("fetch", url="https://example.org/{{ state.topic }}", status_output="status")
    wf.tool("look", tool="search", arguments={"q": "{{ state.topic }}"}, output="found")
    wf.model("write", prompt="Write about {{ state.topic }}", output="draft", schema=Answer)
    wf.end("done")
    nodes = wf.compile().ir.nodes

    ask = nodes["ask"]
    assert isinstance(ask, DelegateNode)
    assert (ask.peer, ask.data, ask.fields, ask.timeout) == (
        "writer",
        ["topic"],
        {"summary": "data.summary"},
        300.0,
    )
    assert (ask.on_timeout, ask.next) == ("fetch", "fetch")
    fetch = nodes["fetch"]
    assert isinstance(fetch, HttpNode) and fetch.method == "GET" and fetch.next == "look"
    look = nodes["look"]
    assert isinstance(look, ToolNode) and look.tool == "search" and look.output == "found"
    write = nodes["write"]
    assert isinstance(write, ModelNode)
    assert write.answer_schema == f"{__name__}:Answer" and write.next == "done"


def test_wait_for_authorization_and_the_auth_route_of_a_delegation() -> None:
    wf = Workflow("auth", version="1")

    @wf.state
    class State(BaseModel):
        token: str = ""
        answer: dict[str, str] | None = None

    wf.wait("login", auth="Sign in, then send the token", output="token", timeout="1h")
    wf.delegate("ask", peer="bank", output="answer", on_auth_required="login")
    wf.end("done")
    nodes = wf.compile().ir.nodes
    login = nodes["login"]
    assert isinstance(login, WaitNode)
    assert (login.auth, login.input, login.output, login.timeout) == (
        "Sign in, then send the token",
        None,
        "token",
        3600.0,
    )
    ask = nodes["ask"]
    assert isinstance(ask, DelegateNode) and ask.on_auth_required == "login"
    assert ask.routed("TASK_STATE_AUTH_REQUIRED") == "login"
    assert ask.routed("TASK_STATE_INPUT_REQUIRED") is None


def test_every_builder_that_retries_a_node_bounds_its_attempts() -> None:
    """A node that may be retried may hang too: each builder taking ``retry=``
    takes ``timeout=`` (``wf.eval``, whose judges call models, lacked it)."""
    builders = {
        name: inspect.signature(member).parameters
        for name, member in inspect.getmembers(Workflow, inspect.isfunction)
        if not name.startswith("_")
    }
    retried = {name for name, params in builders.items() if "retry" in params}
    assert {"step", "model", "tool", "http", "delegate", "eval"} <= retried
    assert [name for name in sorted(retried) if "timeout" not in builders[name]] == []


def test_an_eval_s_timeout_compiles_as_its_yaml_does() -> None:
    wf = Workflow("judged", version="1")

    @wf.state
    class State(BaseModel):
        draft: str = ""

    wf.eval("review", scorers=[{"type": "assertion", "expr": "state.draft"}], timeout="2m")
    wf.end("done")
    review = wf.compile().ir.nodes["review"]
    assert isinstance(review, EvalNode) and review.timeout == 120.0

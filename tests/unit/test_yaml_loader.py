"""YAML workflows: a real file with real step modules, and every kind of mistake."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent_node.errors import WorkflowDefinitionError
from agent_node.workflow.ir import BranchNode, WaitNode
from agent_node.workflow.yaml_loader import load_yaml_text, load_yaml_workflow

STEPS = """\
async def classify(state):
    return {"score": 0.9}

def not_async(state):
    return None
"""

TRIAGE = """\
workflow:
  id: triage
  version: "1.0"
  description: sort requests
  state_schema:
    type: object
    properties:
      query: {type: string}
      score: {type: number, default: 0}
      decision: {type: string}
    required: [query]
  start: classify
nodes:
  classify: {type: python, function: "steps:classify", next: route, retry: 3}
  route:
    type: branch
    cases:
      - when: "state.score > 0.8"
        next: approve
    default: review
  review:
    type: wait
    event: "approval"
    timeout: 1h
    output: decision
    on_timeout: approve
    next: approve
  approve: {type: end, message: "approved {{ state.query }}"}
"""


@pytest.fixture(autouse=True)
def clean_modules(tmp_path: Path) -> Iterator[None]:
    """Forget the modules a test loaded from its own directory."""
    path = list(sys.path)
    yield
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", None) or "").startswith(str(tmp_path.resolve())):
            del sys.modules[name]
    assert sys.path == path


def write(directory: Path, text: str, name: str = "flow.yaml") -> Path:
    (directory / "steps.py").write_text(STEPS)
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return path


def failure(directory: Path, text: str) -> WorkflowDefinitionError:
    path = write(directory, text)
    with pytest.raises(WorkflowDefinitionError) as caught:
        load_yaml_workflow(path)
    assert caught.value.file == str(path)
    return caught.value


def replace(old: str, new: str) -> str:
    if old not in TRIAGE:
        raise ValueError(f"{old!r} is not in the example")
    return TRIAGE.replace(old, new)


def test_loads_a_workflow_file(tmp_path: Path) -> None:
    path = write(tmp_path, TRIAGE)
    compiled = load_yaml_workflow(path)
    assert compiled.key == "triage@1.0"
    assert compiled.ref == str(path.resolve())
    assert compiled.ir.description == "sort requests"
    assert compiled.functions["classify"].__name__ == "classify"
    assert compiled.node("classify").retry is not None
    assert isinstance(compiled.node("route"), BranchNode)
    review = compiled.node("review")
    assert isinstance(review, WaitNode) and review.timeout == 3600.0
    assert compiled.expression("route", "cases[0].when").evaluate({"score": 0.95}) is True
    assert compiled.template("approve", "message").render({"query": "q"}) == "approved q"
    state = compiled.state_model(query="q")
    assert state.model_dump() == {"query": "q", "score": 0.0, "decision": None}


def test_text_with_shorthand_schema_and_file_reference(tmp_path: Path) -> None:
    (tmp_path / "steps.py").write_text(STEPS)
    text = """\
    workflow:
      id: small
      version: 2
      state_schema: {query: string, score: number}
      start: classify
    nodes:
      classify: {type: python, function: "./steps.py:classify"}
    """
    compiled = load_yaml_text(textwrap.dedent(text), base_dir=tmp_path)
    assert compiled.ref is None
    assert compiled.key == "small@2"
    assert set(compiled.state_model.model_fields) == {"query", "score"}


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(WorkflowDefinitionError, match="cannot read the file"):
        load_yaml_workflow(tmp_path / "nope.yaml")


def test_malformed_yaml_names_line_and_column(tmp_path: Path) -> None:
    error = failure(tmp_path, replace("  start: classify\n", "  start: [classify\n"))
    assert "invalid YAML at line 13" in str(error)


def test_malformed_yaml_in_text() -> None:
    with pytest.raises(WorkflowDefinitionError) as caught:
        load_yaml_text("workflow:\n  id: x\n   bad: 1\n", file="inline.yaml")
    assert caught.value.file == "inline.yaml"
    assert "invalid YAML at line 3" in str(caught.value)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("- a list\n", "expected a mapping with 'workflow' and 'nodes'"),
        (TRIAGE + "extra: 1\n", "unknown top-level key 'extra'"),
        ("workflow: {}\n", "missing top-level key 'nodes'"),
        (replace("  start: classify\n", ""), "missing workflow key 'start'"),
        (
            replace("  start: classify\n", "  start: classify\n  owner: me\n"),
            "unknown workflow key",
        ),
        (TRIAGE.split("nodes:")[0] + "nodes: []\n", "must be a non-empty mapping"),
        (replace("  id: triage", "  id: 'tri age'"), "String should match pattern"),
    ],
)
def test_document_shape_errors(tmp_path: Path, text: str, fragment: str) -> None:
    assert fragment in str(failure(tmp_path, text))


@pytest.mark.parametrize(
    ("old", "new", "node", "field", "fragment"),
    [
        ("  approve: {type: end, message:", "  approve: end\n  x: {m:", "approve", None, "mapping"),
        ("type: python,", "type: pyhton,", "classify", "type", "unknown node type 'pyhton'"),
        ("retry: 3", "retry: -1", "classify", "retry.max_attempts", "greater than or equal"),
        ("timeout: 1h", "timeout: soon", "review", "timeout", "not a duration"),
        ("next: route,", "next: route, colour: red,", "classify", "colour", "unknown field"),
        ("retry: 3", "retires: 3", "classify", "retires", "(did you mean 'retry'?)"),
        ("retry: 3", "retry: {max_atempts: 2}", "classify", "retry.max_atempts", "'max_attempts'"),
        ("      - when:", "      - if:", "route", "cases[0].when", "Field required"),
        ('    event: "approval"\n', "", "review", None, "exactly one of"),
        ("next: route,", "next: ghost,", "classify", "next", "'ghost' is not a node"),
        ("output: decision", "output: verdict", "review", "output", "unknown state key"),
        ("state.score > 0.8", "state.score >", "route", "cases[0].when", "invalid syntax"),
        ("{{ state.query }}", "{{ state.q }}", "approve", "message", "unknown state key 'q'"),
        ("steps:classify", "steps:not_async", "classify", "function", "not an async function"),
        ("steps:classify", "steps:nothing", "classify", "function", "no attribute 'nothing'"),
        ("steps:classify", "missing_steps_module:f", "classify", "function", "no module named"),
        ('function: "steps:classify", ', "", "classify", "function", "needs 'function'"),
    ],
)
def test_node_errors_name_node_and_field(
    tmp_path: Path, old: str, new: str, node: str, field: str | None, fragment: str
) -> None:
    error = failure(tmp_path, replace(old, new))
    assert (error.node, error.field) == (node, field)
    assert fragment in str(error)


def test_unreachable_node(tmp_path: Path) -> None:
    error = failure(tmp_path, TRIAGE + "  orphan: {type: end}\n")
    assert error.node == "orphan"
    assert "unreachable" in str(error)


def test_loop_without_exit(tmp_path: Path) -> None:
    text = replace("default: review", "default: classify").replace(
        "next: approve\n    default", "next: classify\n    default"
    )
    text = text.split("  review:")[0]
    error = failure(tmp_path, text)
    assert "no path from this node to an end" in str(error)


def test_a_branch_that_can_stop_before_its_join(tmp_path: Path) -> None:
    """The walk's parallel_lost_join.yaml loaded, then hung "waiting" for
    ever once ``b1`` went to ``side``."""
    text = """\
        workflow: {id: plj, version: "1", start: a, state_schema: {n: integer}}
        nodes:
          a: {type: parallel, branches: [b1, b2], join: j}
          b1: {type: branch, cases: [{when: "state.n > 5", next: j}], default: side}
          side: {type: wait, duration: 0.1}
          b2: {type: wait, duration: 0.5, next: j}
          j: {type: join, next: done}
          done: {type: end}
        """
    error = failure(tmp_path, text)
    assert (error.node, error.field) == ("side", "next")
    assert "without reaching its join 'j'" in str(error)


def test_state_schema_problem(tmp_path: Path) -> None:
    error = failure(tmp_path, replace("{type: number, default: 0}", "{type: decimal}"))
    assert error.field == "state_schema"
    assert "unknown type 'decimal'" in str(error)


def test_a_fresh_process_loads_every_shipped_workflow_file() -> None:
    """The node types above the core ones (model, tool, http, eval, delegate)
    register themselves when their package is imported; ``load_workflow``
    in a process that imported nothing else still knows them (it said
    "unknown node type 'model'")."""
    import subprocess

    root = Path(__file__).resolve().parents[2] / "examples"
    files = [p for p in sorted(root.glob("*/*.yaml")) if "\nworkflow:" in "\n" + p.read_text()]
    assert len(files) >= 5, files
    loaded = (
        "import sys, agent_node\n"
        "for path in sys.argv[1:]:\n"
        "    wf = agent_node.load_workflow(path)\n"
        "    print(*sorted({type(n).__name__ for n in wf.ir.nodes.values()}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", loaded, *map(str, files)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    types = set(done.stdout.split())
    assert {"ModelNode", "EvalNode", "DelegateNode"} <= types, done.stdout

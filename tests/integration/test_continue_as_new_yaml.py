"""A YAML workflow continues as new from an ``end`` node whose
``continue_as_new`` builds the new input from the state (one ``{{ }}``
expression typed, a template as text, the rest as written). On every store:
the same id, the log of the last run only, visits that go on counting; its
mistakes caught when the workflow loads; a new input that does not fit the
state fails the visit and leaves the run it would have replaced as it was."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent_node import Runtime
from agent_node.errors import WorkflowDefinitionError
from agent_node.workflow.compiled import CompiledWorkflow
from agent_node.workflow.yaml_loader import load_yaml_text, load_yaml_workflow

ROUNDS = 3
ITEMS = 2

STEPS = """\
async def collect(state):
    return {"items": [*state.items, f"{state.round}.{len(state.items)}"]}
"""

POLLER = f"""\
workflow:
  id: poller
  version: "1"
  start: collect
  state_schema:
    type: object
    properties:
      round: {{type: integer}}
      items: {{type: array, items: {{type: string}}, default: []}}
      total: {{type: integer, default: 0}}
      note: {{type: string, default: ""}}
    required: [round]
nodes:
  collect: {{type: python, function: "steps.py:collect", next: full}}
  full:
    type: branch
    cases:
      - {{when: "len(state.items) < {ITEMS}", next: collect}}
      - {{when: "state.round < {ROUNDS}", next: again}}
    default: done
  again:
    type: end
    continue_as_new:
      round: "{{{{ state.round + 1 }}}}"
      total: "{{{{ state.total + len(state.items) }}}}"
      note: "round {{{{ state.round }}}} kept {{{{ state.items | length }}}}"
      items: []
  done: {{type: end}}
"""


def poller(directory: Path, text: str = POLLER) -> CompiledWorkflow:
    (directory / "steps.py").write_text(STEPS)
    path = directory / "poller.yaml"
    path.write_text(text)
    return load_yaml_workflow(path)


async def test_a_yaml_workflow_continues_as_new_under_the_same_id(
    store_url: str, tmp_path: Path
) -> None:
    async with Runtime(store_url) as runtime:
        result = await runtime.run(poller(tmp_path), {"round": 0}, execution_id="poller-1")
        assert (result.execution_id, result.status) == ("poller-1", "completed")
        # The last run's state: the input the end built, then the run's own steps.
        state = result.state.model_dump()
        last = [f"{ROUNDS}.{n}" for n in range(ITEMS)]
        assert state == {
            "round": ROUNDS,
            "items": last,
            "total": ROUNDS * ITEMS,
            "note": f"round {ROUNDS - 1} kept {ITEMS}",
        }
        # The log holds the last run only, its input first.
        events = await runtime.store.events("poller-1")
        assert events[0].kind == "execution_restarted"
        assert [e.kind for e in events].count("execution_restarted") == 1
        assert result.events[0].data == {"input": {**state, "items": []}}
        assert events[-1].kind == "execution_completed"
        # Visits go on counting across runs: no idempotency key is used twice.
        collected = [e.visit for e in events if e.kind == "node_started" and e.node == "collect"]
        assert collected == [ROUNDS * ITEMS + n + 1 for n in range(ITEMS)]
        record = await runtime.store.get("poller-1")
        assert record is not None and record.status == "completed"
        assert result.state.model_validate_json(record.state) == result.state


async def test_a_new_input_that_does_not_fit_fails_the_visit_and_keeps_the_run(
    store_url: str, tmp_path: Path
) -> None:
    text = POLLER.replace('"{{ state.round + 1 }}"', '"{{ state.note }}"')
    async with Runtime(store_url) as runtime:
        result = await runtime.run(poller(tmp_path, text), {"round": 0})
        assert result.status == "failed" and result.error is not None
        assert "node 'again' failed: cannot continue as new" in result.error
        assert "the input does not fit poller@1's state" in result.error
        assert "round" in result.error
        # Nothing was dropped: the first run's log and state are all there.
        events = await runtime.store.events(result.execution_id)
        kinds = [e.kind for e in events]
        assert kinds[0] == "execution_started" and "execution_restarted" not in kinds
        assert ("node_failed", "again") in [(e.kind, e.node) for e in events]
        assert result.state.model_dump()["items"] == ["0.0", "0.1"]


ERRORS = [
    ("{round: 1, nope: 2}", "continue_as_new.nope", "unknown state key 'nope'"),
    ('{round: "{{ state.round + }}"}', "continue_as_new.round", "syntax error"),
    ('{round: "{{ state.rounds + 1 }}"}', "continue_as_new.round", "unknown state key 'rounds'"),
    ('{round: 1, items: ["{{ state.nope }}"]}', "continue_as_new.items[0]", "'nope'"),
    ("{total: 1}", "continue_as_new", "lacks required state key(s) ['round']"),
    ("true", "continue_as_new", "Input should be a valid dictionary"),
    ("{round: 1}\n    status: failed", None, "it cannot go with status: failed"),
    ("{round: 1}\n    output: [round]", None, "'message' and 'output' say how"),
]


LOOPED = """\
workflow:
  id: looped
  version: "1"
  start: again
  state_schema:
    type: object
    properties: {round: {type: integer}, total: {type: integer}, items: {type: array}}
    required: [round]
nodes:
  again:
    type: end
    continue_as_new: """


@pytest.mark.parametrize(("given", "field", "fragment"), ERRORS)
def test_mistakes_are_caught_when_the_workflow_loads(
    given: str, field: str | None, fragment: str
) -> None:
    with pytest.raises(WorkflowDefinitionError) as caught:
        load_yaml_text(LOOPED + given + "\n", file="looped.yaml")
    error = caught.value
    assert (error.file, error.node, error.field) == ("looped.yaml", "again", field)
    assert fragment in str(error)

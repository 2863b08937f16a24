"""The README's model, tool, http and eval example compiles as a workflow,
and the node its eval revises reads the judge's reasons (issue: its
``draft`` was re-run with ``state.feedback`` it never read, so a revision
asked the model the same question again)."""

from __future__ import annotations

from typing import Any

import yaml
from support.readme_blocks import yaml_block

from agent_node.nodes.eval import EvalNode
from agent_node.workflow.yaml_loader import load_yaml_text

SECTION = "Model, tool, http and eval nodes"
STATE = {
    "id": {"type": "string", "default": "42"},
    "topic": {"type": "string", "default": "foxes"},
    "notes": {"type": "string", "default": "they are red"},
    "brief": {"type": "object", "default": {"title": "Foxes", "text": "Red."}},
    "found": {"default": None},
    "ticket": {"type": "string", "default": ""},
    "feedback": {"type": "string", "default": ""},
    "verdict": {"type": "object", "default": {}},
}


def test_the_readme_example_revises_with_the_judges_reasons() -> None:
    nodes: dict[str, Any] = yaml.safe_load(yaml_block(SECTION))
    start = next(iter(nodes))
    nodes["done"] = {"type": "end"}
    header = {"id": "readme-nodes", "version": "1", "state_schema": STATE, "start": start}
    text = yaml.safe_dump({"workflow": header, "nodes": nodes}, sort_keys=False)
    workflow = load_yaml_text(text, file="README.md")
    revising = [
        spec
        for spec in workflow.ir.nodes.values()
        if isinstance(spec, EvalNode) and spec.on_fail == "retry_with_feedback"
    ]
    assert revising, "the example shows no eval node revising with feedback"
    for judge in revising:
        assert judge.revise is not None
        reviser = workflow.node(judge.revise)
        reason = "quality: 2/5, the second paragraph contradicts the notes"
        state = workflow.state_model().model_dump() | {judge.feedback: reason}
        asked = [workflow.template(reviser.id, f).render(state) for f, _ in reviser.templates()]
        assert any(reason in text for text in asked), (judge.id, reviser.id, asked)
        without = workflow.state_model().model_dump()
        asked = [workflow.template(reviser.id, f).render(without) for f, _ in reviser.templates()]
        assert not any("Revise" in text for text in asked), asked  # a first draft is not told to
